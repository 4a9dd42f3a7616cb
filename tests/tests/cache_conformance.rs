//! One conformance suite for every cache backend: the in-process cache, one real
//! memcached and two sharded memcacheds must answer every check the same way.
//! memcached-only fault tests (a killed shard, a silent server, garbage replies, a
//! restart) and a latency measurement follow the shared checks.

// A test fails by panicking with a message that says what went wrong.
#![allow(clippy::panic)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memdex::cache::in_process::{InProcessCache, ManualClock};
use memdex::cache::memcached::Memcached;
use memdex::cache::{CacheBackend, CacheConfig, CacheError, CacheOp, CacheReply};
use memdex_tests::asynchronous::OnRuntime;
use memdex_tests::servers::memcached::{FakeMemcached, MemcachedServer};

/// How a test gets a memcached client: one per transport.
type Connect = fn(&[String], CacheConfig) -> Result<Box<dyn CacheBackend>, CacheError>;

/// The blocking client, and the tokio client (each batch run on the test runtime):
/// the memcached-only tests below run on both.
const TRANSPORTS: [(&str, Connect); 2] = [("blocking", blocking), ("tokio", tokio)];

fn blocking(servers: &[String], config: CacheConfig) -> Result<Box<dyn CacheBackend>, CacheError> {
    Ok(Box::new(Memcached::connect(servers, config)?))
}

fn tokio(servers: &[String], config: CacheConfig) -> Result<Box<dyn CacheBackend>, CacheError> {
    Ok(Box::new(OnRuntime::connect(servers, config)?))
}

/// A backend under test and a way to let time pass for it.
struct Subject<'a> {
    cache: &'a dyn CacheBackend,
    /// Moves the backend's clock forward: a manual clock for the in-process
    /// cache, a real sleep for memcached.
    wait: &'a dyn Fn(Duration),
}

