//! Signed checkpoints: each workspace's chain position (`seq`, head hash),
//! signed with an Ed25519 key that lives in a file named by
//! `LEAKGUARD_AUDIT_CHECKPOINT_KEY`, never in the database. `leakguard serve`
//! writes one for every workspace whose chain moved, every
//! `LEAKGUARD_AUDIT_CHECKPOINT_SECS`, to the log and to
//! `LEAKGUARD_AUDIT_CHECKPOINT_FILE`: places an operator keeps apart from
//! the database. Someone who can write the database but not read that key
//! can still rewrite a chain and its head, but cannot sign the result, so
//! `leakguard audit verify --checkpoints FILE` finds any chain that was cut
//! short or rewritten before its latest checkpoint.
//!
//! Before signing, the checkpointer checks every event added since its
//! previous checkpoint of that workspace: it only ever signs a chain that
//! extends what it signed before. What happens after the latest checkpoint
//! is not covered; the interval is that window.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{walk, Anchor, ChainBreak};
use crate::config::Settings;
use crate::db::{audit_events, Db};

/// The `type` of a checkpoint line.
pub const CHECKPOINT_TYPE: &str = "leakguard.audit.checkpoint";
/// Signed first, so that a checkpoint signature can never be mistaken for
/// a signature of anything else made with the same key.
const SIGNED_AS: &str = "leakguard audit checkpoint v1";
/// SubjectPublicKeyInfo of an Ed25519 key, before its 32 bytes (RFC 8410).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// One signed checkpoint, as written (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    #[serde(rename = "type")]
    pub kind: String,
    pub workspace_id: String,
    /// The chain's first `seq` events are vouched for...
    pub seq: i64,
    /// ...and the last of them has this hash.
    pub head: String,
    /// When it was signed (RFC 3339).
    pub at: String,
    /// The signing key's fingerprint (`PublicKey::fingerprint`).
    pub key: String,
    /// Ed25519 over `[SIGNED_AS, workspaceId, seq, head, at]` as JSON,
    /// standard base64.
    pub signature: String,
}

impl Checkpoint {
    fn message(workspace_id: &str, seq: i64, head: &str, at: &str) -> Vec<u8> {
        serde_json::json!([SIGNED_AS, workspace_id, seq, head, at])
            .to_string()
            .into_bytes()
    }

    pub fn anchor(&self) -> Anchor {
        Anchor {
            seq: self.seq,
            hash: self.head.clone(),
        }
    }

    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a checkpoint serialises")
    }

    /// A checkpoint line, or a JSON log line of leakguard's that carries
    /// one in its `checkpoint` field; None for any other line.
    pub fn from_line(line: &str) -> Option<Checkpoint> {
        let value: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
        let value = match value.get("checkpoint") {
            Some(serde_json::Value::String(inner)) => serde_json::from_str(inner).ok()?,
            _ => value,
        };
        let checkpoint: Checkpoint = serde_json::from_value(value).ok()?;
        (checkpoint.kind == CHECKPOINT_TYPE).then_some(checkpoint)
    }
}

/// The private half: what `leakguard serve` signs with.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// A new key as PKCS#8 PEM (what `leakguard audit keygen` writes).
    pub fn generate_pem() -> String {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .expect("the system's random generator works");
        crate::pem::encode("PRIVATE KEY", pkcs8.as_ref())
    }

    /// An Ed25519 key in PKCS#8 PEM, as `leakguard audit keygen` or
    /// `openssl genpkey -algorithm ed25519` write it.
    pub fn from_pem(text: &str) -> anyhow::Result<SigningKey> {
        let der = match rustls_pemfile::read_one(&mut text.as_bytes()) {
            Ok(Some(rustls_pemfile::Item::Pkcs8Key(der))) => der,
            _ => anyhow::bail!("no PKCS#8 PRIVATE KEY block"),
        };
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
            .map_err(|e| anyhow::anyhow!("not an Ed25519 key: {e}"))?;
        Ok(SigningKey { pair })
    }

    pub fn read(path: &Path) -> anyhow::Result<SigningKey> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        SigningKey::from_pem(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn public(&self) -> PublicKey {
        let bytes: [u8; 32] = self
            .pair
            .public_key()
            .as_ref()
            .try_into()
            .expect("Ed25519 public keys are 32 bytes");
        PublicKey(bytes)
    }

    pub fn sign(&self, workspace_id: &str, anchor: &Anchor, at: &str) -> Checkpoint {
        let message = Checkpoint::message(workspace_id, anchor.seq, &anchor.hash, at);
        let signature = self.pair.sign(&message);
        Checkpoint {
            kind: CHECKPOINT_TYPE.to_string(),
            workspace_id: workspace_id.to_string(),
            seq: anchor.seq,
            head: anchor.hash.clone(),
            at: at.to_string(),
            key: self.public().fingerprint(),
            signature: base64::engine::general_purpose::STANDARD.encode(signature.as_ref()),
        }
    }
}

