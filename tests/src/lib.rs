//! Test support for memdex: servers started on free loopback ports for one test
//! run (memcached from the Debian package, PostgreSQL 15 run as the `postgres`
//! user, MariaDB run as the `mysql` user), stopped when dropped.

pub mod asynchronous;
pub mod backends;
pub mod certs;
pub mod proxy;
pub mod servers;
pub mod stepping;
