//! PostgreSQL's TLS settings, read as libpq reads them, for both drivers.
//!
//! `sslmode` (`disable`, `prefer` (the default), `require`, `verify-ca`,
//! `verify-full`) and `sslrootcert` (a PEM file of the CA to trust) are taken out of
//! the connection parameters, whether a `postgres://` URL's query or `key=value`
//! pairs, because `tokio-postgres` knows neither the `verify-*` modes nor
//! `sslrootcert`; the rest goes to the driver unchanged. The modes mean what they
//! mean to libpq: `prefer` tries TLS and falls back to plaintext when the server
//! has none; `require` insists on TLS without checking the certificate (unless
//! `sslrootcert` is given: then it is `verify-ca`, as in libpq); `verify-ca`
//! checks the chain; `verify-full` also checks the host name. Without
//! `sslrootcert` the Mozilla roots are trusted.
//!
//! Without the `tls` feature, `prefer` connects in plaintext (as libpq built
//! without SSL does) and anything stronger is refused with a message naming the
//! feature, never silently sent in plaintext.

use std::fmt;
use std::path::PathBuf;

use tokio_postgres::config::SslMode as DriverMode;

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<SslMode, String> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }

    /// What `tokio-postgres` is told: it only decides whether to ask for TLS.
    fn driver_mode(self) -> DriverMode {
        match self {
            SslMode::Disable => DriverMode::Disable,
            SslMode::Prefer if cfg!(feature = "tls") => DriverMode::Prefer,
            SslMode::Prefer => DriverMode::Disable,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverMode::Require,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        })
    }
}

/// The TLS settings of one set of connection parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsParams {
    pub(crate) mode: SslMode,
    pub(crate) root_cert: Option<PathBuf>,
}

/// How the drivers connect: plaintext, or rustls with a configuration.
#[derive(Clone)]
pub(crate) enum PgTls {
    Plain,
    #[cfg(feature = "tls")]
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

#[cfg(test)]
impl PgTls {
    /// Whether connections are made over TLS (when the server agrees, for `prefer`).
    pub(crate) fn is_tls(&self) -> bool {
        !matches!(self, PgTls::Plain)
    }
}

impl fmt::Debug for PgTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgTls::Plain => f.write_str("Plain"),
            #[cfg(feature = "tls")]
            PgTls::Rustls(_) => f.write_str("Rustls"),
        }
    }
}

/// The parameters without the TLS settings (for the driver), the mode the driver
/// is to use, the connector, and the settings as read (for descriptions).
pub(crate) struct Prepared {
    pub(crate) params: String,
    pub(crate) driver_mode: DriverMode,
    pub(crate) tls: PgTls,
    pub(crate) settings: TlsParams,
}

/// Reads the TLS settings out of `params` and builds the connector. The error is a
/// sentence about the settings (a bad mode, an unreadable CA file, or TLS asked for
/// in a build without the `tls` feature).
pub(crate) fn prepare(params: &str) -> Result<Prepared, String> {
    let (rest, settings) = split(params)?;
    let tls = connector(&settings)?;
    Ok(Prepared { params: rest, driver_mode: settings.mode.driver_mode(), tls, settings })
}

#[cfg(feature = "tls")]
fn connector(settings: &TlsParams) -> Result<PgTls, String> {
    use crate::tls::Verify;
    let verify = match settings.mode {
        SslMode::Disable => return Ok(PgTls::Plain),
        SslMode::Prefer => Verify::Nothing,
        SslMode::Require if settings.root_cert.is_none() => Verify::Nothing,
        SslMode::Require | SslMode::VerifyCa => Verify::Chain,
        SslMode::VerifyFull => Verify::Full,
    };
    let config = crate::tls::client_config(verify, settings.root_cert.as_deref())?;
    Ok(PgTls::Rustls(tokio_postgres_rustls::MakeRustlsConnect::new((*config).clone())))
}

#[cfg(not(feature = "tls"))]
fn connector(settings: &TlsParams) -> Result<PgTls, String> {
    match settings.mode {
        SslMode::Disable | SslMode::Prefer => Ok(PgTls::Plain),
        mode => Err(format!(
            "sslmode={mode} needs TLS, which this build of memdex does not include: enable memdex's `tls` cargo feature"
        )),
    }
}

/// Splits `sslmode` and `sslrootcert` out of a URL or `key=value` pairs.
fn split(params: &str) -> Result<(String, TlsParams), String> {
    let trimmed = params.trim_start();
    let (rest, taken) = if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        split_url(params)
    } else {
        split_key_values(params)
    };
    let mut settings = TlsParams { mode: SslMode::Prefer, root_cert: None };
    for (key, value) in taken {
        match key.as_str() {
            "sslmode" => settings.mode = SslMode::parse(&value)?,
            _ => settings.root_cert = Some(PathBuf::from(value)),
        }
    }
    Ok((rest, settings))
}

/// Whether a parameter is one of those read here.
fn is_tls_key(key: &str) -> bool {
    key == "sslmode" || key == "sslrootcert"
}

/// A URL's query without the TLS pairs, and those pairs (values percent-decoded).
fn split_url(url: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Vec::new());
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((key, value)) if is_tls_key(key) => taken.push((key.to_owned(), percent_decode(value))),
            _ => kept.push(pair),
        }
    }
    if kept.is_empty() { (base.to_owned(), taken) } else { (format!("{base}?{}", kept.join("&")), taken) }
}