/// The public half: all that verifying checkpoints needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// SubjectPublicKeyInfo PEM (`PUBLIC KEY`), as `audit keygen` and
    /// `openssl pkey -pubout` write it.
    pub fn from_pem(text: &str) -> anyhow::Result<PublicKey> {
        let der = match rustls_pemfile::read_one(&mut text.as_bytes()) {
            Ok(Some(rustls_pemfile::Item::SubjectPublicKeyInfo(der))) => der,
            _ => anyhow::bail!("no PUBLIC KEY block"),
        };
        let bytes = der
            .as_ref()
            .strip_prefix(&ED25519_SPKI_PREFIX[..])
            .and_then(|rest| <[u8; 32]>::try_from(rest).ok())
            .ok_or_else(|| anyhow::anyhow!("not an Ed25519 public key"))?;
        Ok(PublicKey(bytes))
    }

    /// A public key file, or the private key file it belongs to.
    pub fn read(path: &Path) -> anyhow::Result<PublicKey> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        PublicKey::from_pem(&text)
            .or_else(|_| SigningKey::from_pem(&text).map(|key| key.public()))
            .map_err(|_| {
                anyhow::anyhow!(
                    "{}: neither an Ed25519 PUBLIC KEY nor PRIVATE KEY",
                    path.display()
                )
            })
    }

    pub fn to_pem(&self) -> String {
        crate::pem::encode("PUBLIC KEY", &[&ED25519_SPKI_PREFIX[..], &self.0].concat())
    }

    /// The first 16 hex digits of the key's SHA-256: which key signed.
    pub fn fingerprint(&self) -> String {
        crate::token::sha256_hex(&self.0)[..16].to_string()
    }

    pub fn verify(&self, checkpoint: &Checkpoint) -> bool {
        let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(&checkpoint.signature)
        else {
            return false;
        };
        let message = Checkpoint::message(
            &checkpoint.workspace_id,
            checkpoint.seq,
            &checkpoint.head,
            &checkpoint.at,
        );
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&message, &signature)
            .is_ok()
    }
}

/// The checkpoints in a file (checkpoint lines, or leakguard's JSON log),
/// every one checked against `key`. A checkpoint that does not verify is
/// an error: it was forged, altered, or signed with another key.
pub fn read_file(path: &Path, key: &PublicKey) -> anyhow::Result<Vec<Checkpoint>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut checkpoints = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some(checkpoint) = Checkpoint::from_line(line) else {
            continue;
        };
        anyhow::ensure!(
            key.verify(&checkpoint),
            "{} line {}: the checkpoint's signature does not verify with key {} \
             (it was altered, or signed with another key)",
            path.display(),
            n + 1,
            key.fingerprint()
        );
        checkpoints.push(checkpoint);
    }
    Ok(checkpoints)
}