type Check = fn(&Subject<'_>, &str);

/// Every shared check, with a name used as its key prefix and in failure output.
const CHECKS: &[(&str, Check)] = &[
    ("get_set_miss", get_set_miss),
    ("cas", cas),
    ("cas_only_read", cas_only_read),
    ("lease_fill", lease_fill),
    ("append_onto_placeholder", append_onto_placeholder),
    ("append_never_creates", append_never_creates),
    ("delete", delete),
    ("large_values", large_values),
    ("binary_values", binary_values),
    ("long_keys", long_keys),
    ("batch_in_order", batch_in_order),
    ("long_runs_of_plain_gets", long_runs_of_plain_gets),
    ("one_lease_winner_under_contention", one_lease_winner_under_contention),
    ("expiry", expiry),
];

fn conforms(subject: &Subject<'_>, label: &str) {
    for (name, check) in CHECKS {
        eprintln!("{label}: {name}");
        check(subject, &format!("{label}:{name}"));
    }
}

/// Generous timeouts for the shared checks: the test machine is shared by many
/// builds, and the checks are about semantics, not latency.
fn relaxed() -> CacheConfig {
    CacheConfig {
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(5),
        ..CacheConfig::default()
    }
}

#[test]
fn in_process_conforms() {
    let clock = ManualClock::new();
    let cache = InProcessCache::with_clock(relaxed(), Arc::new(clock.clone()));
    assert_eq!(cache.describe(), "in-process");
    conforms(&Subject { cache: &cache, wait: &|by: Duration| clock.advance(by) }, "in-process");
}

#[test]
fn memcached_conforms() {
    let server = MemcachedServer::start().expect("memcached starts");
    let cache = Memcached::connect(&[server.addr()], relaxed()).expect("client connects");
    assert_eq!(cache.describe(), format!("memcached {}", server.addr()));
    conforms(&Subject { cache: &cache, wait: &std::thread::sleep }, "memcached");
}

#[test]
fn tokio_memcached_conforms() {
    let server = MemcachedServer::start().expect("memcached starts");
    let cache = OnRuntime::connect(&[server.addr()], relaxed()).expect("client connects");
    assert_eq!(cache.describe(), format!("memcached {}", server.addr()));
    conforms(&Subject { cache: &cache, wait: &std::thread::sleep }, "tokio-memcached");
}

#[test]
fn tokio_sharded_memcached_conforms() {
    let servers =
        [MemcachedServer::start().expect("memcached starts"), MemcachedServer::start().expect("memcached starts")];
    let addrs: Vec<String> = servers.iter().map(MemcachedServer::addr).collect();
    let cache = OnRuntime::connect(&addrs, relaxed()).expect("client connects");
    conforms(&Subject { cache: &cache, wait: &std::thread::sleep }, "tokio-sharded");
}

#[test]
fn sharded_memcached_conforms() {
    let servers =
        [MemcachedServer::start().expect("memcached starts"), MemcachedServer::start().expect("memcached starts")];
    let addrs: Vec<String> = servers.iter().map(MemcachedServer::addr).collect();
    let cache = Memcached::connect(&addrs, relaxed()).expect("client connects");
    assert_eq!(cache.describe(), format!("memcached {}, {}", addrs[0], addrs[1]));
    conforms(&Subject { cache: &cache, wait: &std::thread::sleep }, "sharded");
}

// ---------------------------------------------------------------- helpers

fn one(cache: &dyn CacheBackend, op: CacheOp<'_>) -> CacheReply {
    let mut results = cache.run(&[op]);
    assert_eq!(results.len(), 1, "one result per op");
    match results.remove(0) {
        Ok(reply) => reply,
        Err(error) => panic!("{op:?} failed: {error}"),
    }
}

fn get(cache: &dyn CacheBackend, key: &str) -> CacheReply {
    one(cache, CacheOp::Get { key, lease: None })
}

fn lease(cache: &dyn CacheBackend, key: &str) -> CacheReply {
    one(cache, CacheOp::Get { key, lease: Some(30) })
}

fn set(cache: &dyn CacheBackend, key: &str, value: &[u8]) -> CacheReply {
    one(cache, CacheOp::Set { key, value, ttl: 0 })
}

/// The value and CAS of a hit; fails the test on anything else.
fn hit(reply: CacheReply) -> (Vec<u8>, u64) {
    match reply {
        CacheReply::Hit { value, cas } => (value.to_vec(), cas),
        other => panic!("expected a hit, got {other:?}"),
    }
}

fn won(reply: CacheReply) -> u64 {
    match reply {
        CacheReply::LeaseWon { cas } => cas,
        other => panic!("expected to win the lease, got {other:?}"),
    }
}

// ---------------------------------------------------------------- shared checks

fn get_set_miss(s: &Subject<'_>, prefix: &str) {
    let key = format!("{prefix}:k");
    assert_eq!(get(s.cache, &key), CacheReply::Miss);
    assert_eq!(set(s.cache, &key, b"one"), CacheReply::Stored);
    let (value, first_cas) = hit(get(s.cache, &key));
    assert_eq!(value, b"one");
    assert_eq!(set(s.cache, &key, b"two"), CacheReply::Stored);
    let (value, second_cas) = hit(get(s.cache, &key));
    assert_eq!(value, b"two");
    assert_ne!(first_cas, second_cas, "every store changes the CAS");
    // An empty value is a value.
    assert_eq!(set(s.cache, &key, b""), CacheReply::Stored);
    assert_eq!(hit(get(s.cache, &key)).0, b"");
}

fn cas(s: &Subject<'_>, prefix: &str) {
    let key = format!("{prefix}:k");
    assert_eq!(set(s.cache, &key, b"v1"), CacheReply::Stored);
    let (_, token) = hit(get(s.cache, &key));
    let wrong = token.wrapping_add(1_000_000);
    assert_eq!(one(s.cache, CacheOp::Cas { key: &key, value: b"x", ttl: 0, cas: wrong }), CacheReply::Exists);
    assert_eq!(hit(get(s.cache, &key)).0, b"v1", "a failed CAS changes nothing");
    assert_eq!(one(s.cache, CacheOp::Cas { key: &key, value: b"v2", ttl: 0, cas: token }), CacheReply::Stored);
    let (value, new_token) = hit(get(s.cache, &key));
    assert_eq!(value, b"v2");
    assert_ne!(new_token, token);
    // The old token is spent.
    assert_eq!(one(s.cache, CacheOp::Cas { key: &key, value: b"v3", ttl: 0, cas: token }), CacheReply::Exists);
    let absent = format!("{prefix}:absent");
    assert_eq!(one(s.cache, CacheOp::Cas { key: &absent, value: b"x", ttl: 0, cas: token }), CacheReply::NotFound);
    assert_eq!(get(s.cache, &absent), CacheReply::Miss, "CAS never creates");
}

/// `GetCas` answers the CAS a full get would, changes with every mutation (append,
/// store, delete), never creates or leases, and sees a lease placeholder.
fn cas_only_read(s: &Subject<'_>, prefix: &str) {
    let key = format!("{prefix}:node");
    let cas_of = |key: &str| one(s.cache, CacheOp::GetCas { key });
    assert_eq!(cas_of(&key), CacheReply::Miss);
    assert_eq!(get(s.cache, &key), CacheReply::Miss, "a CAS-only read never creates the item");
    assert_eq!(set(s.cache, &key, b"#1\n1,"), CacheReply::Stored);
    let (_, token) = hit(get(s.cache, &key));
    assert_eq!(cas_of(&key), CacheReply::Present { cas: token });
    assert_eq!(cas_of(&key), CacheReply::Present { cas: token }, "reading the CAS changes nothing");
    assert_eq!(one(s.cache, CacheOp::Append { key: &key, value: b"2," }), CacheReply::Stored);
    let (value, appended) = hit(get(s.cache, &key));
    assert_eq!(value, b"#1\n1,2,");
    assert_ne!(appended, token);
    assert_eq!(cas_of(&key), CacheReply::Present { cas: appended });
    assert_eq!(one(s.cache, CacheOp::Delete { key: &key }), CacheReply::Deleted);
    assert_eq!(cas_of(&key), CacheReply::Miss);
    let placeholder = won(lease(s.cache, &key));
    assert_eq!(cas_of(&key), CacheReply::Present { cas: placeholder });
    assert_eq!(lease(s.cache, &key), CacheReply::LeaseBusy, "the lease is still held");
}

fn lease_fill(s: &Subject<'_>, prefix: &str) {
    let key = format!("{prefix}:node");
    let token = won(lease(s.cache, &key));
    assert_eq!(lease(s.cache, &key), CacheReply::LeaseBusy, "a second lease-getter waits");
    assert_eq!(lease(s.cache, &key), CacheReply::LeaseBusy, "and so does a third");
    // A plain get sees the empty placeholder.
    assert_eq!(hit(get(s.cache, &key)).0, b"");
    assert_eq!(one(s.cache, CacheOp::Cas { key: &key, value: b"filled", ttl: 0, cas: token }), CacheReply::Stored);
    let (value, cas) = hit(lease(s.cache, &key));
    assert_eq!(value, b"filled", "after the fill, lease-getters hit");
    assert_ne!(cas, token);
    assert_eq!(hit(get(s.cache, &key)).0, b"filled");
    // A plain set also ends a lease.
    let other = format!("{prefix}:other");
    won(lease(s.cache, &other));
    assert_eq!(set(s.cache, &other, b"direct"), CacheReply::Stored);
    assert_eq!(hit(lease(s.cache, &other)).0, b"direct");
}

fn append_onto_placeholder(s: &Subject<'_>, prefix: &str) {
    let key = format!("{prefix}:node");
    let token = won(lease(s.cache, &key));
    assert_eq!(one(s.cache, CacheOp::Append { key: &key, value: b",7" }), CacheReply::Stored);
    assert_eq!(lease(s.cache, &key), CacheReply::LeaseBusy, "appends do not fill a placeholder");
    assert_eq!(hit(get(s.cache, &key)).0, b",7", "a plain get sees the appended bytes");
    assert_eq!(
        one(s.cache, CacheOp::Cas { key: &key, value: b"header,1,2", ttl: 0, cas: token }),
        CacheReply::Exists,
        "the fill must not overwrite a concurrent append"
    );
    assert_eq!(hit(get(s.cache, &key)).0, b",7");
}

fn append_never_creates(s: &Subject<'_>, prefix: &str) {
    let key = format!("{prefix}:node");
    assert_eq!(one(s.cache, CacheOp::Append { key: &key, value: b"x" }), CacheReply::NotStored);
    assert_eq!(get(s.cache, &key), CacheReply::Miss);
    assert_eq!(set(s.cache, &key, b"a"), CacheReply::Stored);
    let (_, before) = hit(get(s.cache, &key));
    assert_eq!(one(s.cache, CacheOp::Append { key: &key, value: b"b" }), CacheReply::Stored);
    assert_eq!(one(s.cache, CacheOp::Append { key: &key, value: b"c" }), CacheReply::Stored);
    let (value, after) = hit(get(s.cache, &key));
    assert_eq!(value, b"abc");
    assert_ne!(before, after, "an append changes the CAS");
    assert_eq!(one(s.cache, CacheOp::Cas { key: &key, value: b"z", ttl: 0, cas: before }), CacheReply::Exists);
}

fn delete(s: &Subject<'_>, prefix: &str) {
    let key = format!("{prefix}:k");
    assert_eq!(one(s.cache, CacheOp::Delete { key: &key }), CacheReply::NotFound);
    assert_eq!(set(s.cache, &key, b"v"), CacheReply::Stored);
    assert_eq!(one(s.cache, CacheOp::Delete { key: &key }), CacheReply::Deleted);
    assert_eq!(get(s.cache, &key), CacheReply::Miss);
    assert_eq!(one(s.cache, CacheOp::Delete { key: &key }), CacheReply::NotFound);
    // Deleting a placeholder ends the lease: the next getter wins.
    won(lease(s.cache, &key));
    assert_eq!(one(s.cache, CacheOp::Delete { key: &key }), CacheReply::Deleted);
    won(lease(s.cache, &key));
}

fn large_values(s: &Subject<'_>, prefix: &str) {
    let max = s.cache.max_value_size();
    let too_large = vec![b'x'; max + 1];
    let key = format!("{prefix}:big");
    assert_eq!(one(s.cache, CacheOp::Set { key: &key, value: &too_large, ttl: 0 }), CacheReply::NotStored);
    assert_eq!(get(s.cache, &key), CacheReply::Miss);
    let token = won(lease(s.cache, &key));
    assert_eq!(one(s.cache, CacheOp::Cas { key: &key, value: &too_large, ttl: 0, cas: token }), CacheReply::NotStored);
    assert_eq!(one(s.cache, CacheOp::Append { key: &key, value: &too_large }), CacheReply::NotStored);
    // The largest allowed value round-trips intact.
    let largest: Vec<u8> = (0..max).map(|i| (i % 251) as u8).collect();
    let fits = format!("{prefix}:fits");
    assert_eq!(set(s.cache, &fits, &largest), CacheReply::Stored);
    assert!(hit(get(s.cache, &fits)).0 == largest, "the largest value comes back intact");
}

fn binary_values(s: &Subject<'_>, prefix: &str) {
    let mut value: Vec<u8> = (0..=255u8).collect();
    value.extend_from_slice(b"\r\nEND\r\nVA 3\r\n\0\0\r\n");
    let key = format!("{prefix}:bin");
    assert_eq!(set(s.cache, &key, &value), CacheReply::Stored);
    assert_eq!(hit(get(s.cache, &key)).0, value);
    assert_eq!(one(s.cache, CacheOp::Append { key: &key, value: b"\0\r\n" }), CacheReply::Stored);
    value.extend_from_slice(b"\0\r\n");
    assert_eq!(hit(get(s.cache, &key)).0, value);
    // A batch after binary values is still in step.
    let results = s.cache.run(&[CacheOp::Get { key: &key, lease: None }, CacheOp::Get { key: &key, lease: None }]);
    for result in results {
        assert_eq!(hit(result.expect("both gets answer")).0, value);
    }
}

/// A batch of many plain gets (which memcached receives as classic multi-gets, in
/// runs of at most 512 keys) with other ops among them: every op gets its own reply,
/// in order, whatever the values hold (the reply's own framing, values larger than
/// the read buffer), with keys missing, repeated and 250 bytes long.
fn long_runs_of_plain_gets(s: &Subject<'_>, prefix: &str) {
    let keys: Vec<String> = (0..1_200)
        .map(|i| {
            let key = format!("{prefix}:{i}:");
            if i % 7 == 3 { format!("{key}{}", "p".repeat(250 - key.len())) } else { key }
        })
        .collect();
    let value_of = |i: usize| -> Option<Vec<u8>> {
        match i {
            _ if i.is_multiple_of(3) => None,
            _ if i % 97 == 1 => Some((0..200_000).map(|b| (b % 251) as u8).collect()),
            _ if i % 5 == 2 => Some(format!("\r\nEND\r\nVALUE {prefix}:0: 0 1 2\r\nx\r\n{i}").into_bytes()),
            _ => Some(format!("v{i}").into_bytes()),
        }
    };
    for (i, key) in keys.iter().enumerate() {
        if let Some(value) = value_of(i) {
            assert_eq!(set(s.cache, key, &value), CacheReply::Stored, "{key}");
        }
    }
    let fresh = format!("{prefix}:fresh");
    let leased = format!("{prefix}:leased");
    // Positions into `keys` for the gets; usize::MAX marks the other ops, in turn.
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.splice(600..600, [usize::MAX, 7, 7, usize::MAX, usize::MAX]);
    let others = [
        CacheOp::Set { key: &fresh, value: b"new", ttl: 0 },
        CacheOp::GetCas { key: &keys[1] },
        CacheOp::Get { key: &leased, lease: Some(30) },
    ];
    let mut other = others.iter();
    let ops: Vec<CacheOp<'_>> = order
        .iter()
        .map(|&i| match i {
            usize::MAX => *other.next().expect("three other ops"),
            i => CacheOp::Get { key: &keys[i], lease: None },
        })
        .collect();
    let replies = s.cache.run(&ops);
    assert_eq!(replies.len(), ops.len(), "one reply per op");
    let mut other_replies = Vec::new();
    for (&i, reply) in order.iter().zip(replies) {
        let reply = reply.unwrap_or_else(|e| panic!("op {i} failed: {e}"));
        if i == usize::MAX {
            other_replies.push(reply);
            continue;
        }
        match (value_of(i), reply) {
            (None, CacheReply::Miss) => {}
            (Some(value), CacheReply::Hit { value: got, .. }) => assert!(got == value, "key {i}: wrong value"),
            (expected, got) => panic!("key {i}: expected {:?}, got {got:?}", expected.map(|v| v.len())),
        }
    }
    assert_eq!(other_replies[0], CacheReply::Stored);
    assert!(matches!(other_replies[1], CacheReply::Present { .. }), "{:?}", other_replies[1]);
    assert!(matches!(other_replies[2], CacheReply::LeaseWon { .. }), "{:?}", other_replies[2]);
    // The CAS a batched get gives is the item's own.
    let batched =
        s.cache.run(&[CacheOp::Get { key: &keys[1], lease: None }, CacheOp::Get { key: &keys[2], lease: None }]);
    let alone = hit(get(s.cache, &keys[2]));
    assert!(matches!(&batched[1], Ok(CacheReply::Hit { cas, .. }) if *cas == alone.1), "{:?}", batched[1]);
    assert_eq!(hit(get(s.cache, &fresh)).0, b"new", "and the set in the middle landed");
}

fn long_keys(s: &Subject<'_>, prefix: &str) {
    let longest = format!("{prefix}:{}", "k".repeat(250 - prefix.len() - 1));
    assert_eq!(longest.len(), 250);
    assert_eq!(set(s.cache, &longest, b"v"), CacheReply::Stored);
    assert_eq!(hit(get(s.cache, &longest)).0, b"v");
    let too_long = format!("{longest}k");
    let results = s.cache.run(&[
        CacheOp::Get { key: &too_long, lease: None },
        CacheOp::Set { key: &too_long, value: b"v", ttl: 0 },
        CacheOp::Get { key: &longest, lease: None },
    ]);
    assert!(matches!(results[0], Err(CacheError::Protocol { .. })), "{:?}", results[0]);
    assert!(matches!(results[1], Err(CacheError::Protocol { .. })), "{:?}", results[1]);
    assert!(
        matches!(&results[2], Ok(CacheReply::Hit { value, .. }) if value[..] == b"v"[..]),
        "only the bad keys fail"
    );
    // Escaped keys as memdex builds them are plain ASCII without spaces.
    let escaped = format!("{prefix}:item:1a2b:0:name=caf%C3%A9%20bar");
    assert_eq!(set(s.cache, &escaped, b"v"), CacheReply::Stored);
    assert_eq!(hit(get(s.cache, &escaped)).0, b"v");
}

fn batch_in_order(s: &Subject<'_>, prefix: &str) {
    // Set key i, then get it back, 500 times: 1,000 ops in one batch, each get
    // seeing the set before it.
    let keys: Vec<String> = (0..500).map(|i| format!("{prefix}:{i}")).collect();
    let values: Vec<Vec<u8>> = (0..500).map(|i| format!("value {i}").into_bytes()).collect();
    let mut ops = Vec::with_capacity(1000);
    for (key, value) in keys.iter().zip(&values) {
        ops.push(CacheOp::Set { key, value, ttl: 0 });
        ops.push(CacheOp::Get { key, lease: None });
    }
    let results = s.cache.run(&ops);
    assert_eq!(results.len(), 1000);
    for (i, pair) in results.chunks(2).enumerate() {
        assert_eq!(pair[0], Ok(CacheReply::Stored), "set {i}");
        let (value, _) = hit(pair[1].clone().expect("get answers"));
        assert_eq!(value, values[i], "get {i} answers its own key");
    }
    // And a pure multi-get with misses in between, answered in op order.
    let absent: Vec<String> = (0..500).map(|i| format!("{prefix}:absent{i}")).collect();
    let ops: Vec<CacheOp<'_>> = keys
        .iter()
        .zip(&absent)
        .flat_map(|(key, absent)| [CacheOp::Get { key, lease: None }, CacheOp::Get { key: absent, lease: None }])
        .collect();
    let results = s.cache.run(&ops);
    for (i, pair) in results.chunks(2).enumerate() {
        assert_eq!(hit(pair[0].clone().expect("get answers")).0, values[i]);
        assert_eq!(pair[1], Ok(CacheReply::Miss));
    }
}

fn one_lease_winner_under_contention(s: &Subject<'_>, prefix: &str) {
    let key = format!("{prefix}:hot");
    // Only the cache crosses threads (the clock hook need not be `Sync`).
    let cache = s.cache;
    let replies: Vec<CacheReply> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8).map(|_| scope.spawn(|| lease(cache, &key))).collect();
        handles.into_iter().map(|handle| handle.join().expect("lease thread")).collect()
    });
    let winners = replies.iter().filter(|reply| matches!(reply, CacheReply::LeaseWon { .. })).count();
    let busy = replies.iter().filter(|reply| **reply == CacheReply::LeaseBusy).count();
    assert_eq!((winners, busy), (1, 7), "{replies:?}");
}

