//! The `leakguard` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::audit::checkpoints::{PublicKey, SigningKey};
use crate::config::Settings;
use crate::db::{workspaces, Db};
use crate::domain::{Email, Name, Parse, Role, TokenId, WorkspaceId};
use crate::scanning::simulate::{self, DevKey};
use crate::startup::Application;

#[derive(Parser)]
#[command(
    name = "leakguard",
    version,
    about = "Public API tokens with GitHub secret scanning built in"
)]
pub struct Cli {
    /// A TOML file with settings (same keys as the LEAKGUARD_* variables, lower case, no prefix).
    #[arg(long, global = true, env = "LEAKGUARD_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve HTTP and deliver email; applies pending migrations first.
    Serve,
    /// Apply pending database migrations.
    Migrate,
    /// Manage workspaces.
    Workspace {
        #[command(subcommand)]
        command: WorkspaceCommand,
    },
    /// Manage Public API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Console users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Inspect and retry queued email.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Audit-trail tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Local GitHub stand-in.
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
    /// Send GitHub-shaped alerts.
    Alert {
        #[command(subcommand)]
        command: AlertCommand,
    },
}

#[derive(Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace, its owner and an owner token (printed once).
    Create {
        #[arg(long, value_parser = domain::<Name>)]
        name: Name,
        #[arg(long, value_parser = domain::<Email>)]
        owner_email: Email,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Mint a token (printed once).
    Create {
        #[arg(long, value_parser = domain::<WorkspaceId>)]
        workspace: WorkspaceId,
        #[arg(long, value_parser = domain::<Name>)]
        name: Name,
        #[arg(long, default_value = "member", value_parser = domain::<Role>)]
        role: Role,
    },
    /// Revoke a token at once, without the API (when the owner token is
    /// the one that leaked, say).
    Revoke {
        #[arg(long, value_parser = domain::<WorkspaceId>)]
        workspace: WorkspaceId,
        /// The token's id (`GET /tokens`, or the id printed when it was made).
        #[arg(long, value_parser = domain::<TokenId>)]
        id: TokenId,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Print a one-time console sign-in link (for a first sign-in, or when
    /// mail does not arrive). Valid for LEAKGUARD_SIGN_IN_LINK_SECS.
    LoginLink {
        #[arg(long, value_parser = domain::<Email>)]
        email: Email,
        /// The console page to open after sign-in.
        #[arg(long, default_value = "/app")]
        next: String,
    },
}

#[derive(Subcommand)]
pub enum OutboxCommand {
    /// List queued, sent and dead messages.
    List {
        /// Only messages that exhausted their attempts.
        #[arg(long)]
        dead: bool,
    },
    /// Queue a dead message again for a fresh series of attempts.
    Retry { id: String },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check every workspace's hash chain; exits 1 at the first break.
    Verify {
        /// Also check each chain against the signed checkpoints in FILE (the
        /// LEAKGUARD_AUDIT_CHECKPOINT_FILE, or leakguard's JSON log): a chain
        /// cut short or rewritten before its latest checkpoint is a break.
        #[arg(long, value_name = "FILE")]
        checkpoints: Option<PathBuf>,
        /// The checkpoint key's public half (or the key itself); by default
        /// the key LEAKGUARD_AUDIT_CHECKPOINT_KEY names.
        #[arg(long, value_name = "FILE", requires = "checkpoints")]
        public_key: Option<PathBuf>,
    },
    /// Write a new Ed25519 checkpoint key (checkpoint.key, mode 0600) and
    /// its public half (checkpoint.pub) into DIR.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum DevCommand {
    /// Write a P-256 key pair and a GitHub-format key set into DIR.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum AlertCommand {
    /// Sign an alert as GitHub does, POST it and print the feedback.
    Simulate {
        /// The endpoint, e.g. http://127.0.0.1:8080/secret-scanning/github
        #[arg(long)]
        url: String,
        /// Directory written by `leakguard dev keygen`.
        #[arg(long)]
        key: PathBuf,
        /// The leaked token (repeat for a batch).
        #[arg(long, required = true)]
        token: Vec<String>,
        #[arg(long, default_value = "commit")]
        source: String,
        /// Where the token was "found".
        #[arg(long, default_value = "https://github.com/example/repo/blob/main/.env")]
        location: String,
        #[arg(long = "type", default_value = crate::token::TOKEN_TYPE)]
        token_type: String,
    },
}

/// Command-line values parse as the API parses them, so both accept and
/// refuse the same input (a bad one is a usage error, exit 2).
fn domain<T: Parse>(text: &str) -> Result<T, String> {
    T::parse(text)
}

/// Exit codes: 0 success, 1 failure, 2 bad settings or usage.
pub async fn run(cli: Cli) -> i32 {
    if let Some(path) = &cli.config {
        std::env::set_var("LEAKGUARD_CONFIG", path);
    }
    // Commands that need no settings.
    match &cli.command {
        Command::Dev {
            command: DevCommand::Keygen { out },
        } => return report(keygen(out)),
        Command::Alert { command } => return report(simulate_alert(command).await),
        Command::Audit {
            command: AuditCommand::Keygen { out },
        } => return report(checkpoint_keygen(out)),
        _ => {}
    }
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            for line in &e.0 {
                eprintln!("error: {line}");
            }
            return 2;
        }
    };
    // The certificate, its key and the checkpoint key are settings too: a
    // bad file is exit 2.
    if matches!(cli.command, Command::Serve) {
        if let Err(e) = crate::tls::server_config(&settings) {
            eprintln!("error: {e:#}");
            return 2;
        }
        if let Some(path) = &settings.audit_checkpoint_key {
            if let Err(e) = SigningKey::read(path) {
                eprintln!("error: LEAKGUARD_AUDIT_CHECKPOINT_KEY: {e:#}");
                return 2;
            }
        }
    }
    let log = crate::telemetry::init(settings.log_format);
    let result = match cli.command {
        Command::Serve => serve(settings).await,
        command => with_db(&settings, command).await,
    };
    // The log's last lines before the final error line.
    drop(log);
    report(result)
}

