//! OWNER: helper "cache". memcached through the `memcache` crate's meta-protocol
//! layer, pipelined, keys sharded over servers. `Memcached::connect(&[addr], CacheConfig)`.