fn expiry(s: &Subject<'_>, prefix: &str) {
    let short = format!("{prefix}:short");
    let forever = format!("{prefix}:forever");
    let leased = format!("{prefix}:leased");
    assert_eq!(one(s.cache, CacheOp::Set { key: &short, value: b"v", ttl: 1 }), CacheReply::Stored);
    assert_eq!(one(s.cache, CacheOp::Set { key: &forever, value: b"v", ttl: 0 }), CacheReply::Stored);
    won(one(s.cache, CacheOp::Get { key: &leased, lease: Some(1) }));
    assert_eq!(one(s.cache, CacheOp::Get { key: &leased, lease: Some(1) }), CacheReply::LeaseBusy);
    // memcached's clock ticks in whole seconds, so one second may expire anywhere
    // in (0, 2] seconds.
    (s.wait)(Duration::from_millis(2100));
    assert_eq!(get(s.cache, &short), CacheReply::Miss);
    assert_eq!(hit(get(s.cache, &forever)).0, b"v");
    // An abandoned lease expires and the next getter wins.
    won(one(s.cache, CacheOp::Get { key: &leased, lease: Some(1) }));
}

// ---------------------------------------------------------------- memcached faults

fn is_transport_error(result: &Result<CacheReply, CacheError>) -> bool {
    matches!(result, Err(CacheError::Unreachable { .. } | CacheError::Timeout { .. } | CacheError::Ambiguous { .. }))
}

