//! `/tracking-plans`: what events a workspace's sources are expected to
//! send, as Segment's `TrackingPlansApi` has them. A plan holds rules, each
//! a JSON Schema for one kind of event (checked as JSON Schema before it is
//! stored), and the sources that follow it (each source follows at most one
//! plan).

use std::collections::BTreeMap;
use std::future::{ready, Ready};

use actix_web::{web, FromRequest, HttpRequest};
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::auth::{Caller, Identity, Member};
use super::body::{FromBody, JsonBody};
use super::doc::{Describe, OperationDoc};
use super::error::{ApiError, FieldError};
use super::pagination::{describe_pagination, PageRequest, Pagination};
use super::path_id;
use super::query::QueryParams;
use super::reply::{Created, Data, Done};
use super::route::Resource;
use super::sources::SourceView;
use super::validate::Fields;
use crate::audit::{Changes, NewEvent};
use crate::db::sources;
use crate::db::tracking_plans::{self, Rule, TrackingPlan};
use crate::domain::{Description, Name, Parse, Slug, SourceId, TrackingPlanId};
use crate::state::AppState;
use crate::time::Timestamp;

/// The most rules a plan may hold.
pub const MAX_RULES: usize = 2000;
/// The largest JSON Schema of one rule, as compact JSON.
pub const MAX_RULE_SCHEMA_BYTES: usize = 32 * 1024;
/// The longest rule key (an event name), in characters.
pub const MAX_RULE_KEY: usize = 200;
/// The highest rule version.
pub const MAX_RULE_VERSION: i64 = 1_000_000;
/// The most rules one `DELETE …/rules` names: they travel in the query
/// string, which must fit in the request head (32 KiB).
pub const MAX_REMOVED_RULES: usize = 10;

pub fn resources() -> Vec<Resource> {
    const NO_SUCH: &str = "No such tracking plan in this workspace";
    vec![
        Resource::new("/tracking-plans", "Tracking Plans")
            .get(
                list,
                OperationDoc::new(
                    "listTrackingPlans",
                    "The workspace's tracking plans, oldest first",
                ),
            )
            .post(
                create,
                OperationDoc::new("createTrackingPlan", "Create a tracking plan"),
            ),
        Resource::new("/tracking-plans/{id}", "Tracking Plans")
            .get(
                get,
                OperationDoc::new("getTrackingPlan", "One tracking plan").status(404, NO_SUCH),
            )
            .patch(
                update,
                OperationDoc::new("updateTrackingPlan", "Rename or describe a tracking plan")
                    .status(404, NO_SUCH),
            )
            .delete(
                delete,
                OperationDoc::new("deleteTrackingPlan", "Delete a tracking plan")
                    .describe("Its rules go with it, and its sources follow no plan.")
                    .status(404, NO_SUCH),
            ),
        Resource::new("/tracking-plans/{id}/rules", "Tracking Plans")
            .get(
                list_rules,
                OperationDoc::new("listRulesFromTrackingPlan", "A plan's rules, oldest first")
                    .status(404, NO_SUCH),
            )
            .put(
                replace_rules,
                OperationDoc::new("replaceRulesInTrackingPlan", "Replace a plan's rules")
                    .describe("Each rule's jsonSchema must be a valid JSON Schema.")
                    .status(404, NO_SUCH),
            )
            .patch(
                update_rules,
                OperationDoc::new("updateRulesInTrackingPlan", "Add or change rules of a plan")
                    .describe(
                        "A rule with the type, key and version of one of the plan's replaces \
                         it (`newKey` renames it); any other is added.",
                    )
                    .status(404, NO_SUCH),
            )
            .delete(
                remove_rules,
                OperationDoc::new("removeRulesFromTrackingPlan", "Remove rules from a plan")
                    .describe("Rules the plan does not have are ignored.")
                    .status(404, NO_SUCH),
            ),
        Resource::new("/tracking-plans/{id}/sources", "Tracking Plans")
            .get(
                list_sources,
                OperationDoc::new(
                    "listSourcesFromTrackingPlan",
                    "The sources that follow a plan, oldest first",
                )
                .status(404, NO_SUCH),
            )
            .post(
                add_source,
                OperationDoc::new("addSourceToTrackingPlan", "Make a source follow a plan")
                    .describe("A source follows at most one plan.")
                    .status(404, NO_SUCH)
                    .status(409, "The source follows another tracking plan")
                    .status(
                        422,
                        "Every problem with the body, including a sourceId that is not a source of this workspace",
                    ),
            )
            .delete(
                remove_source,
                OperationDoc::new("removeSourceFromTrackingPlan", "Stop a source following a plan")
                    .status(
                        404,
                        "No such tracking plan in this workspace, or the source does not follow it",
                    ),
            ),
    ]
}

/// Segment's kinds of tracking plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PlanType {
    Engage,
    Live,
    PropertyLibrary,
    RuleLibrary,
    Template,
}