fn report(result: anyhow::Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let bind = settings.bind;
    let scheme = if settings.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let app = Application::build(settings).await?;
    tracing::info!("listening on {scheme}://{}:{}", bind.ip(), app.port());
    crate::startup::stop_on_signal(app.handle());
    app.run_until_stopped().await
}

async fn connect(settings: &Settings) -> anyhow::Result<Db> {
    let db = Db::connect(&settings.database_url).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot open {}: {e}",
            crate::telemetry::redact_url(&settings.database_url)
        )
    })?;
    db.migrate().await?;
    Ok(db)
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serialisable")
    );
}

async fn with_db(settings: &Settings, command: Command) -> anyhow::Result<()> {
    let db = connect(settings).await?;
    match command {
        Command::Migrate => eprintln!("migrations applied"),
        Command::Workspace {
            command: WorkspaceCommand::Create { name, owner_email },
        } => {
            let created = crate::onboarding::create_workspace(&db, name, owner_email).await?;
            print_json(&created);
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    workspace,
                    name,
                    role,
                },
        } => {
            anyhow::ensure!(
                workspaces::find(&db, &workspace).await?.is_some(),
                "no workspace with id {:?}",
                workspace.as_str()
            );
            let mut change = db.change(workspace.as_str()).await?;
            let minted = crate::token::mint(
                &mut change,
                &workspace,
                name,
                role,
                &crate::audit::Actor::cli(),
            )
            .await?;
            change.commit().await?;
            print_json(&serde_json::json!({
                "token": minted.secret.expose(),
                "id": minted.token.id,
                "workspaceId": workspace,
                "name": minted.token.name,
                "role": minted.token.role,
                "hint": minted.token.hint,
            }));
        }
        Command::Token {
            command: TokenCommand::Revoke { workspace, id },
        } => {
            let token = crate::db::tokens::find(&db, &workspace, &id)
                .await?
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "no token {:?} in workspace {:?}",
                        id.as_str(),
                        workspace.as_str()
                    )
                })?;
            let revoked = crate::revocation::revoke_one(
                &db,
                &token,
                crate::audit::Actor::cli(),
                crate::revocation::REASON_OPERATOR,
            )
            .await?;
            eprintln!(
                "token {} {}",
                id.as_str(),
                if revoked {
                    "revoked"
                } else {
                    "was already revoked"
                }
            );
        }
        Command::User {
            command: UserCommand::LoginLink { email, next },
        } => {
            anyhow::ensure!(
                !crate::db::users::with_email(&db, &email).await?.is_empty(),
                "no workspace has a user with the address {}",
                email.as_str()
            );
            let link = crate::console::sign_in::issue_link(&db, settings, &email, &next).await?;
            println!("{link}");
            eprintln!(
                "valid once, for {} minute(s); it signs in as {}",
                settings.sign_in_link_lifetime.as_secs().div_ceil(60),
                email.as_str()
            );
        }
        Command::Outbox {
            command: OutboxCommand::List { dead },
        } => print_json(&crate::db::outbox::list(&db, dead).await?),
        Command::Outbox {
            command: OutboxCommand::Retry { id },
        } => {
            anyhow::ensure!(
                crate::db::outbox::retry(&db, &id).await?,
                "no unsent message with id {id:?}"
            );
            eprintln!("message {id} queued again");
        }
        Command::Audit {
            command:
                AuditCommand::Verify {
                    checkpoints,
                    public_key,
                },
        } => {
            // The checkpoints are read and their signatures checked first:
            // a bad file is reported before any database work.
            let checkpoints = match &checkpoints {
                Some(file) => {
                    let key = match (&public_key, &settings.audit_checkpoint_key) {
                        (Some(path), _) | (None, Some(path)) => PublicKey::read(path)?,
                        (None, None) => anyhow::bail!(
                            "--checkpoints needs the checkpoint key: --public-key FILE, \
                             or LEAKGUARD_AUDIT_CHECKPOINT_KEY"
                        ),
                    };
                    Some((file, crate::audit::checkpoints::read_file(file, &key)?))
                }
                None => None,
            };
            let (checked, mut breaks) = crate::audit::verify(&db).await?;
            if let Some((_, checkpoints)) = &checkpoints {
                for b in crate::audit::checkpoints::verify_against(&db, checkpoints).await? {
                    if !breaks
                        .iter()
                        .any(|known| known.workspace_id == b.workspace_id)
                    {
                        breaks.push(b);
                    }
                }
            }
            if let Some(first) = breaks.first() {
                for b in &breaks {
                    eprintln!(
                        "BROKEN workspace {} at event {} ({}): {}",
                        b.workspace_id,
                        b.seq,
                        b.event_id.as_deref().unwrap_or("missing"),
                        b.reason
                    );
                }
                anyhow::bail!(
                    "audit trail of workspace {} is broken at event {}",
                    first.workspace_id,
                    first.event_id.as_deref().unwrap_or("(removed)")
                );
            }
            match &checkpoints {
                Some((file, checkpoints)) => println!(
                    "audit trail intact: {checked} workspace(s) verified, and {} checkpoint(s) \
                     from {} matched",
                    checkpoints.len(),
                    file.display()
                ),
                None => println!("audit trail intact: {checked} workspace(s) verified"),
            }
        }
        Command::Serve
        | Command::Dev { .. }
        | Command::Alert { .. }
        | Command::Audit {
            command: AuditCommand::Keygen { .. },
        } => unreachable!("handled before the database is opened"),
    }
    db.close().await;
    Ok(())
}

