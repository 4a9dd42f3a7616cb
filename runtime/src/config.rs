//! Configuration from URLs and the environment (`StoreBuilder::url`,
//! `StoreBuilder::from_env`): which database a URL names, and the memcached server
//! list. Pure parsing; a bad value is an `Error::Config` naming the part that is
//! wrong, never a panic.

use crate::error::Error;

/// The database a URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DatabaseUrl {
    /// `sqlite://path` (relative), `sqlite:///path` (absolute), `sqlite:path`.
    SqliteFile(String),
    /// `sqlite::memory:` or `sqlite://:memory:`.
    SqliteMemory,
    /// `postgres://…` or `postgresql://…`, handed to the driver whole.
    Postgres(String),
    /// `mysql://…` or `mariadb://…` (the latter spelled `mysql://` for the driver).
    MySql(String),
}

/// The environment variable that names the database, first match wins.
pub(crate) const DATABASE_VARS: [&str; 2] = ["MEMDEX_DATABASE_URL", "DATABASE_URL"];

/// The environment variable that lists the memcached servers.
pub(crate) const MEMCACHED_VAR: &str = "MEMDEX_MEMCACHED";

/// Parses a database URL; `what` names where it came from, for the error.
pub(crate) fn database_url(url: &str, what: &str) -> Result<DatabaseUrl, Error> {
    let url = url.trim();
    let bad = |why: String| Error::Config(format!("{what}: {why}"));
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err(bad(format!("`{url}` is not a URL (expected sqlite://…, postgres://… or mysql://…)")));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "sqlite" => {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            match path.split('?').next().unwrap_or(path) {
                ":memory:" => Ok(DatabaseUrl::SqliteMemory),
                "" => Err(bad("a sqlite URL needs a path (sqlite://shop.db) or :memory:".to_owned())),
                file => Ok(DatabaseUrl::SqliteFile(file.to_owned())),
            }
        }
        "postgres" | "postgresql" => {
            if !rest.starts_with("//") {
                return Err(bad(format!("`{url}`: a PostgreSQL URL is postgres://user@host/db")));
            }
            Ok(DatabaseUrl::Postgres(url.to_owned()))
        }
        "mysql" | "mariadb" => {
            if !rest.starts_with("//") {
                return Err(bad(format!("`{url}`: a MySQL URL is mysql://user:password@host/db")));
            }
            Ok(DatabaseUrl::MySql(format!("mysql:{rest}")))
        }
        other => Err(bad(format!("unknown scheme `{other}` in `{url}` (expected sqlite, postgres or mysql)"))),
    }
}

/// The environment variable naming a PEM file of the CA to trust for memcached over
/// TLS (feature `tls`); setting it dials every server over TLS.
#[cfg(feature = "tls")]
pub(crate) const MEMCACHED_CA_VAR: &str = "MEMDEX_MEMCACHED_TLS_CA";

/// Parses `host:port,host:port` (each optionally `tls://host:port`); `what` names
/// where it came from, for the error.
pub(crate) fn memcached_servers(list: &str, what: &str) -> Result<Vec<String>, Error> {
    let servers: Vec<String> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    if servers.is_empty() {
        return Err(Error::Config(format!("{what}: no server in `{list}` (expected host:port,host:port)")));
    }
    for server in &servers {
        let address = server.strip_prefix("tls://").unwrap_or(server);
        let port = address.rsplit_once(':').map(|(host, port)| (host, port.parse::<u16>()));
        match port {
            Some((host, Ok(port))) if !host.is_empty() && port > 0 => {}
            _ => {
                return Err(Error::Config(format!(
                    "{what}: `{server}` is not host:port (a port from 1 to 65535 is required)"
                )));
            }
        }
    }
    Ok(servers)
}

/// The first of `vars` that is set (and not empty), with its name.
pub(crate) fn first_var(vars: &[&'static str], get: &dyn Fn(&str) -> Option<String>) -> Option<(&'static str, String)> {
    vars.iter().find_map(|&name| get(name).filter(|v| !v.trim().is_empty()).map(|v| (name, v)))
}

#[cfg(test)]
#[allow(clippy::panic)] // a test fails by panicking
mod tests {
    use super::*;

    fn check(url: &str, expect: Result<DatabaseUrl, &str>) {
        match (database_url(url, "URL"), expect) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{url}"),
            (Err(Error::Config(message)), Err(part)) => {
                assert!(message.contains(part), "{url}: {message:?} should name {part:?}")
            }
            (got, want) => panic!("{url}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn database_urls() {
        check("sqlite://shop.db", Ok(DatabaseUrl::SqliteFile("shop.db".into())));
        check("sqlite:///var/lib/shop.db", Ok(DatabaseUrl::SqliteFile("/var/lib/shop.db".into())));
        check("sqlite:shop.db", Ok(DatabaseUrl::SqliteFile("shop.db".into())));
        check("sqlite://shop.db?mode=rwc", Ok(DatabaseUrl::SqliteFile("shop.db".into())));
        check("sqlite::memory:", Ok(DatabaseUrl::SqliteMemory));
        check("sqlite://:memory:", Ok(DatabaseUrl::SqliteMemory));
        check(" SQLITE::memory: ", Ok(DatabaseUrl::SqliteMemory));
        check("postgres://u@h/db", Ok(DatabaseUrl::Postgres("postgres://u@h/db".into())));
        check(
            "postgresql://u:p@h:5433/db?sslmode=require",
            Ok(DatabaseUrl::Postgres("postgresql://u:p@h:5433/db?sslmode=require".into())),
        );
        check("mysql://u:p@h/db", Ok(DatabaseUrl::MySql("mysql://u:p@h/db".into())));
        check("mariadb://u:p@h/db", Ok(DatabaseUrl::MySql("mysql://u:p@h/db".into())));
        check("sqlite://", Err("needs a path"));
        check("redis://h", Err("unknown scheme `redis`"));
        check("shop.db", Err("is not a URL"));
        check("postgres:db", Err("postgres://user@host/db"));
        check("", Err("is not a URL"));
    }

    #[test]
    fn memcached_lists() {
        assert_eq!(memcached_servers("a:1, b:2", "X").ok(), Some(vec!["a:1".to_owned(), "b:2".to_owned()]));
        assert_eq!(memcached_servers("[::1]:11211", "X").ok(), Some(vec!["[::1]:11211".to_owned()]));
        assert_eq!(memcached_servers("tls://a:1,b:2", "X").ok(), Some(vec!["tls://a:1".to_owned(), "b:2".to_owned()]));
        for bad in ["", " , ", "host", "host:", ":11211", "host:0", "host:99999", "host:port", "tls://", "tls://h"] {
            match memcached_servers(bad, "MEMDEX_MEMCACHED") {
                Err(Error::Config(message)) => assert!(message.starts_with("MEMDEX_MEMCACHED: "), "{message}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_first_set_variable_wins() {
        let env = |name: &str| match name {
            "DATABASE_URL" => Some("sqlite::memory:".to_owned()),
            "MEMDEX_DATABASE_URL" => Some("  ".to_owned()),
            _ => None,
        };
        assert_eq!(first_var(&DATABASE_VARS, &env), Some(("DATABASE_URL", "sqlite::memory:".to_owned())));
        assert_eq!(first_var(&[MEMCACHED_VAR], &env), None);
    }
}
