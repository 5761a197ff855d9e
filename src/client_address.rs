//! The address of the client behind a request: the TCP peer, or, when the
//! peer is a proxy listed in `LEAKGUARD_TRUSTED_PROXIES`, the address that
//! proxy recorded in `X-Forwarded-For`. Per-client limits key on it, so it
//! must not be something a client can choose: a header is believed only
//! from a proxy the operator named.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// The client's address; None only for a request without a peer (which a
/// TCP listener never produces).
pub fn client_address(req: &HttpRequest, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    Some(resolve(peer, &forwarded, trusted_proxies))
}

/// Walks the chain of hops from the nearest one back: the first address
/// that is not a trusted proxy is the client. Entries further left were
/// written by whoever sent the request to the first trusted proxy, and
/// may be anything.
fn resolve(peer: IpAddr, forwarded: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer;
    for entry in forwarded.iter().rev() {
        if !is_trusted(&client) {
            break;
        }
        match parse_hop(entry) {
            Some(ip) => client = ip,
            // A trusted proxy forwarded something that is not an address:
            // the proxy itself is the last hop we can vouch for.
            None => break,
        }
    }
    client
}

/// `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]:443` or `203.0.113.7:443`.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    entry
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|addr| addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_header_is_believed_only_from_a_trusted_proxy() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer = ip("10.1.2.3");
        // No proxies trusted: the header is the client's own say-so.
        assert_eq!(resolve(peer, &["198.51.100.9"], &[]), peer);
        // From an untrusted peer: ignored.
        assert_eq!(
            resolve(ip("192.0.2.1"), &["198.51.100.9"], &proxies),
            ip("192.0.2.1")
        );
        // From a trusted proxy: the nearest untrusted hop, not the
        // leftmost entry, which the client wrote itself.
        assert_eq!(
            resolve(peer, &["1.1.1.1", "198.51.100.9", "10.9.9.9"], &proxies),
            ip("198.51.100.9")
        );
        assert_eq!(
            resolve(peer, &[" [2001:db8::1]:443 "], &proxies),
            ip("2001:db8::1")
        );
        // Garbage from a trusted proxy: the proxy is the client we know.
        assert_eq!(resolve(peer, &["unknown"], &proxies), peer);
        // Only proxies in the chain: the furthest one.
        assert_eq!(resolve(peer, &["10.0.0.1"], &proxies), ip("10.0.0.1"));
        assert_eq!(resolve(peer, &[], &proxies), peer);
    }
}