/// Checks each workspace's chain against every checkpoint of it: the
/// chain must hold the event each checkpoint vouches for, with the same
/// hash. One break per workspace at most (the first).
pub async fn verify_against(
    db: &Db,
    checkpoints: &[Checkpoint],
) -> crate::db::Result<Vec<ChainBreak>> {
    let mut vouched: BTreeMap<&str, BTreeMap<i64, &Checkpoint>> = BTreeMap::new();
    for checkpoint in checkpoints {
        vouched
            .entry(checkpoint.workspace_id.as_str())
            .or_default()
            .insert(checkpoint.seq, checkpoint);
    }
    let mut breaks = Vec::new();
    let heads = audit_events::heads(db).await?;
    for (workspace_id, by_seq) in &vouched {
        let (&last_seq, last) = by_seq.iter().next_back().expect("at least one checkpoint");
        if !heads.iter().any(|h| h.workspace_id == *workspace_id) {
            breaks.push(ChainBreak {
                workspace_id: workspace_id.to_string(),
                event_id: None,
                seq: 1,
                reason: format!(
                    "the workspace is gone, but the checkpoint of {} vouches for {last_seq} events",
                    last.at
                ),
            });
            continue;
        }
        let walked = walk(db, workspace_id, Anchor::genesis(), |event| {
            let checkpoint = by_seq.get(&event.seq)?;
            (checkpoint.head != event.hash).then(|| {
                format!(
                    "event {} differs from the checkpoint of {}: the history up to it was rewritten",
                    event.seq, checkpoint.at
                )
            })
        })
        .await?;
        match walked {
            Err(b) => breaks.push(b),
            Ok(end) if end.seq < last_seq => breaks.push(ChainBreak {
                workspace_id: workspace_id.to_string(),
                event_id: None,
                seq: end.seq + 1,
                reason: format!(
                    "the chain ends at event {}, but the checkpoint of {} vouches for {last_seq} \
                     events: it was cut short",
                    end.seq, last.at
                ),
            }),
            Ok(_) => {}
        }
    }
    Ok(breaks)
}

/// Writes checkpoints while `leakguard serve` runs.
pub struct Checkpointer {
    key: SigningKey,
    file: Option<PathBuf>,
    interval: Duration,
    db: Db,
    /// What this process last signed, per workspace.
    signed: HashMap<String, Anchor>,
}

impl Checkpointer {
    /// None when `LEAKGUARD_AUDIT_CHECKPOINT_KEY` is not set. The file's
    /// earlier checkpoints (by this key) are where checking resumes.
    pub fn from_settings(settings: &Settings, db: Db) -> anyhow::Result<Option<Checkpointer>> {
        let Some(key_path) = &settings.audit_checkpoint_key else {
            return Ok(None);
        };
        let key = SigningKey::read(key_path)
            .map_err(|e| anyhow::anyhow!("LEAKGUARD_AUDIT_CHECKPOINT_KEY: {e:#}"))?;
        let mut signed = HashMap::new();
        if let Some(file) = settings
            .audit_checkpoint_file
            .as_deref()
            .filter(|f| f.exists())
        {
            let public = key.public();
            let text = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("LEAKGUARD_AUDIT_CHECKPOINT_FILE: {e}"))?;
            for checkpoint in text.lines().filter_map(Checkpoint::from_line) {
                if public.verify(&checkpoint) {
                    let newer = signed
                        .get(&checkpoint.workspace_id)
                        .is_none_or(|a: &Anchor| a.seq < checkpoint.seq);
                    if newer {
                        signed.insert(checkpoint.workspace_id.clone(), checkpoint.anchor());
                    }
                }
            }
        }
        Ok(Some(Checkpointer {
            key,
            file: settings.audit_checkpoint_file.clone(),
            interval: settings.audit_checkpoint_interval,
            db,
            signed,
        }))
    }

    /// Checkpoints every interval until shutdown, and once more then.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(
            key = %self.key.public().fingerprint(),
            file = ?self.file,
            "audit checkpoints on"
        );
        loop {
            if let Err(e) = self.checkpoint().await {
                tracing::error!(error = %e, "audit checkpoints could not be written");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.changed() => break,
            }
        }
        if let Err(e) = self.checkpoint().await {
            tracing::error!(error = %e, "the last audit checkpoints could not be written");
        }
    }

    /// Signs the current position of every workspace whose chain moved
    /// since its last checkpoint, after checking the events in between.
    /// Returns how many were written.
    pub async fn checkpoint(&mut self) -> anyhow::Result<usize> {
        let at = crate::time::format_micros(crate::time::now_micros());
        let mut written = Vec::new();
        for head in audit_events::heads(&self.db).await? {
            let from = self
                .signed
                .get(&head.workspace_id)
                .cloned()
                .unwrap_or_else(Anchor::genesis);
            if head.seq == from.seq && head.hash == from.hash {
                continue;
            }
            match walk(&self.db, &head.workspace_id, from.clone(), |_| None).await? {
                // The walk may see events appended after the head was read.
                Ok(end) if end.seq >= head.seq && end.seq > from.seq => {
                    written.push(self.key.sign(&head.workspace_id, &end, &at));
                }
                // The head moved back, or sideways: not what appends do.
                Ok(end) => tracing::error!(
                    workspace_id = %head.workspace_id,
                    head_seq = head.seq,
                    chain_ends_at = end.seq,
                    last_checkpoint_seq = from.seq,
                    "the workspace's audit head does not match its chain since the last \
                     checkpoint; not checkpointed (run leakguard audit verify --checkpoints)"
                ),
                Err(b) => tracing::error!(
                    workspace_id = %b.workspace_id,
                    seq = b.seq,
                    reason = %b.reason,
                    "the audit chain no longer extends its last checkpoint; not checkpointed"
                ),
            }
        }
        if written.is_empty() {
            return Ok(0);
        }
        let lines: String = written
            .iter()
            .map(|c| format!("{}\n", c.to_line()))
            .collect();
        if let Some(file) = &self.file {
            append(file, &lines).await?;
        }
        // Only what was written counts as signed: a checkpoint the file
        // did not take is signed again next time.
        for checkpoint in &written {
            self.signed
                .insert(checkpoint.workspace_id.clone(), checkpoint.anchor());
        }
        for checkpoint in &written {
            tracing::info!(
                workspace_id = %checkpoint.workspace_id,
                seq = checkpoint.seq,
                checkpoint = %checkpoint.to_line(),
                "audit checkpoint"
            );
        }
        Ok(written.len())
    }
}

