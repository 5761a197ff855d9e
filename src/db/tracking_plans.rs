//! `tracking_plans`: what events a workspace's sources are expected to
//! send, as JSON Schema rules (`tracking_plan_rules`), and which sources
//! follow each plan (`tracking_plan_sources`).

use serde_json::Value;

use super::pagination::{self, Keyed, Page, PageQuery, Position};
use super::sources::{Source, COLUMNS as SOURCE_COLUMNS};
use super::{json_text, Conn, Count, FromRow, Result, Row, Text, Tx};
use crate::args;
use crate::domain::{Description, Name, SourceId, TrackingPlanId, WorkspaceId};
use crate::time::Timestamp;

#[derive(Debug, Clone)]
pub struct TrackingPlan {
    pub id: TrackingPlanId,
    pub workspace_id: WorkspaceId,
    pub name: Name,
    pub description: Description,
    /// One of Segment's plan types (`LIVE`, …), as the API spells it.
    pub plan_type: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

const COLUMNS: &str = "id, workspace_id, name, description, type, created_at, updated_at";

impl FromRow for TrackingPlan {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(TrackingPlan {
            id: row.parse("id")?,
            workspace_id: row.parse("workspace_id")?,
            name: row.parse("name")?,
            description: row.parse("description")?,
            plan_type: row.text("type")?,
            created_at: row.time("created_at")?,
            updated_at: row.time("updated_at")?,
        })
    }
}

impl Keyed for TrackingPlan {
    fn position(&self) -> Position {
        Position {
            created_at: self.created_at.micros(),
            id: self.id.to_string(),
        }
    }
}

/// One rule of a plan, known by (type, key, version).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Orders rules created together; never shown.
    pub id: String,
    pub rule_type: String,
    /// Empty for rules without a key.
    pub key: String,
    pub version: i64,
    pub json_schema: Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

const RULE_COLUMNS: &str = "id, type, key, version, json_schema, created_at, updated_at";

impl FromRow for Rule {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(Rule {
            id: row.text("id")?,
            rule_type: row.text("type")?,
            key: row.text("key")?,
            version: row.int("version")?,
            json_schema: row.json("json_schema")?,
            created_at: row.time("created_at")?,
            updated_at: row.time("updated_at")?,
        })
    }
}

impl Keyed for Rule {
    fn position(&self) -> Position {
        Position {
            created_at: self.created_at.micros(),
            id: self.id.clone(),
        }
    }
}

pub async fn find(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    id: &TrackingPlanId,
) -> Result<Option<TrackingPlan>> {
    conn.into()
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM tracking_plans WHERE id = $1 AND workspace_id = $2"),
            args![id, workspace_id],
        )
        .await
}

/// The workspace's plans, oldest first; only those of `plan_type` if given.
pub async fn page(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    plan_type: Option<&str>,
    query: &PageQuery,
) -> Result<Page<TrackingPlan>> {
    match plan_type {
        None => {
            pagination::page(
                conn,
                "tracking_plans",
                COLUMNS,
                workspace_id.as_str(),
                query,
            )
            .await
        }
        Some(plan_type) => {
            pagination::page_where(
                conn,
                "tracking_plans",
                COLUMNS,
                "workspace_id = $1 AND type = $2",
                args![workspace_id, plan_type],
                query,
            )
            .await
        }
    }
}

pub async fn insert(tx: &mut Tx, plan: &TrackingPlan) -> Result<()> {
    tx.execute(
        "INSERT INTO tracking_plans (id, workspace_id, name, description, type, created_at,
             updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        args![
            plan.id,
            plan.workspace_id,
            plan.name,
            plan.description,
            plan.plan_type,
            plan.created_at,
            plan.updated_at
        ],
    )
    .await?;
    Ok(())
}

pub async fn update(tx: &mut Tx, plan: &TrackingPlan) -> Result<()> {
    tx.execute(
        "UPDATE tracking_plans SET name = $1, description = $2, updated_at = $3 WHERE id = $4",
        args![plan.name, plan.description, plan.updated_at, plan.id],
    )
    .await?;
    Ok(())
}

