//! The incident pages: one per alert that revoked something in the
//! workspace. Every link in the owner email points to one.

use std::collections::{BTreeSet, HashMap};

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpResponse};
use minijinja::context;
use serde::Deserialize;

use super::route::Page;
use super::session::{Access, SignedIn};
use super::{page, page_with_status, ConsoleError};
use crate::audit::{self, Filter};
use crate::db::tokens::{self, Token};
use crate::db::{self, alerts, audit_events, token_usage, users};
use crate::domain::{Name, Parse, TokenId, UserId, WorkspaceId};
use crate::incident;
use crate::state::AppState;
use crate::time::Timestamp;

pub fn endpoints() -> Vec<Page> {
    vec![
        Page::new(Method::GET, "/app/w/{workspace}/incidents", list),
        Page::new(Method::GET, "/app/w/{workspace}/incidents/{alert}", show),
        Page::new(
            Method::POST,
            "/app/w/{workspace}/incidents/{alert}/replacements",
            replace,
        ),
    ]
}

/// Incidents a list shows.
const LISTED: i64 = 200;
/// Events of a token's activity the incident page shows; the audit trail
/// has the rest.
const ACTIVITY_SHOWN: i64 = 200;

/// `GET /app/w/{workspace}/incidents` (owners).
pub async fn list(
    signed_in: SignedIn,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let access = Access::owner(&state, signed_in, &path).await?;
    let incidents: Vec<_> = tokens::incident_alerts(&state.db, &access.workspace.id, LISTED)
        .await?
        .into_iter()
        .map(|(alert, at, revoked)| context! { alert => alert, at => at.to_string(), revoked => revoked })
        .collect();
    page(
        "incidents.html",
        context! { incidents => incidents, ..access.frame("Incidents", "incidents") },
    )
}

/// Readable names for the actors of a page: tokens by name and hint,
/// console users by address.
pub struct ActorNames(HashMap<String, String>);

impl ActorNames {
    pub async fn load<'a>(
        db: &db::Db,
        workspace_id: &WorkspaceId,
        actors: impl IntoIterator<Item = &'a str>,
    ) -> db::Result<ActorNames> {
        let mut token_ids = BTreeSet::new();
        let mut user_ids = BTreeSet::new();
        for actor in actors {
            if let Some(id) = actor.strip_prefix(audit::TOKEN_ACTOR_PREFIX) {
                token_ids.extend(TokenId::parse(id).ok());
            } else if let Some(id) = actor.strip_prefix(audit::CONSOLE_USER_ACTOR_PREFIX) {
                user_ids.extend(UserId::parse(id).ok());
            }
        }
        let mut names = HashMap::new();
        let token_ids: Vec<&TokenId> = token_ids.iter().collect();
        for t in tokens::find_many(db, workspace_id, &token_ids).await? {
            names.insert(
                audit::token_actor(&t.id),
                format!("token “{}” (…{})", t.name, t.hint),
            );
        }
        let user_ids: Vec<&UserId> = user_ids.iter().collect();
        for u in users::find_many(db, workspace_id, &user_ids).await? {
            names.insert(
                format!("{}{}", audit::CONSOLE_USER_ACTOR_PREFIX, u.id),
                format!("{} (console)", u.email),
            );
        }
        Ok(ActorNames(names))
    }

    pub fn describe(&self, actor: &str) -> String {
        if let Some(name) = self.0.get(actor) {
            return name.clone();
        }
        match actor {
            audit::CLI_ACTOR => "an operator (command line)".to_string(),
            audit::GITHUB_ACTOR => "GitHub secret scanning".to_string(),
            other => other.to_string(),
        }
    }
}

