//! OWNER: helper "cache". An in-process cache with memcached's semantics for the
//! ops memdex uses (CAS, append-only-if-present, leases with placeholders, TTL expiry,
//! an LRU size bound). `InProcessCache::new(CacheConfig)`.