impl PlanType {
    const ALL: [PlanType; 5] = [
        PlanType::Engage,
        PlanType::Live,
        PlanType::PropertyLibrary,
        PlanType::RuleLibrary,
        PlanType::Template,
    ];

    fn as_str(self) -> &'static str {
        match self {
            PlanType::Engage => "ENGAGE",
            PlanType::Live => "LIVE",
            PlanType::PropertyLibrary => "PROPERTY_LIBRARY",
            PlanType::RuleLibrary => "RULE_LIBRARY",
            PlanType::Template => "TEMPLATE",
        }
    }
}

impl Parse for PlanType {
    fn parse(text: &str) -> Result<PlanType, String> {
        PlanType::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = PlanType::ALL.iter().map(|t| t.as_str()).collect();
                format!("must be one of {}", names.join(", "))
            })
    }
}

/// Segment's kinds of rule: one per kind of call a source makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum RuleType {
    Common,
    Group,
    Identify,
    Page,
    Screen,
    Track,
}

impl RuleType {
    const ALL: [RuleType; 6] = [
        RuleType::Common,
        RuleType::Group,
        RuleType::Identify,
        RuleType::Page,
        RuleType::Screen,
        RuleType::Track,
    ];

    fn as_str(self) -> &'static str {
        match self {
            RuleType::Common => "COMMON",
            RuleType::Group => "GROUP",
            RuleType::Identify => "IDENTIFY",
            RuleType::Page => "PAGE",
            RuleType::Screen => "SCREEN",
            RuleType::Track => "TRACK",
        }
    }
}

impl Parse for RuleType {
    fn parse(text: &str) -> Result<RuleType, String> {
        RuleType::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = RuleType::ALL.iter().map(|t| t.as_str()).collect();
                format!("must be one of {}", names.join(", "))
            })
    }
}

/// A tracking plan as the API shows it: Segment's `TrackingPlanV1`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = TrackingPlan)]
pub struct TrackingPlanView {
    id: TrackingPlanId,
    name: Name,
    /// Made from the name.
    slug: Slug,
    description: Description,
    #[serde(rename = "type")]
    #[schema(value_type = PlanType)]
    plan_type: String,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<TrackingPlan> for TrackingPlanView {
    fn from(plan: TrackingPlan) -> TrackingPlanView {
        TrackingPlanView {
            slug: Slug::from_name(plan.name.as_str()),
            id: plan.id,
            name: plan.name,
            description: plan.description,
            plan_type: plan.plan_type,
            created_at: plan.created_at,
            updated_at: plan.updated_at,
        }
    }
}

/// A rule as the API shows it: Segment's `RuleV1`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Rule)]
pub struct RuleView {
    #[serde(rename = "type")]
    #[schema(value_type = RuleType)]
    rule_type: String,
    /// Absent for rules without a key.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    key: Option<String>,
    /// A JSON Schema.
    #[schema(value_type = Value)]
    json_schema: Value,
    #[schema(minimum = 1)]
    version: i64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<Rule> for RuleView {
    fn from(rule: Rule) -> RuleView {
        RuleView {
            rule_type: rule.rule_type,
            key: (!rule.key.is_empty()).then_some(rule.key),
            json_schema: rule.json_schema,
            version: rule.version,
            created_at: rule.created_at,
            updated_at: rule.updated_at,
        }
    }
}

/// The plan `id` of the caller's workspace, or 404 (also for other
/// workspaces' ids).
async fn find(
    conn: impl Into<crate::db::Conn<'_>>,
    caller: &Identity,
    id: &str,
) -> Result<TrackingPlan, ApiError> {
    let id: TrackingPlanId = path_id(id, "tracking plan")?;
    tracking_plans::find(conn, &caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("tracking plan"))
}

fn event(
    event_type: &'static str,
    caller: &Identity,
    plan: &TrackingPlan,
    details: Value,
) -> NewEvent {
    NewEvent {
        event_type,
        actor: caller.actor(),
        resource_id: plan.id.to_string(),
        resource_type: "tracking_plan",
        resource_name: plan.name.to_string(),
        details,
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListTrackingPlansOutput {
    tracking_plans: Vec<TrackingPlanView>,
    pagination: Pagination,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackingPlanOutput {
    tracking_plan: TrackingPlanView,
}

#[derive(Serialize, ToSchema)]
pub struct ListRulesOutput {
    rules: Vec<RuleView>,
    pagination: Pagination,
}

#[derive(Serialize, ToSchema)]
pub struct ListTrackingPlanSourcesOutput {
    sources: Vec<SourceView>,
    pagination: Pagination,
}

/// `POST /tracking-plans`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct CreateTrackingPlanInput {
    name: Name,
    /// Default: empty.
    description: Option<Description>,
    #[schema(value_type = PlanType)]
    r#type: PlanType,
}

impl FromBody for CreateTrackingPlanInput {
    const FIELDS: &'static [&'static str] = &["name", "description", "type"];

    fn read(fields: &mut Fields) -> Option<CreateTrackingPlanInput> {
        let name = fields.required("name");
        let description = fields.optional("description");
        let plan_type = fields.required("type");
        Some(CreateTrackingPlanInput {
            name: name?,
            description,
            r#type: plan_type?,
        })
    }
}

/// `PATCH /tracking-plans/{id}`: the fields to change.
#[derive(ToSchema)]
pub struct UpdateTrackingPlanInput {
    name: Option<Name>,
    description: Option<Description>,
}

impl FromBody for UpdateTrackingPlanInput {
    const FIELDS: &'static [&'static str] = &["name", "description"];
    const AT_LEAST_ONE: bool = true;

    fn read(fields: &mut Fields) -> Option<UpdateTrackingPlanInput> {
        Some(UpdateTrackingPlanInput {
            name: fields.optional("name"),
            description: fields.optional("description"),
        })
    }
}

/// A rule as `PUT …/rules` takes it: Segment's `RuleInputV1`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct RuleInput {
    r#type: RuleType,
    /// The event's name, for the types that have one.
    #[schema(
        min_length = 1,
        max_length = 200,
        nullable,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    key: Option<String>,
    /// A JSON Schema (draft 4, 6, 7, 2019-09 or 2020-12; 2020-12 unless
    /// `$schema` says otherwise). References must stay inside it.
    #[schema(schema_with = json_schema_schema)]
    json_schema: Value,
    #[schema(minimum = 1, maximum = 1_000_000)]
    version: i64,
}

/// A rule as `PATCH …/rules` takes it: Segment's `UpsertRuleV1`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct UpsertRuleInput {
    /// Renames the rule.
    #[schema(
        min_length = 1,
        max_length = 200,
        nullable,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    new_key: Option<String>,
    r#type: RuleType,
    #[schema(
        min_length = 1,
        max_length = 200,
        nullable,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    key: Option<String>,
    /// A JSON Schema, as in `RuleInput`.
    #[schema(schema_with = json_schema_schema)]
    json_schema: Value,
    #[schema(minimum = 1, maximum = 1_000_000)]
    version: i64,
}

