//! One keyed limiter for everything the collector counts per client address: posts per
//! second, records stored per day, and wrong admin tokens.
//!
//! Each key holds one instant, its *theoretical arrival time* (the generic cell rate
//! algorithm of ITU-T I.371, a token bucket written as a timestamp): an event is admitted
//! while that time is at most `burst − 1` intervals ahead of now, and each admitted event
//! moves it one interval on. A key whose time has passed holds a full bucket and is
//! forgotten, so memory follows the clients active within the last `burst` intervals; the
//! number of keys is capped besides. The clock is passed in, so tests need not sleep.

use crate::proxy::TrustedProxies;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most keys one limiter holds. Past it, after forgetting the idle ones, a new client
/// is held back (`take` and `check` answer a short wait): better that a flood of addresses
/// delays deliveries, which the widget's outbox retries, than that the map grows unbounded.
pub const MAX_KEYS: usize = 100_000;

/// How often idle keys are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The wait answered to a new client while the limiter is full.
const FULL_WAIT: Duration = Duration::from_secs(1);

/// What a limiter counts by: an IPv4 address, or an IPv6 address's /64 prefix, since one
/// host is usually given a whole /64 (RFC 6177, RFC 7934 §6) and could otherwise take a
/// fresh address for every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(address: IpAddr) -> ClientKey {
        match address {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !u128::from(u64::MAX);
                    ClientKey(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }

    /// The address (or /64 prefix) the key stands for, for log lines.
    pub fn address(self) -> IpAddr {
        self.0
    }
}

/// The client of a request: its peer address, as `into_make_service_with_connect_info`
/// records it (crate::http does the same), or, when that peer is one of the
/// `--trusted-proxy` networks the request carries ([`TrustedProxies`], also put there by
/// crate::http), the client its `X-Forwarded-For` names
/// ([`TrustedProxies::client_address`]). Without a peer (a router called directly, as tests
/// do), every request counts as one unspecified client: limits then hold for all of them
/// together.
#[derive(Debug, Clone, Copy)]
pub struct Client(pub ClientKey);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Client, Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
        let address = match parts.extensions.get::<TrustedProxies>() {
            Some(trusted) => trusted.client_address(peer, &parts.headers),
            None => peer,
        };
        Ok(Client(ClientKey::of(address)))
    }
}

/// A per-key limit of `burst` events at once, refilled at one per `interval`.
#[derive(Debug)]
pub struct Limiter {
    interval: Duration,
    /// How far ahead of now a key's time may be and the next event still pass:
    /// `burst − 1` intervals.
    tolerance: Duration,
    /// How far beyond that [`Limiter::charge`] may push a key: the longest wait.
    max_wait: Duration,
    state: Mutex<Keys>,
}

#[derive(Debug)]
struct Keys {
    arrival: HashMap<ClientKey, Instant>,
    swept: Option<Instant>,
}

impl Limiter {
    /// `burst` events at once (at least one), then one per `interval`.
    pub fn new(interval: Duration, burst: u32) -> Limiter {
        Limiter {
            interval,
            tolerance: interval.saturating_mul(burst.max(1) - 1),
            max_wait: interval.saturating_mul(burst.max(1)),
            state: Mutex::new(Keys {
                arrival: HashMap::new(),
                swept: None,
            }),
        }
    }

    /// `per_second` events a second, in bursts of `burst`.
    pub fn per_second(per_second: u32, burst: u32) -> Limiter {
        Limiter::new(Duration::from_secs(1) / per_second.max(1), burst)
    }

    /// `per_day` events in any 24 hours, refilled evenly: a daily quota.
    pub fn per_day(per_day: u32) -> Limiter {
        Limiter::new(Duration::from_secs(24 * 3600) / per_day.max(1), per_day)
    }

    /// The longest wait [`Limiter::charge`] can build up (default: one full bucket).
    pub fn with_max_wait(mut self, max_wait: Duration) -> Limiter {
        self.max_wait = max_wait;
        self
    }

