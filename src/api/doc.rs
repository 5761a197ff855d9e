//! What the OpenAPI document says about one operation, gathered from the
//! handler's own types. Each argument adds what it can cause (`Caller<R>`:
//! the token, its rate limit and role; `JsonBody<T>`: a request body of
//! schema `T` and the ways a body can be refused; `PageRequest`: the
//! pagination parameters), and so does its answer (`Data<T>`, `Created<T>`).
//! A handler cannot change what it takes or answers without the document
//! changing with it.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::domain::Role;

/// Implemented by every type a registered handler takes or returns.
pub trait Describe {
    fn describe(doc: &mut OperationDoc);
}

/// One operation, as `openapi::document` turns it into OpenAPI.
#[derive(Debug, Clone)]
pub struct OperationDoc {
    pub operation_id: &'static str,
    pub summary: &'static str,
    pub description: Option<&'static str>,
    /// None: no token is needed. Some: a bearer token of at least this role.
    pub least_role: Option<Role>,
    /// Query and header parameters; path parameters come from the path.
    pub parameters: Vec<Value>,
    pub request_body: Option<RequestBodyDoc>,
    pub responses: BTreeMap<u16, ResponseDoc>,
    /// Every schema the operation refers to, by component name.
    pub schemas: BTreeMap<String, Value>,
    /// OpenAPI links from a successful answer: (target operation id,
    /// [(parameter, runtime expression)]). Links from what creates or lists
    /// a resource to what takes its id are added by `openapi` itself.
    pub links: Vec<(&'static str, Vec<(&'static str, &'static str)>)>,
}

#[derive(Debug, Clone)]
pub struct RequestBodyDoc {
    /// `application/json`, or `application/x-www-form-urlencoded` for the
    /// OAuth token endpoint.
    pub media_type: &'static str,
    pub schema: Value,
    /// The top-level fields the body may have, from the parser (`FromBody`);
    /// a unit test holds them equal to the schema's properties.
    pub fields: &'static [&'static str],
}

#[derive(Debug, Clone)]
pub struct ResponseDoc {
    pub description: String,
    pub content: Content,
    /// Headers this answer always carries: (name, description, schema).
    pub headers: Vec<(&'static str, &'static str, Value)>,
}

#[derive(Debug, Clone)]
pub enum Content {
    /// The `Errors` body.
    Error,
    /// A JSON body of this schema.
    Json(Value),
    /// A body of this media type that is not JSON.
    Other {
        media_type: &'static str,
        schema: Value,
    },
}

impl OperationDoc {
    pub fn new(operation_id: &'static str, summary: &'static str) -> OperationDoc {
        OperationDoc {
            operation_id,
            summary,
            description: None,
            least_role: None,
            parameters: Vec::new(),
            request_body: None,
            responses: BTreeMap::new(),
            schemas: BTreeMap::new(),
            links: Vec::new(),
        }
    }

    /// A reference to `T`'s schema, which (with every schema it refers to)
    /// joins the document's components.
    pub fn schema<T: ToSchema>(&mut self) -> Value {
        let mut referenced = Vec::new();
        T::schemas(&mut referenced);
        referenced.push((T::name().into_owned(), T::schema()));
        for (name, schema) in referenced {
            let schema = serde_json::to_value(schema).expect("schemas serialise");
            self.schemas.insert(name, schema);
        }
        json!({ "$ref": format!("#/components/schemas/{}", T::name()) })
    }

    /// An answer of this status; a later one for the same status replaces it.
    pub fn answer(&mut self, status: u16, description: impl Into<String>, content: Content) {
        self.responses.insert(
            status,
            ResponseDoc {
                description: description.into(),
                content,
                headers: Vec::new(),
            },
        );
    }

    /// A header the answer of `status` (already described) always carries.
    pub fn header(
        &mut self,
        status: u16,
        name: &'static str,
        description: &'static str,
        schema: Value,
    ) {
        if let Some(answer) = self.responses.get_mut(&status) {
            answer.headers.push((name, description, schema));
        }
    }

    /// An error this operation can answer with, unless a more specific
    /// description of that status is already there.
    pub fn error(&mut self, status: u16, description: &str) {
        self.responses.entry(status).or_insert_with(|| ResponseDoc {
            description: description.to_string(),
            content: Content::Error,
            headers: Vec::new(),
        });
    }

    pub fn query(&mut self, name: &str, description: &str, schema: Value) {
        self.parameters.push(json!({
            "name": name,
            "in": "query",
            "required": false,
            "description": description,
            "schema": schema,
        }));
    }
}

impl<T: Describe> Describe for Result<T, super::error::ApiError> {
    fn describe(doc: &mut OperationDoc) {
        T::describe(doc)
    }
}

impl<T: ?Sized> Describe for actix_web::web::Data<T> {
    fn describe(_: &mut OperationDoc) {}
}

impl Describe for actix_web::HttpRequest {
    fn describe(_: &mut OperationDoc) {}
}

/// Path parameters are named by the path itself (`route::path_parameters`).
impl<T> Describe for actix_web::web::Path<T> {
    fn describe(_: &mut OperationDoc) {}
}

/// A raw body (the alert endpoint) is described where it is registered.
impl Describe for actix_web::web::Payload {
    fn describe(_: &mut OperationDoc) {}
}

macro_rules! describe_tuple {
    ($($T:ident),*) => {
        impl<$($T: Describe),*> Describe for ($($T,)*) {
            fn describe(_doc: &mut OperationDoc) {
                $($T::describe(_doc);)*
            }
        }
    };
}

describe_tuple!();
describe_tuple!(A);
describe_tuple!(A, B);
describe_tuple!(A, B, C);
describe_tuple!(A, B, C, D);
describe_tuple!(A, B, C, D, E);