/// `%XX` escapes decoded; anything malformed is kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = bytes.get(at + 1..at + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[at], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                at += 3;
            }
            (byte, _) => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `key=value` pairs (values bare or single-quoted, with backslash escapes, as
/// libpq writes them) without the TLS pairs, and those pairs. Text this scanner
/// cannot follow is passed on whole, for the driver to report.
fn split_key_values(params: &str) -> (String, Vec<(String, String)>) {
    let chars: Vec<char> = params.chars().collect();
    let mut kept = String::new();
    let mut taken = Vec::new();
    let mut at = 0;
    while let Some((start, key, value, end)) = next_pair(&chars, at) {
        if is_tls_key(&key) {
            taken.push((key, value));
        } else {
            kept.extend(&chars[start..end]);
            kept.push(' ');
        }
        at = end;
    }
    if chars[at..].iter().any(|c| !c.is_whitespace()) {
        return (params.to_owned(), Vec::new());
    }
    (kept.trim_end().to_owned(), taken)
}

/// The next `key = value` from `at`: its start, key, unescaped value and end.
fn next_pair(chars: &[char], mut at: usize) -> Option<(usize, String, String, usize)> {
    let skip_space = |mut at: usize| {
        while chars.get(at).is_some_and(|c| c.is_whitespace()) {
            at += 1;
        }
        at
    };
    at = skip_space(at);
    let start = at;
    while chars.get(at).is_some_and(|&c| c != '=' && !c.is_whitespace()) {
        at += 1;
    }
    let key: String = chars[start..at].iter().collect();
    at = skip_space(at);
    if key.is_empty() || chars.get(at) != Some(&'=') {
        return None;
    }
    at = skip_space(at + 1);
    let quoted = chars.get(at) == Some(&'\'');
    if quoted {
        at += 1;
    }
    let mut value = String::new();
    loop {
        match (chars.get(at), quoted) {
            (None, true) => return None,
            (None, false) => break,
            (Some('\''), true) => {
                at += 1;
                break;
            }
            (Some(c), false) if c.is_whitespace() => break,
            (Some('\\'), _) => {
                value.push(*chars.get(at + 1)?);
                at += 2;
            }
            (Some(&c), _) => {
                value.push(c);
                at += 1;
            }
        }
    }
    Some((start, key, value, at))
}

#[cfg(test)]
#[allow(clippy::panic)] // a test fails by panicking
mod tests {
    use super::*;

    fn check(params: &str, expect: Result<(&str, SslMode, Option<&str>), &str>) {
        match (split(params), expect) {
            (Ok((rest, settings)), Ok((want_rest, mode, root))) => {
                assert_eq!(rest, want_rest, "{params}");
                assert_eq!(settings, TlsParams { mode, root_cert: root.map(PathBuf::from) }, "{params}");
            }
            (Err(message), Err(part)) => assert!(message.contains(part), "{params}: {message:?} should say {part:?}"),
            (got, want) => panic!("{params}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn tls_settings_are_taken_out_of_the_parameters() {
        check("postgres://u@h/db", Ok(("postgres://u@h/db", SslMode::Prefer, None)));
        check("postgres://u@h/db?sslmode=verify-full", Ok(("postgres://u@h/db", SslMode::VerifyFull, None)));
        check(
            "postgresql://u@h/db?connect_timeout=3&sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
            Ok(("postgresql://u@h/db?connect_timeout=3&application_name=x", SslMode::VerifyCa, Some("/etc/ca.pem"))),
        );
        check("host=h user=u sslmode=require dbname=d", Ok(("host=h user=u dbname=d", SslMode::Require, None)));
        check(
            "host=h sslrootcert = '/my certs/ca.pem' sslmode=disable",
            Ok(("host=h", SslMode::Disable, Some("/my certs/ca.pem"))),
        );
        check("host=h password='a b\\'c'", Ok(("host=h password='a b\\'c'", SslMode::Prefer, None)));
        // Text the scanner cannot follow goes to the driver whole, for it to report.
        check("host=h password='open", Ok(("host=h password='open", SslMode::Prefer, None)));
        check("postgres://u@h/db?sslmode=allow", Err("sslmode `allow` is not one of"));
        check("host=h sslmode=verify", Err("sslmode `verify` is not one of"));
    }

    #[test]
    fn tls_asked_for_needs_the_tls_feature() {
        for params in ["host=h sslmode=require", "postgres://h/d?sslmode=verify-full", "host=h sslmode=verify-ca"] {
            let outcome = prepare(params).map(|p| p.tls);
            if cfg!(feature = "tls") {
                assert!(matches!(outcome, Ok(ref tls) if tls.is_tls()), "{params}: {outcome:?}");
            } else {
                assert!(matches!(outcome, Err(ref m) if m.contains("`tls` cargo feature")), "{params}: {outcome:?}");
            }
        }
        assert!(matches!(prepare("host=h sslmode=disable").map(|p| p.tls), Ok(PgTls::Plain)));
        assert!(matches!(prepare("host=h").map(|p| p.tls.is_tls()), Ok(tls) if tls == cfg!(feature = "tls")));
    }
}