/// The checkpoint key's file names in the directory `audit keygen` writes.
pub const CHECKPOINT_KEY_FILE: &str = "checkpoint.key";
pub const CHECKPOINT_PUBLIC_KEY_FILE: &str = "checkpoint.pub";

fn checkpoint_keygen(out: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let private = out.join(CHECKPOINT_KEY_FILE);
    let public = out.join(CHECKPOINT_PUBLIC_KEY_FILE);
    anyhow::ensure!(
        !private.exists(),
        "{} exists; move it away first (its checkpoints verify only with it)",
        private.display()
    );
    let pem = SigningKey::generate_pem();
    let key = SigningKey::from_pem(&pem)?;
    crate::pem::write_private(&private, &pem)?;
    std::fs::write(&public, key.public().to_pem())?;
    println!("wrote {} and {}", private.display(), public.display());
    println!("key fingerprint: {}", key.public().fingerprint());
    println!(
        "serve with: LEAKGUARD_AUDIT_CHECKPOINT_KEY={}",
        std::fs::canonicalize(&private)?.display()
    );
    println!(
        "keep {} apart from the database host; audit verify --checkpoints needs only it",
        public.display()
    );
    Ok(())
}

fn keygen(out: &std::path::Path) -> anyhow::Result<()> {
    let key = DevKey::generate();
    key.write_to(out)?;
    let set = std::fs::canonicalize(out.join(simulate::KEY_SET_FILE))?;
    println!(
        "wrote {} and {}",
        out.join(simulate::PRIVATE_KEY_FILE).display(),
        set.display()
    );
    println!("key identifier: {}", key.identifier());
    println!(
        "serve with: LEAKGUARD_GITHUB_KEYS_URL=file://{}",
        set.display()
    );
    Ok(())
}

async fn simulate_alert(command: &AlertCommand) -> anyhow::Result<()> {
    let AlertCommand::Simulate {
        url,
        key,
        token,
        source,
        location,
        token_type,
    } = command;
    let dev = DevKey::read_from(key)?;
    let tokens: Vec<&str> = token.iter().map(String::as_str).collect();
    let body = simulate::alert_body(&tokens, token_type, location, source);
    let response = reqwest::Client::new()
        .post(url)
        .header(
            "User-Agent",
            concat!("leakguard-alert-simulate/", env!("CARGO_PKG_VERSION")),
        )
        .header("Content-Type", "application/json")
        .header(crate::scanning::KEY_ID_HEADER, dev.identifier())
        .header(crate::scanning::SIGNATURE_HEADER, dev.sign(&body))
        .body(body)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {url}: {e}"))?;
    let status = response.status();
    let text = response.text().await?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(json) => print_json(&json),
        Err(_) => println!("{text}"),
    }
    anyhow::ensure!(status.is_success(), "the endpoint answered {status}");
    Ok(())
}