/// A rule to remove: Segment's `RemoveRuleV1`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct RemoveRuleInput {
    r#type: RuleType,
    #[schema(
        min_length = 1,
        max_length = 200,
        nullable,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    key: Option<String>,
    #[schema(minimum = 1, maximum = 1_000_000)]
    version: i64,
}

/// A rule's `jsonSchema` in the document: an object or a boolean, as JSON
/// Schemas are; that it is a valid one, the server checks.
fn json_schema_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    let schema = json!({
        "type": ["object", "boolean"],
        "description": "A JSON Schema (draft 4, 6, 7, 2019-09 or 2020-12; 2020-12 unless \
            `$schema` says otherwise) that its draft's meta-schema accepts. References must \
            stay inside it: nothing is fetched.",
    });
    serde_json::from_value(schema).expect("a valid schema")
}

/// What identifies a rule in its plan.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RuleKey {
    rule_type: RuleType,
    /// Empty for none.
    key: String,
    version: i64,
}

impl RuleKey {
    fn of(rule: &Rule) -> Option<RuleKey> {
        Some(RuleKey {
            rule_type: RuleType::parse(&rule.rule_type).ok()?,
            key: rule.key.clone(),
            version: rule.version,
        })
    }

    /// How the audit trail names the rule.
    fn label(&self) -> String {
        let key = if self.key.is_empty() {
            String::new()
        } else {
            format!(" {}", self.key)
        };
        format!("{}{key} v{}", self.rule_type.as_str(), self.version)
    }
}

/// One rule item of a request, read field by field.
struct RuleItem {
    id: RuleKey,
    new_key: Option<String>,
    json_schema: Option<Value>,
}

/// Which of Segment's rule shapes an item has.
#[derive(Clone, Copy, PartialEq)]
enum RuleShape {
    Input,
    Upsert,
    Remove,
}

impl RuleShape {
    fn fields(self) -> &'static [&'static str] {
        match self {
            RuleShape::Input => &["type", "key", "jsonSchema", "version"],
            RuleShape::Upsert => &["newKey", "type", "key", "jsonSchema", "version"],
            RuleShape::Remove => &["type", "key", "version"],
        }
    }
}

fn rule_key_text(
    value: Option<&Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match value {
        None | Some(Value::Null) => Some(String::new()),
        Some(Value::String(s))
            if (1..=MAX_RULE_KEY).contains(&s.chars().count())
                && !s.chars().any(char::is_control) =>
        {
            Some(s.clone())
        }
        Some(_) => {
            errors.push(FieldError::new(
                field,
                format!("must be 1 to {MAX_RULE_KEY} characters, without control characters"),
            ));
            None
        }
    }
}

