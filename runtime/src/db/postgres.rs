//! OWNER: helper "db". PostgreSQL via the `postgres` crate: `Postgres::connect(params)`.
