//! Successful answers: `{"data": …}` around a typed value, serialised
//! straight to bytes. The value's type is also what the OpenAPI document
//! declares, so the two cannot drift apart.

use actix_web::body::BoxBody;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse, Responder};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::doc::{Content, Describe, OperationDoc};
use super::error::ApiError;

/// 200 `{"data": T}`.
pub struct Data<T>(pub T);

/// 201 `{"data": T}`: something was created.
pub struct Created<T>(pub T);

/// What a DELETE answers: `{"status": "SUCCESS"}`, as Segment's API does.
#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    status: DoneStatus,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
enum DoneStatus {
    Success,
}

impl Done {
    pub fn success() -> Data<Done> {
        Data(Done {
            status: DoneStatus::Success,
        })
    }
}

#[derive(Serialize)]
struct Envelope<'a, T> {
    data: &'a T,
}

fn respond<T: Serialize>(status: StatusCode, value: &T) -> HttpResponse {
    // Room for a typical resource with its catalog entry (under 1 KiB):
    // serde_json starts at 128 bytes and grows by copying.
    let mut bytes = Vec::with_capacity(1024);
    match serde_json::to_writer(&mut bytes, &Envelope { data: value }) {
        Ok(()) => HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .body(bytes),
        Err(e) => actix_web::ResponseError::error_response(&ApiError::internal(e)),
    }
}

/// The schema of `{"data": T}`.
fn envelope<T: ToSchema>(doc: &mut OperationDoc) -> Content {
    let data = doc.schema::<T>();
    Content::Json(json!({
        "type": "object",
        "required": ["data"],
        "properties": { "data": data },
        "additionalProperties": false,
    }))
}

impl<T: Serialize> Responder for Data<T> {
    type Body = BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        respond(StatusCode::OK, &self.0)
    }
}

impl<T: Serialize> Responder for Created<T> {
    type Body = BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        respond(StatusCode::CREATED, &self.0)
    }
}

impl<T: ToSchema> Describe for Data<T> {
    fn describe(doc: &mut OperationDoc) {
        let content = envelope::<T>(doc);
        doc.answer(200, "Done", content);
    }
}

impl<T: ToSchema> Describe for Created<T> {
    fn describe(doc: &mut OperationDoc) {
        let content = envelope::<T>(doc);
        doc.answer(201, "Created", content);
    }
}
