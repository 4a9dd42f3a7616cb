//! Test support for memdex: servers started on free loopback ports for one test
//! run (memcached from the Debian package, PostgreSQL 15 run as the `postgres`
//! user, MariaDB run as the `mysql` user), stopped when dropped; stores over every
//! database × cache combination, each on a database of its own ([`backends`]) or
//! several on one database, as the processes of a deployment ([`shared_db`]); a
//! fault-injecting proxy, a cache stepper for deterministic races, a runtime for
//! the async tests, a model shared by
//! the tests not about a model's shape ([`models`]), and the differential harness ([`differential`]) with its random
//! queries and their oracle.

pub mod asynchronous;
pub mod backends;
pub mod certs;
pub mod differential;
pub mod models;
pub mod outside;
pub mod proxy;
pub mod servers;
pub mod shared_db;
pub mod stepping;
