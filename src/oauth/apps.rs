//! `/oauth-apps` (owner only): OAuth apps and their public keys. An app
//! has one or two keys; deleting the app or removing a key revokes the
//! access tokens it was issued, and narrowing its scopes revokes those
//! that had more. Every change is audited (`resourceType` `oauth_app`).

use actix_web::web;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::api::auth::{Caller, Owner};
use crate::api::body::{FromBody, JsonBody};
use crate::api::error::ApiError;
use crate::api::pagination::{PageRequest, Pagination};
use crate::api::reply::{Created, Data, Done};
use crate::api::route::Resource;
use crate::api::validate::Fields;
use crate::api::{path_id, OperationDoc};
use crate::audit::{Actor, Changes, NewEvent};
use crate::db::oauth_apps::{self, OAuthApp, OAuthKey, MAX_KEYS};
use crate::db::{tokens, Change, Conn};
use crate::domain::{
    Name, OAuthAppId, OAuthKeyId, PublicKey, Scope, Scopes, TokenLifetime, WorkspaceId,
};
use crate::revocation;
use crate::state::AppState;
use crate::time::Timestamp;

pub fn resources() -> Vec<Resource> {
    const NO_SUCH: &str = "No such OAuth app in this workspace";
    vec![
        Resource::new("/oauth-apps", "OAuth Apps")
            .get(
                list,
                OperationDoc::new("listOAuthApps", "The workspace's OAuth apps, oldest first"),
            )
            .post(
                create,
                OperationDoc::new("createOAuthApp", "Register an OAuth app with its first key")
                    .describe(
                        "`publicKey` is a SubjectPublicKeyInfo PEM: an RSA key of 2048 bits or \
                         more (its assertions are signed RS256), as `openssl rsa -in private.pem \
                         -pubout` writes it, or a P-256 key (ES256). The app's id is its \
                         assertions' `sub`, the key's id their `kid`.",
                    ),
            ),
        Resource::new("/oauth-apps/{id}", "OAuth Apps")
            .get(
                get,
                OperationDoc::new("getOAuthApp", "One OAuth app").status(404, NO_SUCH),
            )
            .patch(
                update,
                OperationDoc::new(
                    "updateOAuthApp",
                    "Rename an app, or change its scopes or token lifetime",
                )
                .describe(
                    "Access tokens issued before keep their lifetime; those with a scope \
                         the app no longer has are revoked.",
                )
                .status(404, NO_SUCH),
            )
            .delete(
                delete,
                OperationDoc::new(
                    "deleteOAuthApp",
                    "Delete an OAuth app and revoke its access tokens",
                )
                .status(404, NO_SUCH),
            ),
        Resource::new("/oauth-apps/{id}/keys", "OAuth Apps").post(
            add_key,
            OperationDoc::new("addOAuthAppKey", "Add a public key to an app (at most two)")
                .status(404, NO_SUCH)
                // With two keys, the first can go.
                .link(
                    "removeOAuthAppKey",
                    &[
                        ("path.id", "$response.body#/data/oauthApp/id"),
                        ("path.keyId", "$response.body#/data/oauthApp/keys/0/id"),
                    ],
                )
                .status(409, "The app has two keys already: remove one first"),
        ),
        Resource::new("/oauth-apps/{id}/keys/{keyId}", "OAuth Apps").delete(
            remove_key,
            OperationDoc::new(
                "removeOAuthAppKey",
                "Remove a key from an app and revoke the access tokens issued with it",
            )
            .status(
                404,
                "No such OAuth app in this workspace, or no such key of it",
            )
            .status(
                409,
                "The app's only key: add its replacement first, or delete the app",
            ),
        ),
    ]
}

/// `GET /oauth-apps`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListOAuthAppsOutput {
    oauth_apps: Vec<OAuthApp>,
    pagination: Pagination,
}

/// One OAuth app.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthAppOutput {
    oauth_app: OAuthApp,
}

/// `POST /oauth-apps`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct CreateOAuthAppInput {
    pub name: Name,
    /// A SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`): RSA of
    /// 2048 bits or more, or P-256.
    #[schema(value_type = String, min_length = 1)]
    pub public_key: PublicKey,
    pub key_name: Name,
    pub scopes: Scopes,
    pub token_expires_in: TokenLifetime,
}

