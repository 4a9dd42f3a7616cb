//! OWNER: helper "db": a PostgreSQL 15 server (run as the `postgres` user) on a free loopback port.
