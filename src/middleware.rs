//! Middleware around every request: the request id echoed back, and the
//! request metrics and access log.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use tracing_actix_web::{RequestId, RootSpanBuilder};

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
        let mut text = uuid::Uuid::encode_buffer();
        if let Ok(value) = HeaderValue::from_str(id.as_hyphenated().encode_lower(&mut text)) {
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
        // Set by the route that answered; matching the path again would
        // cost a second pass through the router.
        let route = match res.request().app_data::<RoutePattern>() {
            Some(RoutePattern("")) => "/",
            Some(RoutePattern(pattern)) => pattern,
            None => "unmatched",
        };
        let status = res.status();
        let elapsed = started.elapsed();
        let labels = [route, method, status.as_str()];
        state.metrics.http_requests.with_label_values(&labels).inc();
        state
            .metrics
            .http_latency
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
        // The access log: inside the request's span, so it carries the
        // request id. Probes and scrapes only at debug level.
        // Whole microseconds, so the line says 0.0057 rather than
        // 0.005703000000000001.
        let elapsed_ms = elapsed.as_micros() as f64 / 1000.0;
        if matches!(route, "/healthz" | "/readyz" | "/metrics") {
            tracing::debug!(
                route,
                status = status.as_u16(),
                elapsed_ms,
                "request completed"
            );
        } else {
            tracing::info!(
                route,
                status = status.as_u16(),
                elapsed_ms,
                "request completed"
            );
        }
    }
    Ok(res)
}

/// The route pattern (`/sources/{id}`) of the route that answered a
/// request, put in its app data when the route is registered.
#[derive(Debug, Clone, Copy)]
pub struct RoutePattern(pub &'static str);

/// The span every log line of a request carries: its id and method (the
/// access line adds the route pattern and the status). Never the raw path,
/// which can hold ids and write keys. Few fields, because with JSON logs
/// every field of every request's span is formatted; tracing-actix-web's
/// default span has sixteen, which cost more than the rest of a health
/// check.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> tracing::Span {
        let request_id = request.extensions().get::<RequestId>().copied();
        let method = method_label(request.method());
        match request_id {
            Some(request_id) => {
                // As text, so the span records a str rather than formatting
                // a Display.
                let mut text = uuid::Uuid::encode_buffer();
                let request_id: &str = request_id.as_hyphenated().encode_lower(&mut text);
                tracing::info_span!("HTTP request", method, request_id)
            }
            None => tracing::info_span!("HTTP request", method, request_id = ""),
        }
    }

    fn on_request_end<B: MessageBody>(
        _span: tracing::Span,
        _outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        // The access line (`record_request`) says how the request ended.
    }
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
    fn invented_methods_are_labelled_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let invented = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&invented), "OTHER");
    }
}