impl FromBody for CreateOAuthAppInput {
    const FIELDS: &'static [&'static str] =
        &["name", "publicKey", "keyName", "scopes", "tokenExpiresIn"];

    fn read(fields: &mut Fields) -> Option<CreateOAuthAppInput> {
        let name = fields.required("name");
        let public_key = fields.required("publicKey");
        let key_name = fields.required("keyName");
        let scopes = scopes(fields, true);
        let lifetime = lifetime(fields, true);
        Some(CreateOAuthAppInput {
            name: name?,
            public_key: public_key?,
            key_name: key_name?,
            scopes: scopes?,
            token_expires_in: lifetime?,
        })
    }
}

/// `PATCH /oauth-apps/{id}`: the fields to change.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct UpdateOAuthAppInput {
    name: Option<Name>,
    scopes: Option<Scopes>,
    token_expires_in: Option<TokenLifetime>,
}

impl FromBody for UpdateOAuthAppInput {
    const FIELDS: &'static [&'static str] = &["name", "scopes", "tokenExpiresIn"];
    const AT_LEAST_ONE: bool = true;

    fn read(fields: &mut Fields) -> Option<UpdateOAuthAppInput> {
        Some(UpdateOAuthAppInput {
            name: fields.optional("name"),
            scopes: scopes(fields, false),
            token_expires_in: lifetime(fields, false),
        })
    }
}

/// `POST /oauth-apps/{id}/keys`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct AddOAuthAppKeyInput {
    /// A SubjectPublicKeyInfo PEM, as for a new app.
    #[schema(value_type = String, min_length = 1)]
    public_key: PublicKey,
    key_name: Name,
}

impl FromBody for AddOAuthAppKeyInput {
    const FIELDS: &'static [&'static str] = &["publicKey", "keyName"];

    fn read(fields: &mut Fields) -> Option<AddOAuthAppKeyInput> {
        let public_key = fields.required("publicKey");
        let key_name = fields.required("keyName");
        Some(AddOAuthAppKeyInput {
            public_key: public_key?,
            key_name: key_name?,
        })
    }
}

fn scopes(fields: &mut Fields, required: bool) -> Option<Scopes> {
    let list = fields.list::<Scope>("scopes", required)?;
    Scopes::from_list(list)
        .map_err(|message| fields.fail("scopes", message))
        .ok()
}

fn lifetime(fields: &mut Fields, required: bool) -> Option<TokenLifetime> {
    let secs = fields.integer("tokenExpiresIn", required)?;
    TokenLifetime::from_secs(secs)
        .map_err(|message| fields.fail("tokenExpiresIn", message))
        .ok()
}

fn event(
    event_type: &'static str,
    actor: &Actor,
    app: &OAuthApp,
    details: serde_json::Value,
) -> NewEvent {
    NewEvent {
        event_type,
        actor: actor.clone(),
        resource_id: app.id.to_string(),
        resource_type: "oauth_app",
        resource_name: app.name.to_string(),
        details,
    }
}

fn key_details(key: &OAuthKey) -> serde_json::Value {
    json!({ "keyId": key.id, "keyName": key.name, "algorithm": key.algorithm })
}

/// Registers an app with its first key as part of `change`, with its
/// audit event (the API and the CLI).
pub async fn create_app(
    change: &mut Change,
    workspace_id: &WorkspaceId,
    new: CreateOAuthAppInput,
    actor: &Actor,
) -> crate::db::Result<OAuthApp> {
    let at = Timestamp(change.at());
    let mut app = OAuthApp {
        id: OAuthAppId::generate(),
        workspace_id: workspace_id.clone(),
        name: new.name,
        scopes: new.scopes,
        token_expires_in: new.token_expires_in,
        keys: Vec::new(),
        created_at: at,
        updated_at: at,
    };
    oauth_apps::insert(change, &app).await?;
    let key = new_key(&app, new.key_name, new.public_key, at);
    oauth_apps::insert_key(change, &key).await?;
    let mut details = key_details(&key);
    details["scopes"] = json!(app.scopes);
    details["tokenExpiresIn"] = json!(app.token_expires_in);
    app.keys.push(key);
    change.record_in(
        workspace_id.as_str(),
        event("OAuth App Created", actor, &app, details),
    )?;
    Ok(app)
}

