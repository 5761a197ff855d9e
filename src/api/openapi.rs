//! `GET /openapi.json`: an OpenAPI 3.1 document built from the same
//! registration the router is built from (`route::Resource`), so every
//! route served is documented and nothing else is. Each operation's
//! parameters, body and answers come from its handler's types
//! (`doc::Describe`); this module adds what the Public API's conventions
//! (`api::conventions`) do to every answer: media types, 406, rate-limit
//! headers. Built once, then served as bytes.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::{json, Map, Value};

use super::doc::{Content, OperationDoc};
use super::error::ErrorBody;
use super::route::{path_parameters, Endpoint};
use super::MEDIA_TYPES;

/// The document, serialised once.
pub static DOCUMENT: LazyLock<Vec<u8>> =
    LazyLock::new(|| serde_json::to_vec(&document()).expect("the document serialises"));

const DESCRIPTION: &str = "A Segment-style Public API whose tokens are protected by GitHub \
secret scanning. Send `Authorization: Bearer sgp_…` (a Public API token), or an OAuth access \
token (`sgo_…`) from `POST /oauth2/token`. Success is `{\"data\": …}`, failure \
`{\"errors\": [{\"type\", \"message\", \"field\"?}]}`, never both. Lists take \
`pagination[count]` (1–1000, default 200) and `pagination[cursor]`. Answers come as \
`application/vnd.segment.v1+json` unless `Accept` asks for `…v1beta+json`, `…v1alpha+json` or \
`application/json`. Errors come in a fixed order: the client address's failed \
authentications (429), the token (401), its rate limit (429), its role (403), then the body \
(415, 413, 408, 400, 422).";

/// Which conventions an endpoint follows.
#[derive(Clone, Copy, PartialEq)]
enum Surface {
    /// Token, content negotiation, rate-limit headers.
    PublicApi,
    /// Health, metrics, this document, GitHub's alerts: plain JSON.
    Operations,
}

pub fn document() -> Value {
    let mut schemas: BTreeMap<String, Value> = BTreeMap::new();
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    let mut tags: Vec<&str> = Vec::new();
    let surfaces = [
        (crate::operations::endpoints(), Surface::Operations),
        (super::endpoints(), Surface::PublicApi),
    ];
    for (endpoints, surface) in surfaces {
        for endpoint in endpoints {
            if !tags.contains(&endpoint.tag) {
                tags.push(endpoint.tag);
            }
            schemas.extend(endpoint.doc.schemas.clone());
            let method = endpoint.method.as_str().to_ascii_lowercase();
            let operation = operation(&endpoint, surface);
            paths
                .entry(endpoint.path)
                .or_default()
                .insert(method, operation);
        }
    }
    let mut errors = Vec::new();
    <ErrorBody as utoipa::ToSchema>::schemas(&mut errors);
    errors.push((
        <ErrorBody as utoipa::ToSchema>::name().into_owned(),
        <ErrorBody as utoipa::PartialSchema>::schema(),
    ));
    for (name, schema) in errors {
        schemas.insert(
            name,
            serde_json::to_value(schema).expect("schemas serialise"),
        );
    }
    for schema in schemas.values_mut() {
        close_objects(schema);
    }
    link_ids(&mut paths, &schemas);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "leakguard",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
            "license": { "name": "MIT", "identifier": "MIT" },
        },
        "tags": tags.iter().map(|t| json!({ "name": t })).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "sgp_… or sgo_…",
                    "description": "A leakguard Public API token (`sgp_…`), or an OAuth access \
                        token (`sgo_…`)",
                },
                "oauth2": {
                    "type": "oauth2",
                    "description": "An OAuth app's access token (`sgo_…`, sent as a bearer \
                        token): a client assertion signed with the app's key, exchanged at the \
                        token endpoint. `public_api:read_write` acts as the member role, \
                        `public_api:read` as read_only.",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": crate::oauth::TOKEN_PATH,
                            "scopes": crate::domain::Scope::ALL
                                .iter()
                                .map(|s| (s.as_str().to_string(), json!(format!("Acts as the {} role", s.role()))))
                                .collect::<Map<String, Value>>(),
                        },
                    },
                },
            },
        },
        "security": [{ "bearer": [] }],
    })
}

fn operation(endpoint: &Endpoint, surface: Surface) -> Value {
    let doc = &endpoint.doc;
    let mut description = doc.description.unwrap_or("").to_string();
    if let Some(role) = doc.least_role {
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str(&format!("Needs a token with at least the `{role}` role."));
    }
    let mut parameters: Vec<Value> = path_parameters(endpoint.path)
        .into_iter()
        .map(path_parameter)
        .collect();
    parameters.extend(doc.parameters.iter().cloned());
    let mut op = json!({
        "operationId": doc.operation_id,
        "summary": doc.summary,
        "tags": [endpoint.tag],
        "responses": responses(doc, surface),
    });
    if !description.is_empty() {
        op["description"] = description.into();
    }
    if !parameters.is_empty() {
        op["parameters"] = parameters.into();
    }
    op["security"] = security(doc.least_role);
    if let Some(body) = &doc.request_body {
        // Segment's versioned types (`application/vnd.segment.v1+json`…)
        // are taken too, as any `application/…+json` is; listing four
        // identical alternatives breaks code generators.
        let mut request = json!({
            "required": true,
            "content": content(&[body.media_type], &body.schema),
        });
        if surface == Surface::PublicApi {
            request["description"] = "Sent as `application/json`, or as any `application/…+json` type such as Segment's `application/vnd.segment.v1+json`.".into();
        }
        op["requestBody"] = request;
    }
    op
}