/// Appends and flushes to disk: a checkpoint that is logged as written
/// must survive a crash.
async fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    let path = path.to_path_buf();
    let text = text.to_string();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        file.write_all(text.as_bytes())?;
        file.sync_data()?;
        Ok(())
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_with_its_key_only_and_not_once_changed() {
        let key = SigningKey::from_pem(&SigningKey::generate_pem()).unwrap();
        let public = PublicKey::from_pem(&key.public().to_pem()).unwrap();
        assert_eq!(public, key.public());
        let anchor = Anchor {
            seq: 7,
            hash: "ab".repeat(32),
        };
        let checkpoint = key.sign("ws1", &anchor, "2024-05-01T00:00:00.000Z");
        assert!(public.verify(&checkpoint));
        assert_eq!(
            Checkpoint::from_line(&checkpoint.to_line()),
            Some(checkpoint.clone())
        );
        // Inside one of leakguard's JSON log lines.
        let log =
            serde_json::json!({"message": "audit checkpoint", "checkpoint": checkpoint.to_line()});
        assert_eq!(
            Checkpoint::from_line(&log.to_string()),
            Some(checkpoint.clone())
        );

        for tampered in [
            Checkpoint {
                seq: 6,
                ..checkpoint.clone()
            },
            Checkpoint {
                head: "cd".repeat(32),
                ..checkpoint.clone()
            },
            Checkpoint {
                workspace_id: "ws2".into(),
                ..checkpoint.clone()
            },
            Checkpoint {
                at: "2024-05-02T00:00:00.000Z".into(),
                ..checkpoint.clone()
            },
        ] {
            assert!(!public.verify(&tampered), "{tampered:?}");
        }
        let other = SigningKey::from_pem(&SigningKey::generate_pem()).unwrap();
        assert!(!other.public().verify(&checkpoint));
        assert_ne!(other.public().fingerprint(), public.fingerprint());
    }

    #[test]
    fn an_openssl_ed25519_key_is_accepted() {
        // `openssl genpkey -algorithm ed25519`: PKCS#8 v1, no public key
        // inside; and the matching `openssl pkey -pubout`. RFC 8032's
        // first test vector (section 7.1).
        let private = "-----BEGIN PRIVATE KEY-----\n\
            MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
            -----END PRIVATE KEY-----\n";
        let public = "-----BEGIN PUBLIC KEY-----\n\
            MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n\
            -----END PUBLIC KEY-----\n";
        let key = SigningKey::from_pem(private).unwrap();
        assert_eq!(key.public(), PublicKey::from_pem(public).unwrap());
        assert_eq!(
            hex::encode(key.public().0),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }
}
