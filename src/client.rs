//! Who is on the other end of a request: the client's address and user
//! agent, as the audit trail and the usage summary record them.
//!
//! `X-Forwarded-For` is believed only as far as the operator's trusted
//! proxies (`LEAKGUARD_TRUSTED_PROXIES`) vouch for it: anyone can send the
//! header, so an address it names counts only when the hop that added it is
//! a proxy the operator listed.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// Longest user agent kept; longer ones are cut (they are free text that a
/// client chooses, and they go into the audit trail and usage rows).
pub const MAX_USER_AGENT: usize = 256;

/// Where a request came from. Both parts are None where there was no
/// network client (the CLI).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Client {
    pub address: Option<String>,
    pub user_agent: Option<String>,
}

impl Client {
    /// The client of `req`: the address that the trusted proxies vouch
    /// for, and the `User-Agent` header.
    pub fn of(req: &HttpRequest, trusted: &TrustedProxies) -> Client {
        Client {
            address: trusted.address_of(req).map(|a| a.to_string()),
            user_agent: req
                .headers()
                .get(actix_web::http::header::USER_AGENT)
                .map(|v| clean_user_agent(&String::from_utf8_lossy(v.as_bytes())))
                .filter(|ua| !ua.is_empty()),
        }
    }

    /// The command line of this host: no address, and the CLI's name.
    pub fn cli() -> Client {
        Client {
            address: None,
            user_agent: Some(concat!("leakguard-cli/", env!("CARGO_PKG_VERSION")).to_string()),
        }
    }

    pub fn is_known(&self) -> bool {
        self.address.is_some() || self.user_agent.is_some()
    }
}

/// Control characters dropped, trimmed, and cut at `MAX_USER_AGENT`
/// characters.
fn clean_user_agent(raw: &str) -> String {
    // Most agents are short printable ASCII with nothing to drop or trim.
    let printable = |b: &u8| (0x21..0x7f).contains(b);
    let bytes = raw.as_bytes();
    if raw.len() <= MAX_USER_AGENT
        && bytes.first().is_some_and(printable)
        && bytes.last().is_some_and(printable)
        && bytes.iter().all(|b| *b == b' ' || printable(b))
    {
        return raw.to_string();
    }
    raw.chars()
        .filter(|c| !c.is_control())
        .take(MAX_USER_AGENT)
        .collect::<String>()
        .trim()
        .to_string()
}

/// The proxies whose `X-Forwarded-For` entries are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(networks.into_iter().map(|n| n.trunc()).collect())
    }

    /// The client address of `req` (see `client_address`); None only for
    /// a request without a peer, which a TCP listener never produces. Per
    /// client limits key on it, so it must not be something a client can
    /// choose.
    pub fn address_of(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        Some(self.client_address(peer, &forwarded))
    }

    /// The client's address: the peer, unless the peer is trusted, in which
    /// case the `X-Forwarded-For` entries are walked from the right (the
    /// entry the nearest proxy added) past every trusted proxy. The first
    /// address that is not a trusted proxy is the client. An entry that is
    /// not an address stops the walk at the proxy that passed it on.
    pub fn client_address(&self, peer: IpAddr, forwarded: &[&str]) -> IpAddr {
        let mut client = peer;
        for entry in forwarded.iter().rev() {
            if !self.contains(client) {
                break;
            }
            match parse_forwarded_address(entry) {
                Some(address) => client = address,
                None => break,
            }
        }
        client
    }

    fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:10.0.0.1`, how a dual-stack
/// socket reports IPv4 peers) is the IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port
/// (`1.2.3.4:5678`, `[::1]:80`) as some proxies write it.
fn parse_forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(address) = entry.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    if let Ok(socket) = entry.parse::<std::net::SocketAddr>() {
        return Some(canonical(socket.ip()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let trusted = TrustedProxies::default();
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &["203.0.113.9"]),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn forwarded_entries_are_believed_only_through_trusted_proxies() {
        let trusted = TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "192.168.1.7/32".parse().unwrap(),
        ]);
        // The proxy at 10.0.0.1 says the client is 203.0.113.9.
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &["203.0.113.9"]),
            ip("203.0.113.9")
        );
        // A client that forges an entry in front of the real one gains
        // nothing: the walk stops at the first untrusted address.
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &["1.1.1.1", "203.0.113.9", "192.168.1.7"]),
            ip("203.0.113.9")
        );
        // From an untrusted peer, the header is ignored.
        assert_eq!(
            trusted.client_address(ip("198.51.100.4"), &["1.1.1.1"]),
            ip("198.51.100.4")
        );
        // Garbage stops the walk at the proxy that passed it on.
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &["unknown"]),
            ip("10.0.0.1")
        );
        // Ports and IPv4-mapped IPv6 are understood.
        assert_eq!(
            trusted.client_address(ip("::ffff:10.0.0.1"), &["203.0.113.9:4711"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn user_agents_lose_control_characters_and_length() {
        assert_eq!(clean_user_agent(" curl/8\u{7}.0 "), "curl/8.0");
        assert_eq!(clean_user_agent(&"x".repeat(1000)).len(), MAX_USER_AGENT);
    }

    proptest::proptest! {
        #[test]
        fn the_plain_ascii_shortcut_cleans_as_the_general_rule(
            agent in "[ -~\t]{0,20}|(?s).{0,20}|[a-z]{250,260}",
        ) {
            let general: String = agent
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_USER_AGENT)
                .collect::<String>()
                .trim()
                .to_string();
            proptest::prop_assert_eq!(clean_user_agent(&agent), general);
        }
    }
}
