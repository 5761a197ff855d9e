//! One registration for the router and the OpenAPI document. A module
//! lists its `Resource`s: a path and the handler of each method on it. The
//! router serves exactly those (a known path with another method answers
//! 405 with `Allow`), and `openapi::document` describes exactly those, from
//! the handlers' own argument and answer types (`doc::Describe`).
//!
//! ```ignore
//! Resource::new("/sources/{id}", "Sources")
//!     .get(get, OperationDoc::new("getSource", "One source"))
//!     .patch(update, OperationDoc::new("updateSource", "Change a source")
//!         .status(409, "The slug is taken in this workspace"))
//! ```

use std::collections::BTreeMap;

use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, Responder};

use super::doc::{Describe, OperationDoc};
use super::error::ApiError;
use crate::domain::Role;

/// A path and the operations served on it.
pub struct Resource {
    pub path: &'static str,
    /// The document's group for these operations ("Sources").
    pub tag: &'static str,
    operations: Vec<Operation>,
}

struct Operation {
    method: Method,
    route: actix_web::Route,
    doc: OperationDoc,
}

/// One served (method, path), with what the document says about it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    pub tag: &'static str,
    pub doc: OperationDoc,
}

impl Endpoint {
    /// The least role a token needs here; None: no token at all.
    pub fn least_role(&self) -> Option<Role> {
        self.doc.least_role
    }
}

impl OperationDoc {
    /// Says what an answer of this status means here: a 404's "no such
    /// source", a 409's conflict. Errors implied by the handler's types are
    /// added with generic descriptions.
    pub fn status(mut self, status: u16, description: &str) -> OperationDoc {
        self.error(status, description);
        self
    }

    pub fn describe(mut self, description: &'static str) -> OperationDoc {
        self.description = Some(description);
        self
    }

    /// A link from this operation's answer to `operation_id`, its
    /// parameters given as OpenAPI runtime expressions.
    pub fn link(
        mut self,
        operation_id: &'static str,
        parameters: &[(&'static str, &'static str)],
    ) -> OperationDoc {
        self.links.push((operation_id, parameters.to_vec()));
        self
    }
}

impl Resource {
    pub fn new(path: &'static str, tag: &'static str) -> Resource {
        Resource {
            path,
            tag,
            operations: Vec::new(),
        }
    }

    pub fn get<F, Args>(self, handler: F, doc: OperationDoc) -> Resource
    where
        F: Handler<Args>,
        Args: FromRequest + Describe + 'static,
        F::Output: Responder + Describe + 'static,
    {
        self.on(Method::GET, handler, doc)
    }

    pub fn post<F, Args>(self, handler: F, doc: OperationDoc) -> Resource
    where
        F: Handler<Args>,
        Args: FromRequest + Describe + 'static,
        F::Output: Responder + Describe + 'static,
    {
        self.on(Method::POST, handler, doc)
    }

    pub fn put<F, Args>(self, handler: F, doc: OperationDoc) -> Resource
    where
        F: Handler<Args>,
        Args: FromRequest + Describe + 'static,
        F::Output: Responder + Describe + 'static,
    {
        self.on(Method::PUT, handler, doc)
    }

    pub fn patch<F, Args>(self, handler: F, doc: OperationDoc) -> Resource
    where
        F: Handler<Args>,
        Args: FromRequest + Describe + 'static,
        F::Output: Responder + Describe + 'static,
    {
        self.on(Method::PATCH, handler, doc)
    }

    pub fn delete<F, Args>(self, handler: F, doc: OperationDoc) -> Resource
    where
        F: Handler<Args>,
        Args: FromRequest + Describe + 'static,
        F::Output: Responder + Describe + 'static,
    {
        self.on(Method::DELETE, handler, doc)
    }

    fn on<F, Args>(mut self, method: Method, handler: F, mut doc: OperationDoc) -> Resource
    where
        F: Handler<Args>,
        Args: FromRequest + Describe + 'static,
        F::Output: Responder + Describe + 'static,
    {
        assert!(
            self.operations.iter().all(|o| o.method != method),
            "{method} {} is registered twice",
            self.path
        );
        Args::describe(&mut doc);
        F::Output::describe(&mut doc);
        if !path_parameters(self.path).is_empty() {
            doc.error(404, "No such resource in this workspace");
        }
        self.operations.push(Operation {
            route: web::method(method.clone()).to(handler),
            method,
            doc,
        });
        self
    }

    /// The methods served here, as an `Allow` header says them.
    fn allow(&self) -> String {
        let methods: Vec<&str> = self.operations.iter().map(|o| o.method.as_str()).collect();
        methods.join(", ")
    }

    pub fn endpoints(&self) -> impl Iterator<Item = Endpoint> + '_ {
        self.operations.iter().map(|o| Endpoint {
            method: o.method.clone(),
            path: self.path,
            tag: self.tag,
            doc: o.doc.clone(),
        })
    }

    /// An actix resource of every method, relative to `prefix`.
    fn into_service(self, prefix: &str) -> actix_web::Resource {
        let allow = self.allow();
        let mut resource = web::resource(&self.path[prefix.len()..])
            // For the request metrics and the access log.
            .app_data(crate::middleware::RoutePattern(self.path));
        for operation in self.operations {
            resource = resource.route(operation.route);
        }
        resource.default_service(web::to(move |req: actix_web::HttpRequest| {
            let error = ApiError::MethodNotAllowed {
                method: req.method().to_string(),
                allow: allow.clone(),
            };
            async move { Err::<actix_web::HttpResponse, _>(error) }
        }))
    }
}

/// The names of a path's parameters, in order: `/a/{id}/b/{key}` → id, key.
pub fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// Serves `resources`, grouped into one scope per first path segment: a
/// request is matched against its own group's few paths only.
pub fn configure(cfg: &mut web::ServiceConfig, resources: Vec<Resource>) {
    let mut groups: BTreeMap<&'static str, Vec<Resource>> = BTreeMap::new();
    for resource in resources {
        groups
            .entry(first_segment(resource.path))
            .or_default()
            .push(resource);
    }
    for (prefix, resources) in groups {
        if prefix.is_empty() {
            for resource in resources {
                cfg.service(resource.into_service(""));
            }
        } else {
            let mut scope = web::scope(prefix);
            for resource in resources {
                scope = scope.service(resource.into_service(prefix));
            }
            cfg.service(scope);
        }
    }
}

/// `/sources/{id}` → `/sources`; `/` and parameters first → "".
fn first_segment(path: &'static str) -> &'static str {
    let end = path[1..].find('/').map_or(path.len(), |i| i + 1);
    let segment = &path[..end];
    if segment.len() <= 1 || segment.contains('{') {
        ""
    } else {
        segment
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_parameters() {
        assert_eq!(first_segment("/"), "");
        assert_eq!(first_segment("/sources"), "/sources");
        assert_eq!(first_segment("/sources/{id}/writekey"), "/sources");
        assert_eq!(first_segment("/{id}"), "");
        assert_eq!(
            path_parameters("/sources/{id}/writekey/{key}"),
            ["id", "key"]
        );
        assert!(path_parameters("/sources").is_empty());
    }
}