    /// Admits and counts an event now, or answers how long to wait.
    pub fn take(&self, key: ClientKey, now: Instant) -> Result<(), Duration> {
        let mut keys = self.keys(now);
        let arrival = keys.arrival.get(&key).copied();
        if arrival.is_none() && keys.arrival.len() >= MAX_KEYS {
            return Err(FULL_WAIT);
        }
        let arrival = arrival.unwrap_or(now).max(now);
        let wait = self.wait(arrival, now);
        if !wait.is_zero() {
            return Err(wait);
        }
        keys.arrival.insert(key, arrival + self.interval);
        Ok(())
    }

    /// Gives back one event [`Limiter::take`] admitted and counted, when it turned out not
    /// to be one (a daily quota's reservation for a record that was not stored).
    pub fn refund(&self, key: ClientKey, now: Instant) {
        let mut keys = self.keys(now);
        if let Some(arrival) = keys.arrival.get_mut(&key) {
            *arrival = arrival.checked_sub(self.interval).unwrap_or(now).max(now);
        }
    }

    /// Whether an event would be admitted now, without counting it.
    pub fn check(&self, key: ClientKey, now: Instant) -> Result<(), Duration> {
        let keys = self.keys(now);
        match keys.arrival.get(&key) {
            None if keys.arrival.len() >= MAX_KEYS => Err(FULL_WAIT),
            None => Ok(()),
            Some(arrival) => match self.wait((*arrival).max(now), now) {
                wait if wait.is_zero() => Ok(()),
                wait => Err(wait),
            },
        }
    }

    /// Counts an event whether or not it was admitted, up to [`Limiter::with_max_wait`]
    /// ahead: a backoff, where every attempt while held back makes the wait longer.
    /// Answers the wait from now on (zero while events still pass).
    pub fn charge(&self, key: ClientKey, now: Instant) -> Duration {
        let mut keys = self.keys(now);
        if !keys.arrival.contains_key(&key) && keys.arrival.len() >= MAX_KEYS {
            return FULL_WAIT;
        }
        let latest = now + self.tolerance + self.max_wait;
        let arrival = keys.arrival.get(&key).copied().unwrap_or(now).max(now);
        let arrival = (arrival + self.interval).min(latest);
        keys.arrival.insert(key, arrival);
        self.wait(arrival, now)
    }

    /// How many keys are held (for tests of the memory bound).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).arrival.len()
    }

    fn wait(&self, arrival: Instant, now: Instant) -> Duration {
        arrival.saturating_duration_since(now + self.tolerance)
    }

    /// The keys, with the idle ones forgotten every minute, and whenever the map is full.
    fn keys(&self, now: Instant) -> std::sync::MutexGuard<'_, Keys> {
        // A panic elsewhere while holding the lock leaves the map consistent (every
        // update is one insert), so a poisoned lock is taken over.
        let mut keys = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let due = keys
            .swept
            .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY);
        if due || keys.arrival.len() >= MAX_KEYS {
            keys.arrival.retain(|_, arrival| *arrival > now);
            keys.swept = Some(now);
        }
        keys
    }
}

/// Whole seconds for `Retry-After` (RFC 9110 §10.2.3), rounded up and at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    u64::try_from(wait.as_nanos().div_ceil(1_000_000_000))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Wrong admin tokens one address may send before it is held back.
pub const ADMIN_FAILURES: u32 = 5;

/// After those, one more try per minute; every try while held back adds a minute to the
/// wait, up to an hour (so a guesser gets at most one guess a minute, and one who keeps
/// knocking gets none).
pub const ADMIN_RETRY: Duration = Duration::from_secs(60);
pub const ADMIN_MAX_WAIT: Duration = Duration::from_secs(3600);

/// The limits of one collector.
#[derive(Debug)]
pub struct Limits {
    /// Posts a second per address, on `POST /v1/records` and `POST /v1/violations`.
    pub posts: Option<Limiter>,
    /// Records stored a day per address.
    pub daily: Option<Limiter>,
    /// Wrong admin tokens per address.
    pub admin: Limiter,
    /// Wrong, expired or revoked link and account tokens per address (issue 14): held back
    /// as wrong admin tokens are, so that guessing or replaying one leads nowhere.
    pub tokens: Limiter,
}