/// Reads one rule of `shape` at `at` (`rules[3]`), recording its problems.
fn read_rule(
    item: &Value,
    shape: RuleShape,
    at: &str,
    errors: &mut Vec<FieldError>,
) -> Option<RuleItem> {
    let Some(object) = item.as_object() else {
        errors.push(FieldError::new(at, "must be a rule object"));
        return None;
    };
    let before = errors.len();
    for name in object.keys() {
        if !shape.fields().contains(&name.as_str()) {
            errors.push(FieldError::new(
                &format!("{at}.{name}"),
                format!(
                    "unknown field; expected one of {}",
                    shape.fields().join(", ")
                ),
            ));
        }
    }
    let rule_type = match object.get("type").and_then(Value::as_str) {
        Some(text) => RuleType::parse(text)
            .map_err(|m| errors.push(FieldError::new(&format!("{at}.type"), m)))
            .ok(),
        None => {
            errors.push(FieldError::new(
                &format!("{at}.type"),
                "is required: a rule type",
            ));
            None
        }
    };
    let key = rule_key_text(object.get("key"), &format!("{at}.key"), errors);
    let new_key = match shape {
        RuleShape::Upsert if !object.get("newKey").is_none_or(Value::is_null) => {
            rule_key_text(object.get("newKey"), &format!("{at}.newKey"), errors)
        }
        _ => None,
    };
    // 1.0 is the integer 1, as JSON Schema counts.
    let version = object.get("version").and_then(|v| {
        v.as_i64().or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                .map(|f| f as i64)
        })
    });
    let version = match version {
        Some(v) if (1..=MAX_RULE_VERSION).contains(&v) => Some(v),
        _ => {
            errors.push(FieldError::new(
                &format!("{at}.version"),
                format!("is required: a whole number from 1 to {MAX_RULE_VERSION}"),
            ));
            None
        }
    };
    let json_schema = match shape {
        RuleShape::Remove => None,
        _ => check_json_schema(
            object.get("jsonSchema"),
            &format!("{at}.jsonSchema"),
            errors,
        ),
    };
    if errors.len() > before {
        return None;
    }
    Some(RuleItem {
        id: RuleKey {
            rule_type: rule_type?,
            key: key?,
            version: version?,
        },
        new_key: new_key.filter(|k| !k.is_empty()),
        json_schema,
    })
}

/// A rule's `jsonSchema`, if it is a JSON Schema that can be used as one:
/// valid against its draft's meta-schema, and compilable (its patterns
/// are regular expressions, its references resolve within it: nothing is
/// ever fetched).
fn check_json_schema(
    value: Option<&Value>,
    at: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Value> {
    let Some(schema) = value.filter(|v| !v.is_null()) else {
        errors.push(FieldError::new(at, "is required: a JSON Schema"));
        return None;
    };
    if !schema.is_object() && !schema.is_boolean() {
        errors.push(FieldError::new(
            at,
            "must be a JSON Schema: an object or a boolean",
        ));
        return None;
    }
    let bytes = crate::db::json_text(schema).len();
    if bytes > MAX_RULE_SCHEMA_BYTES {
        errors.push(FieldError::new(
            at,
            format!(
                "takes {bytes} bytes; a rule's schema may take at most {MAX_RULE_SCHEMA_BYTES}"
            ),
        ));
        return None;
    }
    if let Err(e) = jsonschema::meta::validate(schema) {
        errors.push(FieldError::new(
            at,
            format!("is not a valid JSON Schema: {e} (at {})", e.instance_path()),
        ));
        return None;
    }
    if let Err(e) = jsonschema::validator_for(schema) {
        errors.push(FieldError::new(
            at,
            format!("cannot be used as a JSON Schema: {e}"),
        ));
        return None;
    }
    Some(schema.clone())
}

/// Reads a list of rules of `shape`; every problem in `errors`. Two items
/// may not name the same rule.
fn read_rules(
    items: &[Value],
    shape: RuleShape,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<RuleItem> {
    if items.len() > MAX_RULES {
        errors.push(FieldError::new(
            field,
            format!("must hold at most {MAX_RULES} rules"),
        ));
        return Vec::new();
    }
    let mut out: Vec<RuleItem> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if let Some(rule) = read_rule(item, shape, &at, errors) {
            if out.iter().any(|r| r.id == rule.id) {
                errors.push(FieldError::new(
                    &at,
                    format!("names {} twice", rule.id.label()),
                ));
            } else {
                out.push(rule);
            }
        }
    }
    out
}

/// `PUT` and `PATCH …/rules`: `{"rules": [...]}`.
#[derive(ToSchema)]
pub struct ReplaceRulesInput {
    #[schema(max_items = 2000, value_type = Vec<RuleInput>)]
    rules: Vec<Value>,
}

#[derive(ToSchema)]
pub struct UpdateRulesInput {
    #[schema(max_items = 2000, value_type = Vec<UpsertRuleInput>)]
    rules: Vec<Value>,
}

fn rules_field(fields: &mut Fields) -> Option<Vec<Value>> {
    match fields.array("rules") {
        Some(list) => Some(list),
        None => {
            if !fields
                .errors
                .iter()
                .any(|e| e.field.as_deref() == Some("rules"))
            {
                fields.fail("rules", "is required: a list of rules");
            }
            None
        }
    }
}

impl FromBody for ReplaceRulesInput {
    const FIELDS: &'static [&'static str] = &["rules"];

    fn read(fields: &mut Fields) -> Option<ReplaceRulesInput> {
        Some(ReplaceRulesInput {
            rules: rules_field(fields)?,
        })
    }
}