fn new_key(app: &OAuthApp, name: Name, public_key: PublicKey, at: Timestamp) -> OAuthKey {
    OAuthKey {
        id: OAuthKeyId::generate(),
        app_id: app.id.clone(),
        name,
        algorithm: public_key.algorithm(),
        public_key: public_key.pem().to_string(),
        created_at: at,
    }
}

async fn find(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    id: &str,
) -> Result<OAuthApp, ApiError> {
    let id: OAuthAppId = path_id(id, "OAuth app")?;
    oauth_apps::find(conn, workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("OAuth app"))
}

/// What `update_app` changes; None keeps the value.
#[derive(Debug, Default)]
pub struct AppChanges {
    pub name: Option<Name>,
    pub scopes: Option<Scopes>,
    pub token_expires_in: Option<TokenLifetime>,
}

/// Changes an app of the change's workspace, and revokes its access tokens
/// that have a scope it no longer has.
pub async fn update_app(
    change: &mut Change,
    workspace_id: &WorkspaceId,
    id: &str,
    changes: AppChanges,
    actor: &Actor,
) -> Result<OAuthApp, ApiError> {
    let mut app = find(&mut *change, workspace_id, id).await?;
    let before = app.clone();
    app.name = changes.name.unwrap_or(app.name);
    app.scopes = changes.scopes.unwrap_or(app.scopes);
    app.token_expires_in = changes.token_expires_in.unwrap_or(app.token_expires_in);
    app.updated_at = Timestamp(change.at());
    oauth_apps::update(change, &app).await?;
    let mut diff = Changes::default();
    diff.field("name", &before.name, &app.name);
    diff.field(
        "scopes",
        &before.scopes.to_string(),
        &app.scopes.to_string(),
    );
    diff.field(
        "tokenExpiresIn",
        &before.token_expires_in.secs(),
        &app.token_expires_in.secs(),
    );
    change.record(event(
        "OAuth App Modified",
        actor,
        &app,
        diff.into_details(),
    ));
    let now = Timestamp(change.at());
    let live = tokens::live_of_app(&mut *change, &app.id, None, now).await?;
    let withdrawn: Vec<&tokens::Token> = live
        .iter()
        .filter(|t| {
            t.oauth
                .as_ref()
                .is_some_and(|g| !app.scopes.contains_all(&g.scopes))
        })
        .collect();
    revocation::revoke_in(
        change,
        &withdrawn,
        actor,
        revocation::REASON_SCOPE_WITHDRAWN,
    )
    .await?;
    Ok(app)
}

/// Deletes an app of the change's workspace and revokes its access
/// tokens; how many were live.
pub async fn delete_app(
    change: &mut Change,
    workspace_id: &WorkspaceId,
    id: &str,
    actor: &Actor,
) -> Result<usize, ApiError> {
    let app = find(&mut *change, workspace_id, id).await?;
    let now = Timestamp(change.at());
    let live = tokens::live_of_app(&mut *change, &app.id, None, now).await?;
    let live: Vec<&tokens::Token> = live.iter().collect();
    let revoked =
        revocation::revoke_in(change, &live, actor, revocation::REASON_APP_DELETED).await?;
    oauth_apps::delete(change, &app.id).await?;
    change.record(event(
        "OAuth App Deleted",
        actor,
        &app,
        json!({ "revokedTokens": revoked }),
    ));
    Ok(revoked)
}

/// Adds a key to an app of the change's workspace (409 past `MAX_KEYS`).
pub async fn add_app_key(
    change: &mut Change,
    workspace_id: &WorkspaceId,
    id: &str,
    key_name: Name,
    public_key: PublicKey,
    actor: &Actor,
) -> Result<OAuthApp, ApiError> {
    let mut app = find(&mut *change, workspace_id, id).await?;
    if app.keys.len() >= MAX_KEYS {
        return Err(ApiError::Conflict(format!(
            "this app has {MAX_KEYS} keys already; remove one before adding another"
        )));
    }
    let key = new_key(&app, key_name, public_key, Timestamp(change.at()));
    oauth_apps::insert_key(change, &key).await?;
    change.record(event("OAuth App Key Added", actor, &app, key_details(&key)));
    app.keys.push(key);
    Ok(app)
}

