//! OWNER: helper "db". SQLite via rusqlite (bundled): `Sqlite::open(path)`,
//! `Sqlite::in_memory()`. Registers `memdex_lower` on every connection.