#[test]
fn a_killed_shard_fails_only_its_own_ops() {
    for (transport, connect) in TRANSPORTS {
        eprintln!("-- {transport}");
        a_killed_shard_fails_only_its_own_ops_on(connect);
    }
}

fn a_killed_shard_fails_only_its_own_ops_on(connect: Connect) {
    let mut servers =
        [MemcachedServer::start().expect("memcached starts"), MemcachedServer::start().expect("memcached starts")];
    let addrs: Vec<String> = servers.iter().map(MemcachedServer::addr).collect();
    let cache = connect(&addrs, relaxed()).expect("client connects");
    let keys: Vec<String> = (0..40).map(|i| format!("shard:{i}")).collect();
    for key in &keys {
        assert_eq!(set(&*cache, key, key.as_bytes()), CacheReply::Stored);
    }
    // Which keys live on the first server, seen through a client of that server alone.
    let first_only = connect(&addrs[..1], relaxed()).expect("client connects");
    let on_first: BTreeSet<&str> = keys
        .iter()
        .filter(|key| matches!(get(&*first_only, key), CacheReply::Hit { .. }))
        .map(String::as_str)
        .collect();
    assert!(!on_first.is_empty() && on_first.len() < keys.len(), "keys spread over both servers: {on_first:?}");

    servers[1].kill();
    let ops: Vec<CacheOp<'_>> = keys.iter().map(|key| CacheOp::Get { key, lease: None }).collect();
    let results = cache.run(&ops);
    assert_eq!(results.len(), keys.len());
    for (key, result) in keys.iter().zip(&results) {
        if on_first.contains(key.as_str()) {
            assert_eq!(hit(result.clone().expect("the live server answers")).0, key.as_bytes());
        } else {
            assert!(is_transport_error(result), "{key}: {result:?}");
        }
    }
}