/// Who may call: no one in particular, a bearer token, or an access token
/// whose scope gives the role.
fn security(least_role: Option<crate::domain::Role>) -> Value {
    let Some(least) = least_role else {
        return json!([]);
    };
    let mut any = vec![json!({ "bearer": [] })];
    for scope in crate::domain::Scope::ALL {
        if scope.role() >= least {
            any.push(json!({ "oauth2": [scope.as_str()] }));
        }
    }
    Value::Array(any)
}

/// A path parameter: every `{id}` is an id the API issued (an id of
/// another shape names nothing: 404); other names are described here.
fn path_parameter(name: &str) -> Value {
    let label_part = json!({
        "type": "string",
        "minLength": 1,
        "maxLength": crate::domain::Label::MAX,
        "pattern": crate::domain::LABEL_PATTERN,
    });
    let (description, schema) = match name {
        "id" | "keyId" => ("An id this API issued", crate::domain::id_schema()),
        "sourceId" => ("A source's id", crate::domain::id_schema()),
        "key" => ("The label's key", label_part.clone()),
        "value" => ("The label's value", label_part),
        "writeKey" => (
            "One of the source's `writeKeys` (log lines show the route, never the path)",
            json!({ "type": "string", "minLength": 1 }),
        ),
        other => panic!("path parameter {{{other}}} has no description in openapi.rs"),
    };
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": description,
        "schema": schema,
    })
}

fn content(media_types: &[&str], schema: &Value) -> Value {
    media_types
        .iter()
        .map(|m| (m.to_string(), json!({ "schema": schema })))
        .collect::<Map<String, Value>>()
        .into()
}

fn responses(doc: &OperationDoc, surface: Surface) -> Value {
    let mut answers = doc.responses.clone();
    if surface == Surface::PublicApi {
        answers
            .entry(406)
            .or_insert_with(|| super::doc::ResponseDoc {
                description: "`Accept` allows none of the media types this API answers with".into(),
                content: Content::Error,
                headers: Vec::new(),
            });
    }
    let errors = json!({ "$ref": "#/components/schemas/Errors" });
    let mut out = Map::new();
    for (status, answer) in answers {
        let media: &[&str] = match (surface, status) {
            // Refused before the media type is chosen.
            (Surface::PublicApi, 406) => &["application/json"],
            (Surface::PublicApi, _) => MEDIA_TYPES,
            (Surface::Operations, _) => &["application/json"],
        };
        let body = match &answer.content {
            Content::Error => content(media, &errors),
            Content::Json(schema) => content(media, schema),
            Content::Other { media_type, schema } => content(&[media_type], schema),
        };
        let mut response = json!({ "description": answer.description, "content": body });
        let headers = headers(doc, surface, status);
        if !headers.is_empty() {
            response["headers"] = headers.into();
        }
        if (200..300).contains(&status) {
            for (target, parameters) in &doc.links {
                let parameters: Map<String, Value> = parameters
                    .iter()
                    .map(|(name, expression)| (name.to_string(), json!(expression)))
                    .collect();
                response["links"][target] =
                    json!({ "operationId": target, "parameters": parameters });
            }
        }
        out.insert(status.to_string(), response);
    }
    out.into()
}

/// The headers of an answer: the rate limit's on every answer to a token
/// that got past authentication, `Retry-After` where it says when to.
fn headers(doc: &OperationDoc, surface: Surface, status: u16) -> Map<String, Value> {
    let mut headers = Map::new();
    if surface == Surface::PublicApi && doc.least_role.is_some() {
        let required = match status {
            // Refused before the token is read.
            401 | 406 => None,
            // A path that names nothing is refused before the token is
            // read; the database can fail before the token is read, or
            // after; an address that failed to authenticate too often is
            // refused before its token is read, a spent token after.
            404 | 429 | 503 => Some(false),
            _ => Some(true),
        };
        if let Some(required) = required {
            for (name, description) in [
                (
                    "X-RateLimit-Consumed",
                    "Requests of the token's bucket in use",
                ),
                (
                    "X-RateLimit-Remaining",
                    "Requests the token may still make at once",
                ),
                (
                    "X-RateLimit-Reset",
                    "Seconds until the bucket is full again",
                ),
            ] {
                headers.insert(name.into(), count_header(description, required));
            }
        }
    }
    let error_answer = doc
        .responses
        .get(&status)
        .is_some_and(|r| matches!(r.content, Content::Error));
    if status == 429 || (status == 503 && error_answer) {
        headers.insert(
            "Retry-After".into(),
            count_header("Seconds to wait before trying again", true),
        );
    }
    for (name, description, schema) in doc.responses.get(&status).map_or(&[][..], |r| &r.headers) {
        headers.insert(
            name.to_string(),
            json!({ "description": description, "required": true, "schema": schema }),
        );
    }
    headers
}

