//! The Public API, Segment-style: bearer-token auth, `{"data":…}` or
//! `{"errors":[…]}`, cursor pagination, `Accept` versioning, a per-token
//! rate limit, and no CORS (it is server-side only).

pub mod audit_events;
pub mod auth;
pub mod body;
pub mod catalog;
pub mod destinations;
pub mod doc;
pub mod error;
pub mod labels;
pub mod last_used;
pub mod openapi;
pub mod pagination;
pub mod query;
pub mod rate_limit;
pub mod reply;
pub mod route;
pub mod settings;
pub mod sources;
pub mod tokens;
pub mod tracking_plans;
pub mod usage;
pub mod users;
pub mod validate;
pub mod warehouses;
pub mod workspace;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, ResponseError};

pub use doc::OperationDoc;
use error::ApiError;
use rate_limit::RateLimitStatus;
use route::{Endpoint, Resource};

/// Media types the API answers with; the first is the default.
pub const MEDIA_TYPES: &[&str] = &[
    "application/vnd.segment.v1+json",
    "application/vnd.segment.v1beta+json",
    "application/vnd.segment.v1alpha+json",
    "application/json",
];

/// Every resource of the Public API: what the router serves and the
/// document describes.
pub fn resources() -> Vec<Resource> {
    let mut all = workspace::resources();
    all.extend(sources::resources());
    all.extend(destinations::resources());
    all.extend(warehouses::resources());
    all.extend(tracking_plans::resources());
    all.extend(labels::resources());
    all.extend(catalog::resources());
    all.extend(tokens::resources());
    all.extend(users::resources());
    all.extend(audit_events::resources());
    all.extend(crate::oauth::apps::resources());
    all
}

/// Every (method, path) of the Public API, with its documentation.
pub fn endpoints() -> Vec<Endpoint> {
    resources().iter().flat_map(Resource::endpoints).collect()
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    route::configure(cfg, resources());
}

/// A resource id from the path, or 404 `<what> not found`: an id this API
/// could not have issued names no resource.
pub fn path_id<T: crate::domain::Parse>(raw: &str, what: &str) -> Result<T, ApiError> {
    T::parse(raw).map_err(|_| ApiError::not_found(what))
}

/// The one value of a header, trimmed; `Ok(None)` when it is absent. Two
/// copies are refused rather than picking one: a proxy and this server
/// could pick differently, and a credential must never be ambiguous.
pub fn single_header<'a>(req: &'a HttpRequest, name: &str) -> Result<Option<&'a str>, String> {
    let mut values = req.headers().get_all(name);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(format!("the {name} header is sent more than once"));
    }
    value
        .to_str()
        .map(|v| Some(v.trim()))
        .map_err(|_| format!("the {name} header is not visible ASCII text"))
}

/// Whether a raw path holds a percent-encoded control character (`%00`…
/// `%1F`, `%7F`). No id contains one, and PostgreSQL text cannot hold NUL,
/// so such a path must not reach a query. The HTTP parser already refuses
/// them unencoded.
fn has_encoded_control_character(path: &str) -> bool {
    path.split('%').skip(1).any(|rest| {
        rest.get(..2)
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .is_some_and(|b| b < 0x20 || b == 0x7f)
    })
}

/// The chosen media type for an `Accept` header, or None for 406.
///
/// `Accept` is a list of media ranges with optional `q` weights (RFC 9110
/// section 12.5.1); Segment's SDK sends several at once. Each of ours gets
/// the weight of the most specific range that matches it; the heaviest wins,
/// ties going to our own order, and `q=0` means "not this one". A missing or
/// empty header gets the default.
fn negotiate(accept: Option<&str>) -> Option<&'static str> {
    let ranges: Vec<(String, f32)> = accept
        .unwrap_or("")
        .split(',')
        .filter_map(media_range)
        .collect();
    if ranges.is_empty() {
        return accept
            .is_none_or(|a| a.trim().is_empty())
            .then_some(MEDIA_TYPES[0]);
    }
    let weight = |media: &str| {
        let (kind, _) = media.split_once('/').expect("our media types have a '/'");
        let wildcard = format!("{kind}/*");
        [media, wildcard.as_str(), "*/*"]
            .iter()
            .find_map(|candidate| ranges.iter().find(|(r, _)| r == candidate))
            .map_or(0.0, |(_, q)| *q)
    };
    let mut best: Option<(&'static str, f32)> = None;
    for media in MEDIA_TYPES {
        let q = weight(media);
        if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((media, q));
        }
    }
    best.map(|(media, _)| media)
}

/// One item of an `Accept` list as (lower-case media range, weight), or
/// None for an empty item or one whose `q` is not a number from 0 to 1.
fn media_range(item: &str) -> Option<(String, f32)> {
    let mut parts = item.split(';');
    let media = parts.next()?.trim().to_ascii_lowercase();
    if media.is_empty() {
        return None;
    }
    let mut q = 1.0;
    for param in parts {
        if let Some((name, value)) = param.split_once('=') {
            if name.trim().eq_ignore_ascii_case("q") {
                q = value
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))?;
            }
        }
    }
    Some((media, q))
}