#[test]
fn a_silent_server_times_out_within_the_configured_time() {
    for (transport, connect) in TRANSPORTS {
        eprintln!("-- {transport}");
        a_silent_server_times_out_within_the_configured_time_on(connect);
    }
}

fn a_silent_server_times_out_within_the_configured_time_on(connect: Connect) {
    let silent = FakeMemcached::silent().expect("listener starts");
    let io_timeout = Duration::from_millis(300);
    let config = CacheConfig { io_timeout, ..CacheConfig::default() };
    let cache = connect(&[silent.addr()], config).expect("client connects");
    let started = Instant::now();
    let results = cache.run(&[
        CacheOp::Get { key: "a", lease: None },
        CacheOp::Set { key: "b", value: b"v", ttl: 0 },
        CacheOp::Get { key: "c", lease: Some(30) },
    ]);
    let elapsed = started.elapsed();
    assert!(elapsed >= io_timeout, "gave up early: {elapsed:?}");
    assert!(elapsed < io_timeout + Duration::from_millis(700), "took {elapsed:?}");
    assert!(matches!(results[0], Err(CacheError::Timeout { .. })), "{:?}", results[0]);
    // Written but unanswered mutations may have happened.
    assert!(matches!(results[1], Err(CacheError::Ambiguous { .. })), "{:?}", results[1]);
    assert!(matches!(results[2], Err(CacheError::Ambiguous { .. })), "{:?}", results[2]);
}