impl FromBody for UpdateRulesInput {
    const FIELDS: &'static [&'static str] = &["rules"];

    fn read(fields: &mut Fields) -> Option<UpdateRulesInput> {
        Some(UpdateRulesInput {
            rules: rules_field(fields)?,
        })
    }
}

/// `POST …/sources`: `{"sourceId"}`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct AddSourceInput {
    /// A source of this workspace.
    source_id: SourceId,
}

impl FromBody for AddSourceInput {
    const FIELDS: &'static [&'static str] = &["sourceId"];

    fn read(fields: &mut Fields) -> Option<AddSourceInput> {
        Some(AddSourceInput {
            source_id: fields.required("sourceId")?,
        })
    }
}

/// `GET /tracking-plans`: the page, and optionally one type of plan.
pub struct PlanListQuery {
    page: PageRequest,
    plan_type: Option<PlanType>,
}

impl FromRequest for PlanListQuery {
    type Error = ApiError;
    type Future = Ready<Result<PlanListQuery, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let query = QueryParams::parse(req.query_string());
        let mut errors = Vec::new();
        let page = PageRequest::from_query(&query, &mut errors);
        let plan_type = query.get("type").and_then(|t| {
            PlanType::parse(t)
                .map_err(|m| errors.push(FieldError::new("type", m)))
                .ok()
        });
        ready(if errors.is_empty() {
            Ok(PlanListQuery { page, plan_type })
        } else {
            Err(ApiError::Validation(errors))
        })
    }
}

impl Describe for PlanListQuery {
    fn describe(doc: &mut OperationDoc) {
        describe_pagination(doc);
        let schema = doc.schema::<PlanType>();
        doc.query("type", "Only plans of this type", schema);
        doc.error(422, "A bad pagination parameter or type");
    }
}

/// `DELETE …/rules`: the rules to remove, as `rules` (a JSON array, as the
/// document says) or as Segment's SDK sends them (`rules[0][type]=TRACK&…`).
pub struct RemoveRulesQuery(Vec<RuleItem>);

impl RemoveRulesQuery {
    fn parse(query: &QueryParams) -> Result<RemoveRulesQuery, ApiError> {
        let mut errors = Vec::new();
        let items: Vec<Value> = match query.get("rules") {
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Array(items)) => items,
                _ => {
                    return Err(ApiError::Validation(vec![FieldError::new(
                        "rules",
                        "must be a JSON array of rules",
                    )]))
                }
            },
            None => indexed_rules(query)?,
        };
        if items.is_empty() {
            errors.push(FieldError::new("rules", "is required: at least one rule"));
        }
        if items.len() > MAX_REMOVED_RULES {
            return Err(ApiError::Validation(vec![FieldError::new(
                "rules",
                format!(
                    "names {} rules; one request removes at most {MAX_REMOVED_RULES}",
                    items.len()
                ),
            )]));
        }
        let rules = read_rules(&items, RuleShape::Remove, "rules", &mut errors);
        if errors.is_empty() {
            Ok(RemoveRulesQuery(rules))
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

/// `rules[0][type]=TRACK&rules[0][version]=1`, the way Segment's SDK
/// serialises a list of objects, as the list of those objects.
fn indexed_rules(query: &QueryParams) -> Result<Vec<Value>, ApiError> {
    let mut items: BTreeMap<usize, Map<String, Value>> = BTreeMap::new();
    for (name, value) in query.pairs() {
        let Some(rest) = name.strip_prefix("rules[") else {
            continue;
        };
        let parsed = rest.split_once("][").and_then(|(index, field)| {
            let field = field.strip_suffix(']')?;
            Some((index.parse::<usize>().ok()?, field))
        });
        let Some((index, field)) = parsed.filter(|(i, _)| *i < MAX_RULES) else {
            return Err(ApiError::Validation(vec![FieldError::new(
                name,
                format!("is not rules[N][field] with N below {MAX_RULES}"),
            )]));
        };
        let value = match field {
            // Query values are text; a version is a number.
            "version" => value
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(value.to_string())),
            _ => Value::String(value.to_string()),
        };
        items
            .entry(index)
            .or_default()
            .insert(field.to_string(), value);
    }
    Ok(items.into_values().map(Value::Object).collect())
}