impl Limits {
    /// `posts_per_second` (bursts of three seconds' worth) and `daily_quota`; 0 turns either off.
    pub fn new(posts_per_second: u32, daily_quota: u32) -> Limits {
        Limits {
            posts: (posts_per_second > 0)
                .then(|| Limiter::per_second(posts_per_second, posts_per_second.saturating_mul(3))),
            daily: (daily_quota > 0).then(|| Limiter::per_day(daily_quota)),
            admin: Limiter::new(ADMIN_RETRY, ADMIN_FAILURES).with_max_wait(ADMIN_MAX_WAIT),
            tokens: Limiter::new(ADMIN_RETRY, ADMIN_FAILURES).with_max_wait(ADMIN_MAX_WAIT),
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::new(0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> ClientKey {
        ClientKey::of(text.parse().unwrap())
    }

    #[test]
    fn a_burst_passes_then_one_per_interval() {
        let limit = Limiter::new(Duration::from_secs(10), 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limit.take(key("10.0.0.1"), start), Ok(()));
        }
        assert_eq!(limit.take(key("10.0.0.1"), start), Err(Duration::from_secs(10)));
        assert_eq!(limit.check(key("10.0.0.1"), start), Err(Duration::from_secs(10)));
        assert_eq!(limit.take(key("10.0.0.2"), start), Ok(()), "another client");
        let later = start + Duration::from_secs(10);
        assert_eq!(limit.take(key("10.0.0.1"), later), Ok(()));
        assert_eq!(limit.take(key("10.0.0.1"), later), Err(Duration::from_secs(10)));
    }

    #[test]
    fn charging_while_held_back_makes_the_wait_grow_up_to_its_cap() {
        let limit = Limiter::new(Duration::from_secs(60), 2).with_max_wait(Duration::from_secs(600));
        let (now, client) = (Instant::now(), key("10.0.0.1"));
        assert_eq!(limit.charge(client, now), Duration::ZERO);
        assert_eq!(limit.charge(client, now), Duration::from_secs(60));
        assert_eq!(limit.charge(client, now), Duration::from_secs(120));
        for _ in 0..100 {
            limit.charge(client, now);
        }
        assert_eq!(limit.check(client, now), Err(Duration::from_secs(600)));
    }

    #[test]
    fn idle_keys_are_forgotten_and_the_map_is_capped() {
        let limit = Limiter::new(Duration::from_millis(1), 1);
        let start = Instant::now();
        for i in 0..1000u32 {
            let _ = limit.take(ClientKey::of(IpAddr::from(i.to_be_bytes())), start);
        }
        assert_eq!(limit.len(), 1000);
        let _ = limit.take(key("10.0.0.1"), start + SWEEP_EVERY);
        assert_eq!(limit.len(), 1, "the idle ones are gone");
    }

    #[test]
    fn an_ipv6_host_counts_by_its_64_prefix() {
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
    }

    /// The extractor counts by the forwarded client only when the request carries the
    /// trusted networks (crate::http puts them on every request) and its peer is in them.
    #[tokio::test]
    async fn the_client_is_the_forwarded_one_only_behind_a_trusted_peer() {
        let client_of = |peer: [u8; 4], trusted: Option<&str>| {
            let mut request = axum::http::Request::get("/")
                .header("x-forwarded-for", "6.6.6.6, 203.0.113.7")
                .body(())
                .unwrap();
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::from((peer, 50000))));
            if let Some(net) = trusted {
                let nets = vec![crate::proxy::parse_cidr(net).unwrap()];
                request.extensions_mut().insert(TrustedProxies::new(nets));
            }
            async move {
                let (mut parts, ()) = request.into_parts();
                let Ok(Client(key)) = Client::from_request_parts(&mut parts, &()).await;
                key
            }
        };
        assert_eq!(client_of([10, 0, 0, 5], Some("10.0.0.0/8")).await, key("203.0.113.7"));
        assert_eq!(client_of([10, 0, 0, 5], None).await, key("10.0.0.5"));
        assert_eq!(client_of([192, 0, 2, 1], Some("10.0.0.0/8")).await, key("192.0.2.1"));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(86_400)), 87);
        assert_eq!(retry_after_secs(Duration::from_secs(60)), 60);
    }
}