/// A server that cannot be reached when the client starts is marked down at once:
/// its ops fail without any I/O (and the set is owed to it until a probe succeeds).
#[test]
fn a_dead_port_is_marked_down_at_start() {
    for (transport, connect) in TRANSPORTS {
        eprintln!("-- {transport}");
        a_dead_port_is_marked_down_at_start_on(connect);
    }
}

fn a_dead_port_is_marked_down_at_start_on(connect: Connect) {
    // A loopback address the test servers never bind (they listen on 127.0.0.1), so
    // that no server started by a test running alongside takes the port meanwhile.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("probe port").port();
    let cache = connect(&[format!("127.0.0.2:{port}")], CacheConfig::default()).expect("lazy connect");
    let results = cache.run(&[CacheOp::Set { key: "a", value: b"v", ttl: 0 }]);
    assert!(matches!(results[0], Err(CacheError::Down { .. })), "{:?}", results[0]);
    assert!(cache.owes(&["a"]), "the failed set is owed to the down server");
    let health = cache.health();
    assert_eq!((health.servers_down, health.markdowns, health.skipped_ops), (1, 1, 1), "{health:?}");
}

/// A server that dies after the client started fails the batch that finds out
/// (unreachable: the dial is refused), and the next batches fail at once.
#[test]
fn a_server_that_dies_is_marked_down_after_one_failure() {
    for (transport, connect) in TRANSPORTS {
        eprintln!("-- {transport}");
        a_server_that_dies_is_marked_down_after_one_failure_on(connect);
    }
}