/// Around every Public API request: content negotiation on the way in;
/// rate-limit headers and the negotiated Content-Type on the way out.
pub async fn conventions(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let accept = req.headers().get(header::ACCEPT).map(|v| {
        v.to_str()
            .map(str::to_string)
            .map_err(|_| "the Accept header is not visible ASCII text".to_string())
    });
    let accept = match accept.transpose() {
        Ok(accept) => accept,
        Err(message) => {
            let error = ApiError::NotAcceptable(message);
            return Ok(req
                .into_response(error.error_response())
                .map_into_right_body());
        }
    };
    if has_encoded_control_character(req.path()) {
        let error =
            ApiError::NotFound("no such resource: ids never contain control characters".into());
        return Ok(req
            .into_response(error.error_response())
            .map_into_right_body());
    }
    let Some(media) = negotiate(accept.as_deref()) else {
        let error = ApiError::NotAcceptable(format!(
            "cannot answer with {}; accept one of {}",
            accept.unwrap_or_default(),
            MEDIA_TYPES.join(", ")
        ));
        return Ok(req
            .into_response(error.error_response())
            .map_into_right_body());
    };
    let mut res = next.call(req).await?;
    let token_use = res.request().extensions().get::<usage::TokenUse>().cloned();
    if let (Some(token_use), Some(state)) = (
        token_use,
        res.request()
            .app_data::<web::Data<crate::state::AppState>>(),
    ) {
        // Set by the resource that answered (`route::configure`).
        let route = match res.request().app_data::<crate::middleware::RoutePattern>() {
            Some(crate::middleware::RoutePattern("")) => "/",
            Some(crate::middleware::RoutePattern(pattern)) => pattern,
            None => "unmatched",
        };
        state.usage.record(
            &token_use,
            crate::middleware::method_label(res.request().method()),
            route,
            res.status().as_u16(),
        );
    }
    let status = res.request().extensions().get::<RateLimitStatus>().copied();
    let headers = res.headers_mut();
    if let Some(s) = status {
        headers.insert(
            header::HeaderName::from_static("x-ratelimit-consumed"),
            HeaderValue::from(s.consumed),
        );
        headers.insert(
            header::HeaderName::from_static("x-ratelimit-remaining"),
            HeaderValue::from(s.remaining),
        );
        headers.insert(
            header::HeaderName::from_static("x-ratelimit-reset"),
            HeaderValue::from(s.reset_secs),
        );
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    }
    Ok(res.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::negotiate;

    #[test]
    fn encoded_control_characters() {
        assert!(super::has_encoded_control_character("/sources/%00"));
        assert!(super::has_encoded_control_character("/users/a%1fb"));
        assert!(super::has_encoded_control_character("/users/%7F"));
        assert!(!super::has_encoded_control_character(
            "/sources/a%20b%2F%25"
        ));
        assert!(!super::has_encoded_control_character("/sources/%"));
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(None), Some("application/vnd.segment.v1+json"));
        assert_eq!(
            negotiate(Some("*/*")),
            Some("application/vnd.segment.v1+json")
        );
        assert_eq!(
            negotiate(Some("application/vnd.segment.v1beta+json")),
            Some("application/vnd.segment.v1beta+json")
        );
        assert_eq!(
            negotiate(Some("application/json; charset=utf-8")),
            Some("application/json")
        );
        assert_eq!(negotiate(Some("text/html")), None);
        assert_eq!(negotiate(Some("application/vnd.segment.v2+json")), None);
        assert_eq!(negotiate(Some("")), Some("application/vnd.segment.v1+json"));
    }

    #[test]
    fn negotiation_reads_the_whole_list_and_its_weights() {
        // As Segment's SDK sends it for alpha-only operations.
        assert_eq!(
            negotiate(Some(
                "application/vnd.segment.v1alpha+json,application/json"
            )),
            Some("application/vnd.segment.v1alpha+json")
        );
        assert_eq!(
            negotiate(Some("text/html, application/json")),
            Some("application/json")
        );
        assert_eq!(
            negotiate(Some(
                "application/vnd.segment.v1+json;q=0.5, application/vnd.segment.v1beta+json"
            )),
            Some("application/vnd.segment.v1beta+json")
        );
        assert_eq!(
            negotiate(Some("*/*;q=0.1, application/json")),
            Some("application/json")
        );
        assert_eq!(
            negotiate(Some("application/*")),
            Some("application/vnd.segment.v1+json")
        );
        // q=0 excludes, even when a wildcard would include it.
        assert_eq!(negotiate(Some("application/json;q=0")), None);
        assert_eq!(
            negotiate(Some("*/*, application/vnd.segment.v1+json;q=0")),
            Some("application/vnd.segment.v1beta+json")
        );
        assert_eq!(negotiate(Some("*/*;q=0")), None);
        // A weight that is not a number from 0 to 1 makes its item void.
        assert_eq!(negotiate(Some("application/json;q=2")), None);
        assert_eq!(
            negotiate(Some(
                "application/json;q=high, application/vnd.segment.v1alpha+json"
            )),
            Some("application/vnd.segment.v1alpha+json")
        );
    }
}
