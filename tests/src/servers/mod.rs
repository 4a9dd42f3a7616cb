//! Servers started for one test run on free loopback ports, stopped on drop.

pub mod mariadb;
pub mod memcached;
pub mod postgres;