fn a_server_that_dies_is_marked_down_after_one_failure_on(connect: Connect) {
    let mut server = MemcachedServer::start().expect("memcached starts");
    let cache = connect(&[server.addr()], CacheConfig::default()).expect("client connects");
    assert_eq!(cache.run(&[CacheOp::Set { key: "a", value: b"v", ttl: 0 }]), vec![Ok(CacheReply::Stored)]);
    server.kill();
    let first = cache.run(&[CacheOp::Get { key: "a", lease: None }]);
    assert!(matches!(first[0], Err(CacheError::Unreachable { .. })), "{first:?}");
    let next = cache.run(&[CacheOp::Delete { key: "a" }]);
    assert!(matches!(next[0], Err(CacheError::Down { .. })), "{next:?}");
    assert!(cache.owes(&["a"]), "the skipped delete is owed");
    server.restart().expect("restarts");
    let start = Instant::now();
    while cache.health().servers_down > 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "marked up again after the restart");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!cache.owes(&["a"]), "the probe applied the owed delete");
    assert_eq!(cache.run(&[CacheOp::Get { key: "a", lease: None }]), vec![Ok(CacheReply::Miss)]);
}

#[test]
fn garbage_replies_are_protocol_errors() {
    for (transport, connect) in TRANSPORTS {
        eprintln!("-- {transport}");
        garbage_replies_are_protocol_errors_on(connect);
    }
}

fn garbage_replies_are_protocol_errors_on(connect: Connect) {
    for garbage in
        [&b"HELLO THERE\r\n"[..], b"VA banana\r\n", b"VA 3 c1\r\nabcdef", b"\x00\x01\x02\r\n", b"CLIENT_ERROR bad\r\n"]
    {
        let server = FakeMemcached::replying(garbage).expect("listener starts");
        let cache = connect(&[server.addr()], relaxed()).expect("client connects");
        let results = cache.run(&[CacheOp::Get { key: "a", lease: None }, CacheOp::Get { key: "b", lease: None }]);
        for result in &results {
            assert!(matches!(result, Err(CacheError::Protocol { .. })), "{garbage:?}: {result:?}");
        }
    }
}

#[test]
fn the_client_recovers_after_a_memcached_restart() {
    for (transport, connect) in TRANSPORTS {
        eprintln!("-- {transport}");
        the_client_recovers_after_a_memcached_restart_on(connect);
    }
}

fn the_client_recovers_after_a_memcached_restart_on(connect: Connect) {
    let mut server = MemcachedServer::start().expect("memcached starts");
    let cache = connect(&[server.addr()], relaxed()).expect("client connects");
    assert_eq!(set(&*cache, "k", b"before"), CacheReply::Stored);
    server.restart().expect("memcached restarts");
    // The pooled connection to the old process was closed when it exited: the
    // reuse check in front of the next batch finds the close and dials anew, so
    // not even the first batch fails.
    let reply = cache.run(&[CacheOp::Get { key: "k", lease: None }]).remove(0);
    assert_eq!(reply, Ok(CacheReply::Miss), "a restarted memcached is empty, and the first batch succeeds");
    assert_eq!(set(&*cache, "k", b"after"), CacheReply::Stored);
    assert_eq!(hit(get(&*cache, "k")).0, b"after");
}

