//! `alerts` and `token_reports`: what GitHub reported, and when. Kept so
//! that an operator can see every alert, and re-apply revocations that a
//! restore from an older backup would undo.

use super::{rows_per_statement, values_rows, Arg, Conn, Db, FromRow, Result, Row, ToArg, Tx};
use crate::args;
use crate::domain::TokenId;

/// An alert as recorded.
#[derive(Debug, Clone)]
pub struct AlertRecord {
    pub id: String,
    pub received_at: i64,
    pub key_identifier: String,
    /// Tokens in the alert.
    pub reported: i64,
    /// Of those, tokens of ours.
    pub matched: i64,
}

/// Columns of one alert record.
pub const ALERT_COLUMNS: usize = 5;

/// Records alerts in one statement, at most
/// `rows_per_statement(ALERT_COLUMNS)` of them, committed on return (the
/// records of alerts that matched nothing, written in batches).
/// `revoked` is 0.
pub async fn record(db: &Db, alerts: &[&AlertRecord]) -> Result<()> {
    let (sql, binds) = insert_sql(alerts);
    db.execute(&sql, &binds).await.map(|_| ())
}

/// Records `alerts` at once on the calling thread if SQLite's write lock
/// is free (`Db::try_execute_now`); None when the caller should queue them.
pub fn try_record_now(db: &Db, alerts: &[&AlertRecord]) -> Option<Result<()>> {
    let (sql, binds) = insert_sql(alerts);
    db.try_execute_now(&sql, &binds)
        .map(|done| done.map(|_| ()))
}

/// Records an alert inside the transaction that acts on it; `revoked` is
/// set by `set_revoked` once known.
pub async fn record_in(tx: &mut Tx, alert: &AlertRecord) -> Result<()> {
    let (sql, binds) = insert_sql(&[alert]);
    tx.execute(&sql, &binds).await.map(|_| ())
}

fn insert_sql<'a>(alerts: &[&'a AlertRecord]) -> (String, Vec<Arg<'a>>) {
    let sql = format!(
        "INSERT INTO alerts (id, received_at, key_identifier, reported, matched, revoked)
         VALUES {}",
        values_rows(alerts.len(), ALERT_COLUMNS).replace(')', ", 0)")
    );
    let mut binds = Vec::with_capacity(alerts.len() * ALERT_COLUMNS);
    for alert in alerts {
        binds.extend([
            alert.id.to_arg(),
            Arg::Int(alert.received_at),
            alert.key_identifier.to_arg(),
            Arg::Int(alert.reported),
            Arg::Int(alert.matched),
        ]);
    }
    (sql, binds)
}

pub async fn set_revoked(tx: &mut Tx, alert_id: &str, revoked: i64) -> Result<()> {
    tx.execute(
        "UPDATE alerts SET revoked = $1 WHERE id = $2",
        args![revoked, alert_id],
    )
    .await?;
    Ok(())
}

/// One token of ours in an alert: where GitHub found it.
#[derive(Debug, Clone)]
pub struct TokenReport<'a> {
    pub token_id: &'a TokenId,
    pub url: &'a str,
    pub source: &'a str,
    pub token_type: &'a str,
    /// Whether this alert revoked it (false: it was revoked before).
    pub revoked: bool,
}

pub async fn record_reports(
    tx: &mut Tx,
    alert_id: &str,
    reported_at: i64,
    reports: &[TokenReport<'_>],
) -> Result<()> {
    const COLUMNS: usize = 7;
    for chunk in reports.chunks(rows_per_statement(COLUMNS)) {
        let sql = format!(
            "INSERT INTO token_reports (alert_id, token_id, url, source, token_type,
                 reported_at, revoked)
             VALUES {}",
            values_rows(chunk.len(), COLUMNS)
        );
        let mut binds: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * COLUMNS);
        for report in chunk {
            binds.extend([
                alert_id.to_arg(),
                report.token_id.to_arg(),
                report.url.to_arg(),
                report.source.to_arg(),
                report.token_type.to_arg(),
                reported_at.to_arg(),
                report.revoked.to_arg(),
            ]);
        }
        tx.execute(&sql, &binds).await?;
    }
    Ok(())
}

impl FromRow for AlertRecord {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(AlertRecord {
            id: row.text("id")?,
            received_at: row.int("received_at")?,
            key_identifier: row.text("key_identifier")?,
            reported: row.int("reported")?,
            matched: row.int("matched")?,
        })
    }
}

pub async fn find(conn: impl Into<Conn<'_>>, alert_id: &str) -> Result<Option<AlertRecord>> {
    conn.into()
        .fetch_optional(
            "SELECT id, received_at, key_identifier, reported, matched FROM alerts WHERE id = $1",
            args![alert_id],
        )
        .await
}

/// Where GitHub found one token, as an alert reported it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredReport {
    pub token_id: String,
    pub url: String,
    pub source: String,
    pub token_type: String,
    pub revoked: bool,
}

impl FromRow for StoredReport {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(StoredReport {
            token_id: row.text("token_id")?,
            url: row.text("url")?,
            source: row.text("source")?,
            token_type: row.text("token_type")?,
            revoked: row.flag("revoked")?,
        })
    }
}

/// The alert's reports of the workspace's tokens.
pub async fn reports_in_workspace(
    conn: impl Into<Conn<'_>>,
    alert_id: &str,
    workspace_id: &crate::domain::WorkspaceId,
) -> Result<Vec<StoredReport>> {
    conn.into()
        .fetch_all(
            "SELECT r.token_id, r.url, r.source, r.token_type, r.revoked
             FROM token_reports AS r JOIN tokens AS t ON t.id = r.token_id
             WHERE r.alert_id = $1 AND t.workspace_id = $2
             ORDER BY t.created_at, t.id",
            args![alert_id, workspace_id],
        )
        .await
}