impl FromRequest for RemoveRulesQuery {
    type Error = ApiError;
    type Future = Ready<Result<RemoveRulesQuery, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(RemoveRulesQuery::parse(&QueryParams::parse(
            req.query_string(),
        )))
    }
}

impl Describe for RemoveRulesQuery {
    fn describe(doc: &mut OperationDoc) {
        let rule = doc.schema::<RemoveRuleInput>();
        doc.parameters.push(json!({
            "name": "rules",
            "in": "query",
            "required": true,
            "description": "The rules to remove (at most 10), as a JSON array. Segment's \
                SDK's `rules[0][type]=…&rules[0][version]=…` is taken too.",
            "content": { "application/json": { "schema": {
                "type": "array", "items": rule, "minItems": 1, "maxItems": MAX_REMOVED_RULES,
            } } },
        }));
        doc.error(422, "A rule that is not a rule");
    }
}

/// `DELETE …/sources?sourceId=…`.
pub struct SourceIdQuery(String);

impl FromRequest for SourceIdQuery {
    type Error = ApiError;
    type Future = Ready<Result<SourceIdQuery, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let query = QueryParams::parse(req.query_string());
        ready(match query.get("sourceId") {
            Some(id) => Ok(SourceIdQuery(id.to_string())),
            None => Err(ApiError::Validation(vec![FieldError::new(
                "sourceId",
                "is required: the source to stop following the plan",
            )])),
        })
    }
}

impl Describe for SourceIdQuery {
    fn describe(doc: &mut OperationDoc) {
        doc.parameters.push(json!({
            "name": "sourceId",
            "in": "query",
            "required": true,
            "description": "The source to stop following the plan",
            "schema": crate::domain::id_schema(),
        }));
        doc.error(422, "No sourceId");
    }
}

pub async fn list(
    caller: Caller,
    query: Result<PlanListQuery, ApiError>,
    state: web::Data<AppState>,
) -> Result<Data<ListTrackingPlansOutput>, ApiError> {
    let query = query?;
    let page = tracking_plans::page(
        &state.db,
        &caller.workspace_id,
        query.plan_type.map(PlanType::as_str),
        &query.page.keyset()?,
    )
    .await?;
    let pagination = query.page.pagination(&page);
    Ok(Data(ListTrackingPlansOutput {
        tracking_plans: page.items.into_iter().map(TrackingPlanView::from).collect(),
        pagination,
    }))
}

pub async fn create(
    caller: Caller<Member>,
    body: JsonBody<CreateTrackingPlanInput>,
    state: web::Data<AppState>,
) -> Result<Created<TrackingPlanOutput>, ApiError> {
    let body = body.read(&state.settings).await?;
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let now = Timestamp(change.at());
    let plan = TrackingPlan {
        id: TrackingPlanId::generate(),
        workspace_id: caller.workspace_id.clone(),
        name: body.name,
        description: body.description.unwrap_or_else(Description::empty),
        plan_type: body.r#type.as_str().to_string(),
        created_at: now,
        updated_at: now,
    };
    tracking_plans::insert(&mut change, &plan).await?;
    change.record(event(
        "Tracking Plan Created",
        &caller,
        &plan,
        json!({ "type": plan.plan_type }),
    ));
    change.commit().await?;
    Ok(Created(TrackingPlanOutput {
        tracking_plan: plan.into(),
    }))
}

pub async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<Data<TrackingPlanOutput>, ApiError> {
    Ok(Data(TrackingPlanOutput {
        tracking_plan: find(&state.db, &caller, &path).await?.into(),
    }))
}

pub async fn update(
    caller: Caller<Member>,
    path: web::Path<String>,
    body: JsonBody<UpdateTrackingPlanInput>,
    state: web::Data<AppState>,
) -> Result<Data<Done>, ApiError> {
    let body = body.parse(&state.settings).await?;
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let before = find(&mut change, &caller, &path).await?;
    let body = body.finish()?;
    let mut after = before.clone();
    after.name = body.name.unwrap_or(after.name);
    after.description = body.description.unwrap_or(after.description);
    after.updated_at = Timestamp(change.at());
    tracking_plans::update(&mut change, &after).await?;
    let mut changes = Changes::default();
    changes.field("name", &before.name, &after.name);
    changes.field("description", &before.description, &after.description);
    change.record(event(
        "Tracking Plan Modified",
        &caller,
        &after,
        changes.into_details(),
    ));
    change.commit().await?;
    Ok(Done::success())
}