/// An incident's tokens of this workspace and their alert; 404 when the
/// alert revoked nothing here.
async fn load(
    state: &AppState,
    workspace_id: &WorkspaceId,
    alert_id: &str,
) -> Result<(alerts::AlertRecord, Vec<Token>), ConsoleError> {
    let tokens = tokens::revoked_by_alert(&state.db, workspace_id, alert_id).await?;
    if tokens.is_empty() {
        return Err(ConsoleError::NotFound);
    }
    let alert = alerts::find(&state.db, alert_id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    Ok((alert, tokens))
}

#[derive(Deserialize)]
pub struct ShowQuery {
    done: Option<String>,
}

/// `GET /app/w/{workspace}/incidents/{alert}` (owners).
pub async fn show(
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    query: web::Query<ShowQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (workspace, alert_id) = path.into_inner();
    let access = Access::owner(&state, signed_in, &workspace).await?;
    let ws = &access.workspace.id;
    let (alert, incident_tokens) = load(&state, ws, &alert_id).await?;
    let reports: HashMap<String, alerts::StoredReport> =
        alerts::reports_in_workspace(&state.db, &alert.id, ws)
            .await?
            .into_iter()
            .filter(|r| r.revoked)
            .map(|r| (r.token_id.clone(), r))
            .collect();
    let (leaked, created): (Vec<&Token>, Vec<&Token>) = incident_tokens
        .iter()
        .partition(|t| reports.contains_key(t.id.as_str()));
    let incident_ids: Vec<&TokenId> = incident_tokens.iter().map(|t| &t.id).collect();

    let mut actors: Vec<&str> = incident_tokens
        .iter()
        .map(|t| t.created_by.as_str())
        .collect();
    let leaked_actors: Vec<String> = leaked.iter().map(|t| audit::token_actor(&t.id)).collect();
    actors.extend(leaked_actors.iter().map(String::as_str));
    let names = ActorNames::load(&state.db, ws, actors).await?;

    let mut leaked_views = Vec::with_capacity(leaked.len());
    for token in &leaked {
        let report = &reports[token.id.as_str()];
        let actor = audit::token_actor(&token.id);
        let filter = Filter {
            actor: Some(actor.clone()),
            ..Filter::default()
        };
        let (events, total) = audit_events::list(&state.db, ws, &filter, ACTIVITY_SHOWN).await?;
        let activity: Vec<_> = events
            .iter()
            .map(|e| {
                context! {
                    timestamp => e.timestamp.to_string(),
                    type => e.event_type,
                    resource_type => e.resource_type,
                    resource_name => e.resource_name,
                    resource_id => e.resource_id,
                    client_address => e.client_address,
                    user_agent => e.user_agent,
                    by => names.describe(&e.actor),
                }
            })
            .collect();
        let usage = usage_of(&state, ws, token, &incident_ids).await?;
        leaked_views.push(context! {
            id => token.id.as_str(),
            name => token.name.as_str(),
            role => token.role.as_str(),
            hint => token.hint,
            created_at => token.created_at.to_string(),
            created_by => names.describe(&token.created_by),
            revoked_at => token.revoked_at.map(|t| t.to_string()),
            url => report.url,
            url_is_link => report.url.starts_with("https://") || report.url.starts_with("http://"),
            source => report.source,
            token_type => report.token_type,
            activity => activity,
            activity_total => total,
            activity_url => audit_url(ws, &actor),
            usage => usage,
        });
    }
    let created_views: Vec<_> = created
        .iter()
        .map(|t| {
            context! {
                id => t.id.as_str(),
                name => t.name.as_str(),
                role => t.role.as_str(),
                hint => t.hint,
                created_at => t.created_at.to_string(),
                created_by => names.describe(&t.created_by),
                revoked_at => t.revoked_at.map(|t| t.to_string()),
                reason => t.revoked_reason,
            }
        })
        .collect();
    let review: Vec<_> = incident::review_items(&state.db, ws, &incident_ids)
        .await?
        .into_iter()
        .map(|r| {
            context! {
                kind => r.kind,
                user_id => r.user_id,
                email => r.email,
                role => r.role,
                previous_role => r.previous_role,
                at => r.at.to_string(),
                by => names.describe(&audit::token_actor(&r.by_token_id)),
                current_role => r.current_role.map(|role| role.as_str()),
            }
        })
        .collect();
    let done = match query.done.as_deref() {
        Some("user-removed") => Some("The user was removed."),
        Some("role-restored") => Some("The role was set back."),
        _ => None,
    };
    page(
        "incident.html",
        context! {
            alert => context! { id => alert.id, received_at => Timestamp(alert.received_at).to_string() },
            leaked => leaked_views,
            created => created_views,
            review => review,
            done => done,
            path => incident::path(ws, &alert_id),
            ..access.frame("Incident", "incidents")
        },
    )
}

fn audit_url(workspace_id: &WorkspaceId, actor: &str) -> String {
    format!(
        "/app/w/{workspace_id}/audit?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("actor", actor)
            .finish()
    )
}

/// Where a token was used from: its stored usage and what this replica
/// has not written yet, per (address, user agent). An address is "known"
/// when the workspace's tokens outside the incident were used from it
/// too; an address first seen after the token's last use from a known
/// address is set apart.
async fn usage_of(
    state: &AppState,
    workspace_id: &WorkspaceId,
    token: &Token,
    incident_ids: &[&TokenId],
) -> Result<minijinja::Value, ConsoleError> {
    let mut rows = token_usage::of_token(&state.db, workspace_id, &token.id).await?;
    rows.extend(state.usage.pending_for(&token.id));
    let clients = token_usage::by_client(rows);
    let addresses: BTreeSet<String> = clients.iter().map(|c| c.address.clone()).collect();
    let known =
        token_usage::addresses_used_by_others(&state.db, workspace_id, incident_ids, &addresses)
            .await?;
    let last_known_use = clients
        .iter()
        .filter(|c| known.contains(&c.address))
        .map(|c| c.last_seen)
        .max();
    let mut usual = Vec::new();
    let mut new_after = Vec::new();
    for c in &clients {
        let is_known = known.contains(&c.address);
        let view = context! {
            address => if c.address.is_empty() { "(unknown)" } else { c.address.as_str() },
            user_agent => if c.user_agent.is_empty() { "(none sent)" } else { c.user_agent.as_str() },
            requests => c.requests,
            refused => c.refused,
            first_seen => Timestamp(c.first_seen).to_string(),
            last_seen => Timestamp(c.last_seen).to_string(),
            routes => c.routes,
            known => is_known,
        };
        match last_known_use {
            Some(last) if !is_known && c.first_seen > last => new_after.push(view),
            _ => usual.push(view),
        }
    }
    Ok(context! {
        clients => usual,
        new_after => new_after,
        last_known_use => last_known_use.map(|t| Timestamp(t).to_string()),
        any => !clients.is_empty(),
    })
}

#[derive(Deserialize)]
pub struct ReplaceForm {
    #[serde(default)]
    csrf: String,
    token_id: String,
}

/// The suffix of a replacement token's name.
pub const REPLACEMENT_SUFFIX: &str = " (replacement)";

/// `POST /app/w/{workspace}/incidents/{alert}/replacements` (owners):
/// mints a token with the revoked one's role and name (plus a suffix), and
/// shows it once.
pub async fn replace(
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<ReplaceForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (workspace, alert_id) = path.into_inner();
    let access = Access::owner(&state, signed_in, &workspace).await?;
    access.signed_in.check_csrf(&form.csrf)?;
    let ws = &access.workspace.id;
    let (_, incident_tokens) = load(&state, ws, &alert_id).await?;
    let old = incident_tokens
        .iter()
        .find(|t| t.id.as_str() == form.token_id)
        .ok_or(ConsoleError::NotFound)?;
    let name: Name = old.name.with_suffix(REPLACEMENT_SUFFIX);
    let mut change = state.db.change(ws.as_str()).await?;
    let minted = crate::token::mint(&mut change, ws, name, old.role, &access.actor()).await?;
    change.commit().await?;
    page_with_status(
        StatusCode::CREATED,
        "new_token.html",
        context! {
            secret => minted.secret.expose(),
            token => context! {
                id => minted.token.id.as_str(),
                name => minted.token.name.as_str(),
                role => minted.token.role.as_str(),
                hint => minted.token.hint,
            },
            replaces => context! { name => old.name.as_str(), hint => old.hint },
            back => incident::path(ws, &alert_id),
            back_label => "Back to the incident",
            ..access.frame("New token", "incidents")
        },
    )
}