#[test]
fn a_tiny_memcached_evicts_and_rejects_without_breaking_the_stream() {
    for (transport, connect) in TRANSPORTS {
        eprintln!("-- {transport}");
        a_tiny_memcached_evicts_and_rejects_without_breaking_the_stream_on(connect);
    }
}

fn a_tiny_memcached_evicts_and_rejects_without_breaking_the_stream_on(connect: Connect) {
    // 2 MiB of memory and memcached's 1 MiB item limit. The client is told values
    // up to 2 MiB are fine, so an oversized value reaches the server, which answers
    // SERVER_ERROR and stays in step; small values evict older ones.
    let server = MemcachedServer::start_with(&["-m", "2"]).expect("memcached starts");
    let config = CacheConfig { max_value_size: 2 * 1024 * 1024, ..relaxed() };
    let cache = connect(&[server.addr()], config).expect("client connects");
    let big = vec![b'x'; 1536 * 1024];
    let results = cache.run(&[
        CacheOp::Set { key: "big", value: &big, ttl: 0 },
        CacheOp::Set { key: "small", value: b"v", ttl: 0 },
        CacheOp::Get { key: "small", lease: None },
    ]);
    assert_eq!(results[0], Ok(CacheReply::NotStored));
    assert_eq!(results[1], Ok(CacheReply::Stored));
    assert!(matches!(&results[2], Ok(CacheReply::Hit { value, .. }) if value[..] == b"v"[..]));

    let value = vec![b'y'; 10 * 1024];
    let keys: Vec<String> = (0..600).map(|i| format!("fill:{i}")).collect();
    let ops: Vec<CacheOp<'_>> = keys.iter().map(|key| CacheOp::Set { key, value: &value, ttl: 0 }).collect();
    for result in cache.run(&ops) {
        assert_eq!(result, Ok(CacheReply::Stored));
    }
    assert_eq!(get(&*cache, &keys[0]), CacheReply::Miss, "6 MB into 2 MB evicts the oldest");
    assert_eq!(hit(get(&*cache, &keys[599])).0, value);
}

// ---------------------------------------------------------------- measurement

/// Not an assertion: prints the median latency of a 100-key multi-get through
/// the backend and through a bare `TcpStream` sending the same `mg` pipeline, so
/// the backend's overhead over the wire can be quoted.
#[test]
fn measure_100_key_get_batch() {
    let server = MemcachedServer::start().expect("memcached starts");
    let cache = Memcached::connect(&[server.addr()], relaxed()).expect("client connects");
    let keys: Vec<String> = (0..100).map(|i| format!("bench:item:{i}")).collect();
    let value = vec![b'v'; 100];
    for key in &keys {
        assert_eq!(set(&cache, key, &value), CacheReply::Stored);
    }
    let ops: Vec<CacheOp<'_>> = keys.iter().map(|key| CacheOp::Get { key, lease: None }).collect();
    const ROUNDS: usize = 300;
    let median = |mut samples: Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2]
    };

    let mut backend = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let results = cache.run(&ops);
        backend.push(started.elapsed());
        assert!(results.iter().all(|result| matches!(result, Ok(CacheReply::Hit { .. }))));
    }

    let stream = TcpStream::connect(server.addr()).expect("raw connection");
    stream.set_nodelay(true).expect("nodelay");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut request = Vec::new();
    for key in &keys {
        request.extend_from_slice(format!("mg {key} v c f\r\n").as_bytes());
    }
    let mut raw = Vec::with_capacity(ROUNDS);
    let mut line = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        writer.write_all(&request).expect("write");
        for _ in &keys {
            line.clear();
            reader.read_until(b'\n', &mut line).expect("header");
            let length: usize = std::str::from_utf8(&line[3..])
                .ok()
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .expect("VA header");
            let mut data = vec![0u8; length + 2];
            reader.read_exact(&mut data).expect("data");
        }
        raw.push(started.elapsed());
    }
    let (backend, raw) = (median(backend), median(raw));
    println!("100-key get batch, median of {ROUNDS}: memdex Memcached {backend:?}, raw TcpStream mg pipeline {raw:?}");
    eprintln!("100-key get batch, median of {ROUNDS}: memdex Memcached {backend:?}, raw TcpStream mg pipeline {raw:?}");
}