/// Removes a key of an app of the change's workspace (409 for its only
/// key) and revokes the access tokens issued with it; how many were live.
pub async fn remove_app_key(
    change: &mut Change,
    workspace_id: &WorkspaceId,
    id: &str,
    key_id: &str,
    actor: &Actor,
) -> Result<usize, ApiError> {
    let app = find(&mut *change, workspace_id, id).await?;
    let key_id: OAuthKeyId = path_id(key_id, "key")?;
    let key = app
        .keys
        .iter()
        .find(|k| k.id == key_id)
        .ok_or_else(|| ApiError::not_found("key"))?;
    if app.keys.len() == 1 {
        return Err(ApiError::Conflict(
            "this is the app's only key; add its replacement first, or delete the app".into(),
        ));
    }
    let now = Timestamp(change.at());
    let live = tokens::live_of_app(&mut *change, &app.id, Some(&key.id), now).await?;
    let live: Vec<&tokens::Token> = live.iter().collect();
    let revoked =
        revocation::revoke_in(change, &live, actor, revocation::REASON_KEY_REMOVED).await?;
    oauth_apps::delete_key(change, &key.id).await?;
    let mut details = key_details(key);
    details["revokedTokens"] = json!(revoked);
    change.record(event("OAuth App Key Removed", actor, &app, details));
    Ok(revoked)
}

pub async fn list(
    caller: Caller<Owner>,
    page: Result<PageRequest, ApiError>,
    state: web::Data<AppState>,
) -> Result<Data<ListOAuthAppsOutput>, ApiError> {
    let request = page?;
    let page = oauth_apps::page(&state.db, &caller.workspace_id, &request.keyset()?).await?;
    let pagination = request.pagination(&page);
    Ok(Data(ListOAuthAppsOutput {
        oauth_apps: page.items,
        pagination,
    }))
}

pub async fn create(
    caller: Caller<Owner>,
    body: JsonBody<CreateOAuthAppInput>,
    state: web::Data<AppState>,
) -> Result<Created<OAuthAppOutput>, ApiError> {
    let body = body.read(&state.settings).await?;
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let app = create_app(&mut change, &caller.workspace_id, body, &caller.actor()).await?;
    change.commit().await?;
    Ok(Created(OAuthAppOutput { oauth_app: app }))
}

pub async fn get(
    caller: Caller<Owner>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<Data<OAuthAppOutput>, ApiError> {
    let app = find(&state.db, &caller.workspace_id, &path).await?;
    Ok(Data(OAuthAppOutput { oauth_app: app }))
}

pub async fn update(
    caller: Caller<Owner>,
    path: web::Path<String>,
    body: JsonBody<UpdateOAuthAppInput>,
    state: web::Data<AppState>,
) -> Result<Data<OAuthAppOutput>, ApiError> {
    let body = body.read(&state.settings).await?;
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let changes = AppChanges {
        name: body.name,
        scopes: body.scopes,
        token_expires_in: body.token_expires_in,
    };
    let app = update_app(
        &mut change,
        &caller.workspace_id,
        &path,
        changes,
        &caller.actor(),
    )
    .await?;
    change.commit().await?;
    Ok(Data(OAuthAppOutput { oauth_app: app }))
}

pub async fn delete(
    caller: Caller<Owner>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<Data<Done>, ApiError> {
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let revoked = delete_app(&mut change, &caller.workspace_id, &path, &caller.actor()).await?;
    change.commit().await?;
    state.metrics.tokens_revoked.inc_by(revoked as u64);
    Ok(Done::success())
}

pub async fn add_key(
    caller: Caller<Owner>,
    path: web::Path<String>,
    body: JsonBody<AddOAuthAppKeyInput>,
    state: web::Data<AppState>,
) -> Result<Created<OAuthAppOutput>, ApiError> {
    let body = body.read(&state.settings).await?;
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let app = add_app_key(
        &mut change,
        &caller.workspace_id,
        &path,
        body.key_name,
        body.public_key,
        &caller.actor(),
    )
    .await?;
    change.commit().await?;
    Ok(Created(OAuthAppOutput { oauth_app: app }))
}

pub async fn remove_key(
    caller: Caller<Owner>,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<Data<Done>, ApiError> {
    let (app_id, key_id) = path.into_inner();
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let revoked = remove_app_key(
        &mut change,
        &caller.workspace_id,
        &app_id,
        &key_id,
        &caller.actor(),
    )
    .await?;
    change.commit().await?;
    state.metrics.tokens_revoked.inc_by(revoked as u64);
    Ok(Done::success())
}
