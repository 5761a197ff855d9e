//! Optional built-in TLS (rustls, TLS 1.2 minimum) from
//! `LEAKGUARD_TLS_CERT` / `LEAKGUARD_TLS_KEY`.

use std::fs::File;
use std::io::BufReader;

use crate::config::Settings;

pub fn server_config(settings: &Settings) -> anyhow::Result<Option<rustls::ServerConfig>> {
    let (Some(cert_path), Some(key_path)) = (&settings.tls_cert, &settings.tls_key) else {
        return Ok(None);
    };
    let open = |setting: &str, path: &std::path::Path| {
        File::open(path)
            .map(BufReader::new)
            .map_err(|e| anyhow::anyhow!("{setting}: cannot read {}: {e}", path.display()))
    };
    let certs = rustls_pemfile::certs(&mut open("LEAKGUARD_TLS_CERT", cert_path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("LEAKGUARD_TLS_CERT: {e}"))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "LEAKGUARD_TLS_CERT: no certificate in {}",
        cert_path.display()
    );
    let key = rustls_pemfile::private_key(&mut open("LEAKGUARD_TLS_KEY", key_path)?)
        .map_err(|e| anyhow::anyhow!("LEAKGUARD_TLS_KEY: {e}"))?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "LEAKGUARD_TLS_KEY: no private key in {}",
                key_path.display()
            )
        })?;
    // rustls never negotiates below TLS 1.2; both 1.2 and 1.3 are offered.
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| anyhow::anyhow!("LEAKGUARD_TLS_KEY: unusable with LEAKGUARD_TLS_CERT: {e}"))?;
    Ok(Some(config))
}
