//! Middleware around every request: the request's span (what every log
//! line of the request carries, with secrets redacted), the request id
//! echoed back, and the request metrics and access log.

use std::borrow::Cow;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};

use crate::state::AppState;

/// The span of every request, as tracing-actix-web's default builds it,
/// except for two fields: `http.target` has every secret path segment
/// (`api::SECRET_PATH_PARAMETERS`) and every token-like query value
/// replaced by `[redacted]`, and `http.client_ip` is the address the
/// per-client limits use (`client_address`), never a header an untrusted
/// client wrote.
pub struct RequestSpan;

/// What replaces a secret in a log line.
pub const REDACTED: &str = "[redacted]";

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let connection = request.connection_info();
        let route = request.match_pattern();
        let method = method_label(request.method());
        let trusted = request
            .app_data::<web::Data<AppState>>()
            .map(|state| state.settings.trusted_proxies.as_slice())
            .unwrap_or_default();
        let client = crate::client_address::client_address(request.request(), trusted)
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.to_string())
            .unwrap_or_default();
        let user_agent = request
            .headers()
            .get("User-Agent")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let route_label = route.as_deref().unwrap_or("default");
        tracing::info_span!(
            "HTTP request",
            http.method = %method,
            http.route = %route_label,
            http.flavor = ?request.version(),
            http.scheme = %connection.scheme(),
            http.host = %connection.host(),
            http.client_ip = %client,
            http.user_agent = %user_agent,
            http.target = %redacted_target(
                route.as_deref(),
                request.path(),
                request.query_string()
            ),
            http.status_code = tracing::field::Empty,
            otel.name = %format!("{method} {route_label}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            request_id = %request_id,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// The request target for a log line: each path segment that the route
/// names a secret parameter, and each query value that looks like one of
/// our tokens, replaced by `[redacted]`.
pub fn redacted_target<'a>(route: Option<&str>, path: &'a str, query: &str) -> Cow<'a, str> {
    let mut target: Cow<'a, str> = Cow::Borrowed(path);
    if let Some(route) = route {
        let secrets: Vec<usize> = route
            .split('/')
            .enumerate()
            .filter(|(_, segment)| {
                crate::api::SECRET_PATH_PARAMETERS.iter().any(|name| {
                    segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) == Some(*name)
                })
            })
            .map(|(i, _)| i)
            .collect();
        if !secrets.is_empty() {
            target = Cow::Owned(
                path.split('/')
                    .enumerate()
                    .map(|(i, segment)| {
                        if secrets.contains(&i) {
                            REDACTED
                        } else {
                            segment
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("/"),
            );
        }
    }
    if query.is_empty() {
        return target;
    }
    let query: Vec<Cow<'_, str>> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if looks_like_a_token(value) => {
                Cow::Owned(format!("{name}={REDACTED}"))
            }
            None if looks_like_a_token(pair) => Cow::Borrowed(REDACTED),
            _ => Cow::Borrowed(pair),
        })
        .collect();
    Cow::Owned(format!("{target}?{}", query.join("&")))
}

/// A query value that holds one of our tokens (perhaps percent-encoded
/// around it): a client sent a secret where it does not belong.
fn looks_like_a_token(value: &str) -> bool {
    value.contains(crate::token::PREFIX)
}

/// Echoes tracing-actix-web's request id, which every log line of the
/// request carries, as `X-Request-Id`.
pub async fn echo_request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req.extensions().get::<RequestId>().copied();
    let mut res = next.call(req).await?;
    if let Some(id) = id {
        if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
            res.headers_mut()
                .insert(HeaderName::from_static("x-request-id"), value);
        }
    }
    Ok(res)
}

/// HTTP request counts and latencies by route pattern (never by raw path,
/// which would carry ids) and status.
pub async fn record_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let method = method_label(req.method());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    if let Some(state) = state {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_string());
        let route = if route.is_empty() {
            "/".to_string()
        } else {
            route
        };
        let status = res.status().as_u16();
        let elapsed = started.elapsed();
        let status_label = status.to_string();
        let labels = [route.as_str(), method, status_label.as_str()];
        state.metrics.http_requests.with_label_values(&labels).inc();
        state
            .metrics
            .http_latency
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
        // The access log: inside the request's span, so it carries the
        // request id. Probes and scrapes only at debug level.
        let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
        if matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics") {
            tracing::debug!(status, elapsed_ms, "request completed");
        } else {
            tracing::info!(status, elapsed_ms, "request completed");
        }
    }
    Ok(res)
}

/// The method as a metrics label, from a fixed set: a client that invents
/// methods must not be able to create new time series.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: &[&str] = &[
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
    ];
    KNOWN
        .iter()
        .find(|m| **m == method.as_str())
        .copied()
        .unwrap_or("OTHER")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_segments_and_token_values_are_redacted() {
        let route = Some("/sources/{id}/writekey/{writeKey}");
        assert_eq!(
            redacted_target(route, "/sources/abc/writekey/s3cr3tKey", ""),
            "/sources/abc/writekey/[redacted]"
        );
        assert_eq!(
            redacted_target(
                Some("/sources/{id}"),
                "/sources/abc",
                "pagination%5Bcount%5D=5"
            ),
            "/sources/abc?pagination%5Bcount%5D=5"
        );
        assert_eq!(
            redacted_target(None, "/nowhere", "a=1&token=sgp_abc&sgp_bare"),
            "/nowhere?a=1&token=[redacted]&[redacted]"
        );
    }

    #[test]
    fn invented_methods_are_labelled_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let invented = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&invented), "OTHER");
    }
}
