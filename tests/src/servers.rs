//! OWNER: helpers "cache" (memcached) and "db" (PostgreSQL) add their server here.