/// Deletes the plan, its rules and its connections to sources.
pub async fn delete(tx: &mut Tx, id: &TrackingPlanId) -> Result<()> {
    for table in ["tracking_plan_rules", "tracking_plan_sources"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE tracking_plan_id = $1"),
            args![id],
        )
        .await?;
    }
    tx.execute("DELETE FROM tracking_plans WHERE id = $1", args![id])
        .await?;
    Ok(())
}

pub async fn page_rules(
    conn: impl Into<Conn<'_>>,
    plan: &TrackingPlanId,
    query: &PageQuery,
) -> Result<Page<Rule>> {
    pagination::page_where(
        conn,
        "tracking_plan_rules",
        RULE_COLUMNS,
        "tracking_plan_id = $1",
        args![plan],
        query,
    )
    .await
}

/// Every rule of the plan, in order.
pub async fn rules(conn: impl Into<Conn<'_>>, plan: &TrackingPlanId) -> Result<Vec<Rule>> {
    conn.into()
        .fetch_all(
            &format!(
                "SELECT {RULE_COLUMNS} FROM tracking_plan_rules WHERE tracking_plan_id = $1
                 ORDER BY created_at, id"
            ),
            args![plan],
        )
        .await
}

/// Replaces every rule of the plan with `rules`.
pub async fn set_rules(tx: &mut Tx, plan: &TrackingPlanId, rules: &[Rule]) -> Result<()> {
    tx.execute(
        "DELETE FROM tracking_plan_rules WHERE tracking_plan_id = $1",
        args![plan],
    )
    .await?;
    for rule in rules {
        tx.execute(
            "INSERT INTO tracking_plan_rules (tracking_plan_id, id, type, key, version,
                 json_schema, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            args![
                plan,
                rule.id,
                rule.rule_type,
                rule.key,
                rule.version,
                json_text(&rule.json_schema),
                rule.created_at,
                rule.updated_at
            ],
        )
        .await?;
    }
    Ok(())
}

/// The sources that follow the plan, oldest first.
pub async fn page_sources(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    plan: &TrackingPlanId,
    query: &PageQuery,
) -> Result<Page<Source>> {
    pagination::page_where(
        conn,
        "sources",
        SOURCE_COLUMNS,
        "workspace_id = $1 AND id IN (SELECT source_id FROM tracking_plan_sources WHERE tracking_plan_id = $2)",
        args![workspace_id, plan],
        query,
    )
    .await
}

/// The plan `source` follows, if any.
pub async fn plan_of_source(
    conn: impl Into<Conn<'_>>,
    source: &SourceId,
) -> Result<Option<TrackingPlanId>> {
    let found: Option<Text> = conn
        .into()
        .fetch_optional(
            "SELECT tracking_plan_id AS value FROM tracking_plan_sources WHERE source_id = $1",
            args![source],
        )
        .await?;
    found
        .map(|Text(id)| crate::domain::Parse::parse(&id))
        .transpose()
        .map_err(|e: String| super::Error::decode("tracking_plan_id", e))
}

pub async fn connect(tx: &mut Tx, plan: &TrackingPlanId, source: &SourceId) -> Result<()> {
    tx.execute(
        "INSERT INTO tracking_plan_sources (source_id, tracking_plan_id) VALUES ($1, $2)",
        args![source, plan],
    )
    .await?;
    Ok(())
}

/// Disconnects `source` from whatever plan it follows; whether it
/// followed one.
pub async fn disconnect(tx: &mut Tx, source: &SourceId) -> Result<bool> {
    let removed = tx
        .execute(
            "DELETE FROM tracking_plan_sources WHERE source_id = $1",
            args![source],
        )
        .await?;
    Ok(removed > 0)
}

pub async fn count_rules(conn: impl Into<Conn<'_>>, plan: &TrackingPlanId) -> Result<i64> {
    let Count(n) = conn
        .into()
        .fetch_one(
            "SELECT COUNT(*) AS n FROM tracking_plan_rules WHERE tracking_plan_id = $1",
            args![plan],
        )
        .await?;
    Ok(n)
}