pub async fn delete(
    caller: Caller<Member>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<Data<Done>, ApiError> {
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let plan = find(&mut change, &caller, &path).await?;
    let rules = tracking_plans::count_rules(&mut change, &plan.id).await?;
    tracking_plans::delete(&mut change, &plan.id).await?;
    change.record(event(
        "Tracking Plan Deleted",
        &caller,
        &plan,
        json!({ "type": plan.plan_type, "rules": rules }),
    ));
    change.commit().await?;
    Ok(Done::success())
}

pub async fn list_rules(
    caller: Caller,
    path: web::Path<String>,
    page: Result<PageRequest, ApiError>,
    state: web::Data<AppState>,
) -> Result<Data<ListRulesOutput>, ApiError> {
    let plan = find(&state.db, &caller, &path).await?;
    let request = page?;
    let page = tracking_plans::page_rules(&state.db, &plan.id, &request.keyset()?).await?;
    let pagination = request.pagination(&page);
    Ok(Data(ListRulesOutput {
        rules: page.items.into_iter().map(RuleView::from).collect(),
        pagination,
    }))
}

/// A stored rule made from a request's item; `position` orders the rules
/// created together.
fn new_rule(item: &RuleItem, at: i64, position: usize) -> Rule {
    Rule {
        id: format!("{position:06}{}", crate::id::random_base62(8)),
        rule_type: item.id.rule_type.as_str().to_string(),
        key: item.new_key.clone().unwrap_or_else(|| item.id.key.clone()),
        version: item.id.version,
        json_schema: item.json_schema.clone().unwrap_or(Value::Bool(true)),
        created_at: Timestamp(at),
        updated_at: Timestamp(at),
    }
}

/// Stores the plan's new rules with the audit event, and commits.
async fn save_rules(
    mut change: crate::db::Change,
    caller: &Identity,
    plan: &mut TrackingPlan,
    rules: &[Rule],
    details: Value,
) -> Result<(), ApiError> {
    if rules.len() > MAX_RULES {
        return Err(ApiError::Validation(vec![FieldError::new(
            "rules",
            format!(
                "would give the plan {} rules; it may have at most {MAX_RULES}",
                rules.len()
            ),
        )]));
    }
    tracking_plans::set_rules(&mut change, &plan.id, rules).await?;
    plan.updated_at = Timestamp(change.at());
    tracking_plans::update(&mut change, plan).await?;
    change.record(event("Tracking Plan Modified", caller, plan, details));
    change.commit().await?;
    Ok(())
}

pub async fn replace_rules(
    caller: Caller<Member>,
    path: web::Path<String>,
    body: JsonBody<ReplaceRulesInput>,
    state: web::Data<AppState>,
) -> Result<Data<Done>, ApiError> {
    let mut body = body.parse(&state.settings).await?;
    let items = match &body.value {
        Some(b) => read_rules(&b.rules, RuleShape::Input, "rules", &mut body.errors),
        None => Vec::new(),
    };
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let mut plan = find(&mut change, &caller, &path).await?;
    body.finish()?;
    let before = tracking_plans::rules(&mut change, &plan.id).await?;
    let at = change.at();
    // A rule that stays keeps its creation time (and so its place).
    let rules: Vec<Rule> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut rule = new_rule(item, at, i);
            if let Some(old) = before
                .iter()
                .find(|r| RuleKey::of(r).as_ref() == Some(&item.id))
            {
                rule.id = old.id.clone();
                rule.created_at = old.created_at;
                if old.json_schema == rule.json_schema {
                    rule.updated_at = old.updated_at;
                }
            }
            rule
        })
        .collect();
    let details = json!({ "changes": { "rules": { "from": before.len(), "to": rules.len() } } });
    save_rules(change, &caller, &mut plan, &sorted(rules), details).await?;
    Ok(Done::success())
}

/// Rules in the order they are listed in.
fn sorted(mut rules: Vec<Rule>) -> Vec<Rule> {
    rules.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    rules
}

pub async fn update_rules(
    caller: Caller<Member>,
    path: web::Path<String>,
    body: JsonBody<UpdateRulesInput>,
    state: web::Data<AppState>,
) -> Result<Data<Done>, ApiError> {
    let mut body = body.parse(&state.settings).await?;
    let items = match &body.value {
        Some(b) => read_rules(&b.rules, RuleShape::Upsert, "rules", &mut body.errors),
        None => Vec::new(),
    };
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let mut plan = find(&mut change, &caller, &path).await?;
    let mut rules = tracking_plans::rules(&mut change, &plan.id).await?;
    let at = change.at();
    let (mut added, mut changed) = (Vec::new(), Vec::new());
    for (i, item) in items.iter().enumerate() {
        let existing = rules
            .iter()
            .position(|r| RuleKey::of(r).as_ref() == Some(&item.id));
        let renamed = RuleKey {
            key: item.new_key.clone().unwrap_or_else(|| item.id.key.clone()),
            ..item.id.clone()
        };
        let taken = renamed != item.id
            && rules
                .iter()
                .any(|r| RuleKey::of(r).as_ref() == Some(&renamed));
        if taken {
            body.fail(
                &format!("rules[{i}].newKey"),
                format!("the plan already has {}", renamed.label()),
            );
            continue;
        }
        match existing {
            Some(index) => {
                let rule = &mut rules[index];
                rule.key = renamed.key.clone();
                rule.json_schema = item.json_schema.clone().unwrap_or(Value::Bool(true));
                rule.updated_at = Timestamp(at);
                changed.push(renamed.label());
            }
            None => {
                rules.push(new_rule(item, at, i));
                added.push(renamed.label());
            }
        }
    }
    body.finish()?;
    let details = json!({ "changes": { "rules": { "added": added, "changed": changed } } });
    save_rules(change, &caller, &mut plan, &rules, details).await?;
    Ok(Done::success())
}

