//! Who the client is behind a load balancer (`unticked serve --trusted-proxy CIDR`, issue 16).
//!
//! Behind a balancer every connection comes from the balancer's address, so the per-address
//! limits (crate::limit) and the per-address connection cap (crate::http) would count every
//! shopper as one client. The balancer names the client in `X-Forwarded-For`, appending the
//! address it received the request from to whatever the request already carried (MDN,
//! "X-Forwarded-For", "Security and privacy concerns" and "Selecting an IP address"). So
//! only the right end of that list was written by proxies we run; everything left of the
//! first address we do not trust was written by the client, who can put anything there.
//!
//! With `--trusted-proxy 10.0.0.0/8`, a request from 10.0.0.5 carrying
//! `X-Forwarded-For: 6.6.6.6, 203.0.113.7` is from 203.0.113.7 (6.6.6.6 is what the shopper
//! wrote); the same request straight from 198.51.100.9 is from 198.51.100.9.
//!
//! RFC 7239's `Forwarded: for=…` is not read: a balancer that writes only one of the two
//! headers passes the other through from the shopper unchanged, and reading both would let a
//! shopper choose their own address. `X-Forwarded-For` is the one balancers write by default.

use axum::http::{HeaderMap, HeaderName};
use ipnet::{IpNet, Ipv4Net};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The de-facto header (no RFC; MDN "X-Forwarded-For"): `client, proxy1, proxy2`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// A `--trusted-proxy` value that is not an address or a CIDR; each names the bad part
/// (clap prints the whole value beside it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an IPv4 or IPv6 address (give a CIDR such as 10.0.0.0/8 or fd00::/8, or one address)")]
    Address(String),
    #[error("the prefix length {0:?} is not a number from 0 to 32 for IPv4 or 0 to 128 for IPv6")]
    Prefix(String),
}

/// Parses one `--trusted-proxy` value: `10.0.0.0/8`, `fd00::/8`, or a bare address, which
/// stands for itself alone (/32 or /128). Host bits below the prefix are ignored
/// (`10.1.2.3/8` is `10.0.0.0/8`). An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is
/// taken as the IPv4 one, since addresses are compared in their IPv4 form.
///
/// # Errors
/// [`CidrError`] naming the bad part, for clap to print beside the flag and the value.
pub fn parse_cidr(text: &str) -> Result<IpNet, CidrError> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let address: IpAddr = address.parse().map_err(|_| CidrError::Address(address.to_string()))?;
    let net = match prefix {
        None => IpNet::from(address),
        Some(prefix) => {
            let bad = || CidrError::Prefix(prefix.to_string());
            let length: u8 = prefix.parse().map_err(|_| bad())?;
            IpNet::new(address, length).map_err(|_| bad())?
        }
    };
    Ok(canonical_net(net.trunc()))
}

/// `::ffff:a.b.c.d/n` (n ≥ 96) as `a.b.c.d/(n − 96)`; any other network as it is.
fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        _ => net,
    }
}

/// The networks whose connections are our own proxies (`--trusted-proxy`, repeatable):
/// only a request from one of them has its `X-Forwarded-For` read. Empty by default, so the
/// header is ignored unless the operator says where it comes from. Cheap to clone: one is
/// put on every request (crate::http) for [`crate::limit::Client`] to read.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(nets.into_iter().map(canonical_net).collect())
    }

    /// Whether `address` is inside one of the trusted networks; an IPv4-mapped IPv6 address
    /// (a listener on `[::]` sees IPv4 peers so) counts as its IPv4 address.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy and
    /// `X-Forwarded-For` names the client.
    ///
    /// - Peer not trusted: the header is ignored (a shopper can write any).
    /// - Peer trusted: every `X-Forwarded-For` line, in order, joined with commas (RFC 9110
    ///   §5.3), is read from the right, skipping trusted addresses (our own proxies in a
    ///   chain); the first untrusted one is the client. If every entry is trusted, the
    ///   leftmost (the request began inside our network).
    /// - No header, an empty one, or any entry that is not an address: the peer's (the
    ///   proxy's), so that garbage never picks an address. Never panics.
    ///
    /// Entries may carry a port (`203.0.113.7:4711`, `[2001:db8::1]:4711`) or brackets, as
    /// some balancers write them.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let mut chain = Vec::new();
        for line in headers.get_all(&X_FORWARDED_FOR) {
            let Ok(line) = line.to_str() else {
                return peer;
            };
            for entry in line.split(',') {
                match parse_entry(entry) {
                    Some(address) => chain.push(address),
                    None => return peer,
                }
            }
        }
        chain
            .iter()
            .rev()
            .find(|address| !self.contains(**address))
            .or(chain.first())
            .copied()
            .unwrap_or(peer)
    }
}

