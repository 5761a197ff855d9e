//! Local stand-in for GitHub: a P-256 key pair, the key-set JSON GitHub
//! would serve for it, and alerts signed exactly as GitHub signs them (DER
//! ECDSA over the raw body bytes). Used by `leakguard dev keygen`,
//! `leakguard alert simulate` and the tests.

use std::path::Path;

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

use super::keys::{KeySetDocument, PublishedKey};
use super::signature::VerifyingKey;
use crate::token::sha256_hex;

pub struct DevKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    rng: SystemRandom,
}

pub const PRIVATE_KEY_FILE: &str = "private_key.pem";
pub const KEY_SET_FILE: &str = "keys.json";

impl DevKey {
    pub fn generate() -> DevKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .expect("key generation")
            .as_ref()
            .to_vec();
        DevKey::from_pkcs8(&pkcs8).expect("fresh key parses")
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> anyhow::Result<DevKey> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng)
            .map_err(|e| anyhow::anyhow!("not a P-256 PKCS#8 private key: {e}"))?;
        Ok(DevKey {
            pair,
            pkcs8: pkcs8.to_vec(),
            rng,
        })
    }

    pub fn public_pem(&self) -> String {
        VerifyingKey::from_point(self.pair.public_key().as_ref())
            .expect("ring's own point")
            .to_spki_pem()
    }

    /// Like GitHub's: the hex SHA-256 of the public key.
    pub fn identifier(&self) -> String {
        sha256_hex(self.pair.public_key().as_ref())
    }

    /// The `Github-Public-Key-Signature` value for `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        let sig = self.pair.sign(&self.rng, body).expect("signing");
        base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
    }

    pub fn published(&self, is_current: bool) -> PublishedKey {
        PublishedKey {
            key_identifier: self.identifier(),
            key: self.public_pem(),
            is_current,
        }
    }

    /// A key-set document listing these keys, the first marked current.
    pub fn key_set(keys: &[&DevKey]) -> String {
        let doc = KeySetDocument {
            public_keys: keys
                .iter()
                .enumerate()
                .map(|(i, k)| k.published(i == 0))
                .collect(),
        };
        serde_json::to_string_pretty(&doc).expect("serialisable")
    }

    pub fn private_pem(&self) -> String {
        crate::pem::encode("PRIVATE KEY", &self.pkcs8)
    }

    /// Writes `private_key.pem` (mode 0600) and `keys.json` into `dir`.
    pub fn write_to(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        crate::pem::write_private(&dir.join(PRIVATE_KEY_FILE), &self.private_pem())?;
        std::fs::write(dir.join(KEY_SET_FILE), DevKey::key_set(&[self]))?;
        Ok(())
    }

    pub fn read_from(dir: &Path) -> anyhow::Result<DevKey> {
        let path = dir.join(PRIVATE_KEY_FILE);
        let pem = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        match rustls_pemfile::read_one(&mut pem.as_bytes()) {
            Ok(Some(rustls_pemfile::Item::Pkcs8Key(der))) => {
                DevKey::from_pkcs8(der.secret_pkcs8_der())
            }
            _ => anyhow::bail!("{} holds no PKCS#8 private key", path.display()),
        }
    }
}

/// The body GitHub would send for these tokens, serialised once: the
/// signature covers exactly these bytes.
pub fn alert_body(tokens: &[&str], token_type: &str, url: &str, source: &str) -> Vec<u8> {
    let items: Vec<serde_json::Value> = tokens
        .iter()
        .map(
            |t| serde_json::json!({ "token": t, "type": token_type, "url": url, "source": source }),
        )
        .collect();
    serde_json::to_vec(&items).expect("serialisable")
}