pub async fn remove_rules(
    caller: Caller<Member>,
    path: web::Path<String>,
    query: Result<RemoveRulesQuery, ApiError>,
    state: web::Data<AppState>,
) -> Result<Data<Done>, ApiError> {
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let mut plan = find(&mut change, &caller, &path).await?;
    let RemoveRulesQuery(items) = query?;
    let mut rules = tracking_plans::rules(&mut change, &plan.id).await?;
    let mut removed = Vec::new();
    rules.retain(|rule| {
        let gone = RuleKey::of(rule).is_some_and(|k| items.iter().any(|i| i.id == k));
        if gone {
            removed.push(RuleKey::of(rule).map(|k| k.label()));
        }
        !gone
    });
    if removed.is_empty() {
        return Ok(Done::success());
    }
    let details = json!({ "changes": { "rules": { "removed": removed } } });
    save_rules(change, &caller, &mut plan, &rules, details).await?;
    Ok(Done::success())
}

pub async fn list_sources(
    caller: Caller,
    path: web::Path<String>,
    page: Result<PageRequest, ApiError>,
    state: web::Data<AppState>,
) -> Result<Data<ListTrackingPlanSourcesOutput>, ApiError> {
    let plan = find(&state.db, &caller, &path).await?;
    let request = page?;
    let page = tracking_plans::page_sources(
        &state.db,
        &caller.workspace_id,
        &plan.id,
        &request.keyset()?,
    )
    .await?;
    let pagination = request.pagination(&page);
    Ok(Data(ListTrackingPlanSourcesOutput {
        sources: page.items.into_iter().map(SourceView::from).collect(),
        pagination,
    }))
}

fn source_event(
    caller: &Identity,
    source: &sources::Source,
    from: Option<&TrackingPlanId>,
    to: Option<&TrackingPlanId>,
) -> NewEvent {
    let mut changes = Changes::default();
    changes.field("trackingPlanId", &from, &to);
    super::sources::event("Source Modified", caller, source, changes.into_details())
}

pub async fn add_source(
    caller: Caller<Member>,
    path: web::Path<String>,
    body: JsonBody<AddSourceInput>,
    state: web::Data<AppState>,
) -> Result<Data<Done>, ApiError> {
    let mut body = body.parse(&state.settings).await?;
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let plan = find(&mut change, &caller, &path).await?;
    let source = match body.value.as_ref().map(|b| b.source_id.clone()) {
        Some(id) => sources::find(&mut change, &caller.workspace_id, &id).await?,
        None => None,
    };
    if source.is_none() && !body.has_error("sourceId") {
        // The same answer for an id of another workspace as for none.
        body.fail("sourceId", "is not the id of a source in this workspace");
    }
    body.finish()?;
    let Some(source) = source else {
        return Err(ApiError::internal(anyhow::anyhow!("a source was checked")));
    };
    match tracking_plans::plan_of_source(&mut change, &source.id).await? {
        Some(current) if current == plan.id => {}
        Some(other) => {
            return Err(ApiError::Conflict(format!(
                "source {:?} follows tracking plan {other}; remove it from that plan first",
                source.slug.as_str()
            )))
        }
        None => {
            tracking_plans::connect(&mut change, &plan.id, &source.id).await?;
            change.record(source_event(&caller, &source, None, Some(&plan.id)));
            change.commit().await?;
        }
    }
    Ok(Done::success())
}

pub async fn remove_source(
    caller: Caller<Member>,
    path: web::Path<String>,
    query: Result<SourceIdQuery, ApiError>,
    state: web::Data<AppState>,
) -> Result<Data<Done>, ApiError> {
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let plan = find(&mut change, &caller, &path).await?;
    let SourceIdQuery(source_id) = query?;
    let not_following =
        || ApiError::NotFound("the source does not follow this tracking plan".into());
    let source_id = SourceId::parse(&source_id).map_err(|_| not_following())?;
    let source = sources::find(&mut change, &caller.workspace_id, &source_id)
        .await?
        .ok_or_else(not_following)?;
    if tracking_plans::plan_of_source(&mut change, &source.id).await? != Some(plan.id.clone()) {
        return Err(not_following());
    }
    tracking_plans::disconnect(&mut change, &source.id).await?;
    change.record(source_event(&caller, &source, Some(&plan.id), None));
    change.commit().await?;
    Ok(Done::success())
}