/// One `X-Forwarded-For` entry: an address, optionally with a port or in brackets, with
/// the optional whitespace around list elements trimmed (RFC 9110 §5.6.1).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim_matches([' ', '\t']);
    let address = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse::<std::net::Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })?;
    Some(address.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| parse_cidr(n).unwrap()).collect())
    }

    fn forwarded(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_trusted_peer_names_the_client_in_x_forwarded_for() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let headers = forwarded(&["203.0.113.7"]);
        assert_eq!(proxies.client_address(ip("10.0.0.5"), &headers), ip("203.0.113.7"));
    }

    #[test]
    fn an_untrusted_peer_cannot_forge_its_address() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let headers = forwarded(&["203.0.113.7"]);
        assert_eq!(proxies.client_address(ip("198.51.100.9"), &headers), ip("198.51.100.9"));
        assert_eq!(
            TrustedProxies::default().client_address(ip("10.0.0.5"), &headers),
            ip("10.0.0.5"),
            "without --trusted-proxy the header is ignored"
        );
    }

    #[test]
    fn what_the_shopper_prepends_is_skipped_and_trusted_hops_are_walked_past() {
        let proxies = trusted(&["10.0.0.0/8", "192.168.1.1"]);
        // The shopper sent `X-Forwarded-For: 6.6.6.6`; the edge balancer appended the
        // shopper's real address, an inner proxy appended the edge's.
        let headers = forwarded(&["6.6.6.6, 203.0.113.7, 10.1.1.1"]);
        assert_eq!(proxies.client_address(ip("192.168.1.1"), &headers), ip("203.0.113.7"));
        // The same chain over several header lines, in order.
        let headers = forwarded(&["6.6.6.6", "203.0.113.7 ,\t10.1.1.1"]);
        assert_eq!(proxies.client_address(ip("10.0.0.5"), &headers), ip("203.0.113.7"));
        // Every hop is ours: the leftmost is the client.
        let headers = forwarded(&["10.9.9.9, 10.1.1.1"]);
        assert_eq!(proxies.client_address(ip("10.0.0.5"), &headers), ip("10.9.9.9"));
    }

    #[test]
    fn ipv6_peers_networks_and_entries() {
        let proxies = trusted(&["fd00::/8", "127.0.0.1/32"]);
        let headers = forwarded(&["2001:db8:1:2::7, fd12::1"]);
        assert_eq!(proxies.client_address(ip("fd00::1"), &headers), ip("2001:db8:1:2::7"));
        // An IPv4 peer seen by a `[::]` listener is its IPv4 address.
        let headers = forwarded(&["[2001:db8::9]:4711"]);
        assert_eq!(
            proxies.client_address(ip("::ffff:127.0.0.1"), &headers),
            ip("2001:db8::9")
        );
        let headers = forwarded(&["[2001:db8::9]", "::ffff:203.0.113.7"]);
        assert_eq!(proxies.client_address(ip("127.0.0.1"), &headers), ip("203.0.113.7"));
        let headers = forwarded(&["203.0.113.7:50000"]);
        assert_eq!(proxies.client_address(ip("127.0.0.1"), &headers), ip("203.0.113.7"));
        // A mapped network is the IPv4 one.
        let mapped = trusted(&["::ffff:10.0.0.0/104"]);
        assert!(mapped.contains(ip("10.2.3.4")) && mapped.contains(ip("::ffff:10.2.3.4")));
        assert!(!mapped.contains(ip("11.0.0.1")));
    }

    #[test]
    fn garbage_or_no_header_leaves_the_peer() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.5");
        assert_eq!(proxies.client_address(peer, &HeaderMap::new()), peer);
        for lines in [
            &[""][..],
            &["unknown"],
            &["203.0.113.7, unknown"],
            &["garbage, 203.0.113.7"],
            &["203.0.113.7,,10.1.1.1"],
            &["203.0.113.7", ""],
            &["203.0.113.7/32"],
            &["[203.0.113.7]"],
            &["999.1.1.1"],
            &["for=203.0.113.7"],
            &["203.0.113.7:99999"],
            &[&"1.2.3.4,".repeat(2000)],
        ] {
            assert_eq!(proxies.client_address(peer, &forwarded(lines)), peer, "{lines:?}");
        }
        let mut opaque = HeaderMap::new();
        opaque.insert(X_FORWARDED_FOR, HeaderValue::from_bytes(b"203.0.113.\xff").unwrap());
        assert_eq!(proxies.client_address(peer, &opaque), peer, "not UTF-8");
    }

    #[test]
    fn cidrs_parse_and_bad_ones_are_named() {
        assert_eq!(parse_cidr("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("127.0.0.1").unwrap().to_string(), "127.0.0.1/32");
        assert_eq!(parse_cidr("fd00::/8").unwrap().to_string(), "fd00::/8");
        assert_eq!(parse_cidr("::1").unwrap().to_string(), "::1/128");
        assert_eq!(parse_cidr("::ffff:10.0.0.0/104").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        for (bad, error) in [
            ("", CidrError::Address("".into())),
            ("10.0.0", CidrError::Address("10.0.0".into())),
            ("proxy.internal", CidrError::Address("proxy.internal".into())),
            ("/8", CidrError::Address("".into())),
            ("10.0.0.0/", CidrError::Prefix("".into())),
            ("10.0.0.0/8/8", CidrError::Prefix("8/8".into())),
            ("fd00::/x", CidrError::Prefix("x".into())),
            ("10.0.0.0/33", CidrError::Prefix("33".into())),
            ("fd00::/129", CidrError::Prefix("129".into())),
            ("10.0.0.0/-1", CidrError::Prefix("-1".into())),
        ] {
            assert_eq!(parse_cidr(bad), Err(error), "{bad}");
        }
        assert_eq!(
            parse_cidr("10.0.0.0/33").unwrap_err().to_string(),
            r#"the prefix length "33" is not a number from 0 to 32 for IPv4 or 0 to 128 for IPv6"#
        );
    }
}
