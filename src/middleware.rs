//! Middleware around every request: the request id echoed back, and the
//! request metrics and access log.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};

use crate::state::AppState;

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

/// The span of every request, which every log line of the request
/// carries. Unlike the default one it logs the client address that the
/// trusted proxies vouch for (not whatever `X-Forwarded-For` a client
/// sends), and it never logs a secret that travels in a URL (a console
/// sign-in link's `token`).
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> tracing::Span {
        let client = request
            .app_data::<web::Data<AppState>>()
            .map(|state| {
                crate::client::Client::of(request.request(), &state.settings.trusted_proxies)
            })
            .unwrap_or_default();
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "default".to_string());
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.to_string())
            .unwrap_or_default();
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %route,
            http.target = %redacted_target(request.uri()),
            http.client_ip = %client.address.as_deref().unwrap_or(""),
            http.user_agent = %client.user_agent.as_deref().unwrap_or(""),
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            request_id = %request_id,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(
        span: tracing::Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// Query parameters whose values are secrets.
const SECRET_PARAMETERS: &[&str] = &["token"];

/// The path and query, with the values of `SECRET_PARAMETERS` replaced.
fn redacted_target(uri: &actix_web::http::Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_string();
    };
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if SECRET_PARAMETERS.contains(&name) => format!("{name}=[redacted]"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{}?{}", uri.path(), redacted.join("&"))
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
pub fn method_label(method: &Method) -> &'static str {
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
    fn secrets_in_urls_are_not_logged() {
        let uri: actix_web::http::Uri = "/app/sign-in/link?token=abc123&next=%2Fapp"
            .parse()
            .unwrap();
        assert_eq!(
            redacted_target(&uri),
            "/app/sign-in/link?token=[redacted]&next=%2Fapp"
        );
        let uri: actix_web::http::Uri = "/sources?pagination%5Bcount%5D=2".parse().unwrap();
        assert_eq!(redacted_target(&uri), "/sources?pagination%5Bcount%5D=2");
    }

    #[test]
    fn invented_methods_are_labelled_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let invented = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&invented), "OTHER");
    }
}