fn count_header(description: &str, required: bool) -> Value {
    json!({
        "description": description,
        "required": required,
        "schema": { "type": "integer", "minimum": 0 },
    })
}

/// OpenAPI links, for clients and for schemathesis's stateful tests: from
/// the operations that create (`POST /xs`, 201) or list (`GET /xs`) a
/// resource to every operation on `/xs/{id}…` that needs no other
/// parameter, with `id` taken from the answer.
fn link_ids(paths: &mut BTreeMap<&str, Map<String, Value>>, schemas: &BTreeMap<String, Value>) {
    // The property of an answer's `data` that holds the resource (the first
    // that is an object) or the list (the first that is an array).
    let property = |op: &Value, status: &str, list: bool| -> Option<String> {
        let data = op["responses"][status]["content"]["application/json"]["schema"]["properties"]
            ["data"]["$ref"]
            .as_str()?;
        let output = &schemas[data.rsplit('/').next()?];
        output["properties"]
            .as_object()?
            .iter()
            .find_map(|(name, schema)| {
                let is_list = schema["type"] == "array";
                let is_ref = schema["$ref"].is_string();
                ((list && is_list) || (!list && is_ref)).then(|| name.clone())
            })
    };
    let mut links: Vec<(String, String, String, Value)> = Vec::new();
    for (collection, item) in paths.iter() {
        if collection.contains('{') {
            continue;
        }
        for (method, status, list) in [("post", "201", false), ("get", "200", true)] {
            let Some(op) = item.get(method) else { continue };
            let Some(key) = property(op, status, list) else {
                continue;
            };
            let pointer = if list {
                format!("$response.body#/data/{key}/0/id")
            } else {
                format!("$response.body#/data/{key}/id")
            };
            let prefix = format!("{collection}/{{id}}");
            for (path, target) in paths.iter() {
                let only_id = path_parameters(path) == ["id"];
                if !(path.starts_with(&prefix) && only_id) {
                    continue;
                }
                for target_op in target.values() {
                    let id = target_op["operationId"].as_str().unwrap_or_default();
                    links.push((
                        collection.to_string(),
                        method.to_string(),
                        status.to_string(),
                        json!({ "name": id, "link": {
                            "operationId": id,
                            "parameters": { "path.id": pointer },
                        }}),
                    ));
                }
            }
        }
    }
    for (path, method, status, link) in links {
        let Some(response) = paths
            .get_mut(path.as_str())
            .and_then(|item| item.get_mut(&method))
            .and_then(|op| op["responses"].get_mut(&status))
        else {
            continue;
        };
        let name = link["name"].as_str().unwrap_or_default().to_string();
        response["links"][name] = link["link"].clone();
    }
}

/// Every object schema with listed properties refuses others: answers
/// carry exactly what their types serialise, and request bodies refuse
/// unknown fields (`validate::Fields`). Free-form objects (settings,
/// audit details) list no properties and stay open.
fn close_objects(schema: &mut Value) {
    let Value::Object(map) = schema else {
        if let Value::Array(items) = schema {
            items.iter_mut().for_each(close_objects);
        }
        return;
    };
    if map.contains_key("properties") && !map.contains_key("additionalProperties") {
        map.insert("additionalProperties".into(), false.into());
    }
    for (key, value) in map.iter_mut() {
        // `not` only says what must not hold; closing it would change that.
        if key != "not" {
            close_objects(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each body's parser reads exactly the fields its schema lists.
    #[test]
    fn body_fields_match_their_schemas() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        for endpoint in super::super::endpoints() {
            let Some(body) = &endpoint.doc.request_body else {
                continue;
            };
            let reference = body.schema["$ref"]
                .as_str()
                .expect("request bodies are named schemas");
            let name = reference.rsplit('/').next().unwrap();
            // A body whose settings depend on its kind has one variant per
            // kind; each must list exactly the fields read.
            let variants: Vec<&str> = match schemas[name]["oneOf"].as_array() {
                Some(refs) => refs
                    .iter()
                    .map(|r| r["$ref"].as_str().unwrap().rsplit('/').next().unwrap())
                    .collect(),
                None => vec![name],
            };
            for name in variants {
                let mut listed: Vec<&str> = schemas[name]["properties"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                let mut read = body.fields.to_vec();
                listed.sort();
                read.sort();
                assert_eq!(listed, read, "{} {} {name}", endpoint.method, endpoint.path);
                assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
                if let Some(labels) = schemas[name]["properties"].get("labels") {
                    assert_eq!(
                        labels["maxItems"],
                        crate::api::validate::MAX_LABELS,
                        "{name}"
                    );
                }
            }
        }
    }
}
