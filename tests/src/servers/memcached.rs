//! OWNER: helper "cache": a memcached process on a free loopback port.
