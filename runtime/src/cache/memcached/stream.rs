//! What the transports read and write: a server's address and whether it is
//! dialled over TLS ([`Endpoint`]), and the byte streams that result, plain TCP or
//! rustls over TCP, for the blocking ([`Stream`]) and the tokio ([`AsyncStream`])
//! transport.
//!
//! TLS (feature `tls`) is asked for per server, by writing it `tls://host:port`, or
//! for every server by giving the configuration a [`MemcachedTls`]
//! (`CacheConfig::tls`, `StoreBuilder::memcached_tls`). The certificate is always
//! verified, chain and name: against the CA file of the `MemcachedTls` (else the
//! Mozilla roots), and the name its `server_name` gives (else the host the server is
//! written with). The handshake is part of dialling: it must end within
//! `connect_timeout`, and a server whose handshake fails or hangs is unreachable
//! like one that refuses the connection (marked down, probed).
//!
//! Without the feature a plain connection is all there is: the stream enums have
//! a single variant, and nothing on the hot path changes.

use std::io::{self, Read, Write};
use std::net::TcpStream;
#[cfg(feature = "tls")]
use std::path::PathBuf;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;

use super::resolve;

/// The scheme that asks for TLS in a server entry.
pub(crate) const TLS_SCHEME: &str = "tls://";

/// TLS settings for memcached (feature `tls`): every server of a configuration
/// that carries them is dialled over TLS.
///
/// ```
/// use memdex::cache::memcached::MemcachedTls;
/// let tls = MemcachedTls::new().ca_file("/etc/memcached/ca.pem").server_name("cache.internal");
/// assert_eq!(tls.server_name.as_deref(), Some("cache.internal"));
/// ```
#[cfg(feature = "tls")]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemcachedTls {
    /// A PEM file of the certificates to trust (your own CA); `None` trusts the
    /// Mozilla roots (`webpki-roots`).
    pub ca_file: Option<PathBuf>,
    /// The name the servers' certificates must carry; `None` checks each server's
    /// certificate against the host it is written with.
    pub server_name: Option<String>,
}

#[cfg(feature = "tls")]
impl MemcachedTls {
    /// TLS with the Mozilla roots, each server's host as its name.
    pub fn new() -> MemcachedTls {
        MemcachedTls::default()
    }

    /// Trusts the certificates in this PEM file instead of the Mozilla roots.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> MemcachedTls {
        self.ca_file = Some(path.into());
        self
    }

    /// Checks every server's certificate against this name.
    pub fn server_name(mut self, name: impl Into<String>) -> MemcachedTls {
        self.server_name = Some(name.into());
        self
    }
}

/// Where a server is dialled, and how.
#[derive(Debug)]
pub(super) struct Endpoint {
    /// `host:port`, without any scheme.
    pub(super) address: String,
    #[cfg(feature = "tls")]
    tls: Option<TlsTarget>,
}

/// The client configuration and the name a server's certificate must carry.
#[cfg(feature = "tls")]
#[derive(Debug)]
struct TlsTarget {
    config: Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
}

/// The TLS client configuration for a server list, built once (`None` when no
/// server is to be dialled over TLS; nothing at all without the feature).
#[derive(Debug)]
pub(super) struct TlsSetup {
    #[cfg(feature = "tls")]
    config: Option<Arc<rustls::ClientConfig>>,
}

/// The TLS configuration the entries and `config` ask for; the error in words.
pub(super) fn tls_setup(entries: &[&str], config: &super::CacheConfig) -> Result<TlsSetup, String> {
    let wanted = entries.iter().any(|entry| entry.starts_with(TLS_SCHEME));
    #[cfg(feature = "tls")]
    {
        let ca_file = config.tls.as_ref().and_then(|tls| tls.ca_file.as_deref());
        if !wanted && config.tls.is_none() {
            return Ok(TlsSetup { config: None });
        }
        let config = crate::tls::client_config(crate::tls::Verify::Full, ca_file)?;
        Ok(TlsSetup { config: Some(config) })
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = config;
        if wanted {
            return Err("TLS support is not compiled in: enable memdex's `tls` cargo feature".to_owned());
        }
        Ok(TlsSetup {})
    }
}

impl Endpoint {
    /// The endpoint of one server entry (`host:port` or `tls://host:port`).
    #[cfg_attr(not(feature = "tls"), allow(clippy::unnecessary_wraps))]
    pub(super) fn new(entry: &str, setup: &TlsSetup, config: &super::CacheConfig) -> Result<Endpoint, String> {
        let address = entry.strip_prefix(TLS_SCHEME).unwrap_or(entry).to_owned();
        #[cfg(feature = "tls")]
        {
            let tls = match &setup.config {
                Some(tls_config) => Some(TlsTarget {
                    config: tls_config.clone(),
                    name: server_name(&address, config.tls.as_ref().and_then(|tls| tls.server_name.as_deref()))?,
                }),
                None => None,
            };
            Ok(Endpoint { address, tls })
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = (setup, config);
            Ok(Endpoint { address })
        }
    }

    /// A connected stream, the TLS handshake (if any) done, all within `timeout`.
    pub(super) fn dial(&self, timeout: Duration) -> io::Result<Stream> {
        let mut last_error = io::Error::new(io::ErrorKind::NotFound, "address resolves to nothing");
        for address in resolve(&self.address)? {
            match TcpStream::connect_timeout(&address, timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    return self.secure(stream, timeout);
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    #[cfg(not(feature = "tls"))]
    #[allow(clippy::unnecessary_wraps)]
    fn secure(&self, stream: TcpStream, _timeout: Duration) -> io::Result<Stream> {
        Ok(Stream::Plain(stream))
    }

    /// The handshake, bounded by `timeout` in all (each socket wait by what is left).
    #[cfg(feature = "tls")]
    fn secure(&self, mut stream: TcpStream, timeout: Duration) -> io::Result<Stream> {
        let Some(target) = &self.tls else { return Ok(Stream::Plain(stream)) };
        let mut tls =
            rustls::ClientConnection::new(target.config.clone(), target.name.clone()).map_err(io::Error::other)?;
        let deadline = std::time::Instant::now() + timeout;
        while tls.is_handshaking() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"));
            }
            stream.set_read_timeout(Some(left))?;
            stream.set_write_timeout(Some(left))?;
            tls.complete_io(&mut stream).map_err(super::blocking::timeout_kind)?;
        }
        // The exchanges arm their own timeouts.
        stream.set_read_timeout(None)?;
        stream.set_write_timeout(None)?;
        Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(tls, stream))))
    }

    /// The async twin of [`Endpoint::dial`]: connect and handshake within `timeout`.
    #[cfg(feature = "tokio")]
    pub(super) async fn dial_async(&self, timeout: Duration) -> io::Result<AsyncStream> {
        let dial = async {
            let stream = tokio::net::TcpStream::connect(&self.address).await?;
            stream.set_nodelay(true)?;
            self.secure_async(stream).await
        };
        match tokio::time::timeout(timeout, dial).await {
            Ok(stream) => stream,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    #[cfg(feature = "tokio")]
    async fn secure_async(&self, stream: tokio::net::TcpStream) -> io::Result<AsyncStream> {
        #[cfg(feature = "tls")]
        if let Some(target) = &self.tls {
            let connector = tokio_rustls::TlsConnector::from(target.config.clone());
            let tls = connector.connect(target.name.clone(), stream).await?;
            return Ok(AsyncStream::Tls(Box::new(tls)));
        }
        Ok(AsyncStream::Plain(stream))
    }
}

/// The name `address`'s certificate must carry: `name` if given, else its host.
#[cfg(feature = "tls")]
fn server_name(address: &str, name: Option<&str>) -> Result<rustls::pki_types::ServerName<'static>, String> {
    let host = match name {
        Some(name) => name,
        None => address.rsplit_once(':').map_or(address, |(host, _)| host),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("`{host}` cannot be checked against a TLS certificate: {e}"))
}

/// A blocking connection's bytes: plain TCP, or TLS over it.
#[derive(Debug)]
pub(super) enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    /// The socket, for its timeouts and blocking mode.
    pub(super) fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(stream) => stream,
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => &tls.sock,
        }
    }

    /// Nothing arrived while idle: no EOF, no stray bytes. One non-blocking look.
    pub(super) fn is_quiet(&mut self) -> bool {
        match self {
            Stream::Plain(stream) => plain_is_quiet(stream),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => {
                // rustls reads what arrived itself, so the socket is switched to
                // non-blocking around that read.
                if tls.sock.set_nonblocking(true).is_err() {
                    return false;
                }
                let quiet = tls_is_quiet(tls);
                tls.sock.set_nonblocking(false).is_ok() && quiet
            }
        }
    }
}

/// A peek that does not wait (`MSG_PEEK | MSG_DONTWAIT`) finds nothing to read:
/// one system call on a connection that stays blocking. This check runs before
/// every batch; the portable form below (non-blocking on, peek, non-blocking off)
/// costs three calls, measured at ~1 µs each on the benchmark machines, so a
/// two-round-trip fetch saves four.
#[cfg(unix)]
fn plain_is_quiet(stream: &TcpStream) -> bool {
    peek_finds_nothing(socket2::SockRef::from(stream))
}

/// The peek of [`plain_is_quiet`], for either transport's socket.
#[cfg(unix)]
fn peek_finds_nothing(socket: socket2::SockRef<'_>) -> bool {
    let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    let peeked = socket.recv_with_flags(&mut probe, libc::MSG_PEEK | libc::MSG_DONTWAIT);
    matches!(peeked, Err(error) if error.kind() == io::ErrorKind::WouldBlock)
}

#[cfg(not(unix))]
fn plain_is_quiet(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut probe = [0u8; 1];
    let quiet = matches!(stream.peek(&mut probe), Err(error) if error.kind() == io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).is_ok() && quiet
}

/// Takes in the records that arrived while idle (TLS 1.3 servers send session
/// tickets after the handshake): quiet when none of them is data or a close.
#[cfg(feature = "tls")]
fn tls_is_quiet(tls: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>) -> bool {
    loop {
        match tls.conn.read_tls(&mut tls.sock) {
            Ok(0) => return false,
            Ok(_) => match tls.conn.process_new_packets() {
                Ok(state) if state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed() => {}
                _ => return false,
            },
            Err(error) => return error.kind() == io::ErrorKind::WouldBlock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(stream) => stream.read(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(stream) => stream.write(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    /// A no-op on plain TCP; sends the records rustls still holds.
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(stream) => stream.flush(),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// A tokio connection's bytes: plain TCP, or TLS over it.
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub(super) enum AsyncStream {
    Plain(tokio::net::TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

#[cfg(feature = "tokio")]
impl AsyncStream {
    /// Nothing arrived while idle: no EOF, no stray bytes. Never waits. A plain
    /// socket is asked itself, not through tokio's readiness: that is only set
    /// when the runtime next polls for events, which a busy task may not let it do
    /// between two batches (and [`AsyncStream::read_now`] reads past it), so a
    /// close could still look quiet there.
    pub(super) fn is_quiet(&mut self) -> bool {
        match self {
            #[cfg(unix)]
            AsyncStream::Plain(stream) => peek_finds_nothing(socket2::SockRef::from(&*stream)),
            #[cfg(not(unix))]
            AsyncStream::Plain(stream) => {
                matches!(stream.try_read(&mut [0u8; 1]), Err(error) if error.kind() == io::ErrorKind::WouldBlock)
            }
            // One poll takes in what arrived (session tickets) and must find no data.
            #[cfg(feature = "tls")]
            AsyncStream::Tls(tls) => {
                use futures_util::FutureExt;
                use tokio::io::AsyncReadExt;
                tls.read(&mut [0u8; 1]).now_or_never().is_none()
            }
        }
    }

    /// What a plain connection has to read right now, by one `recv` that does not
    /// wait, asked of the socket itself rather than through tokio's readiness: `None`
    /// when nothing is there yet (or on TLS). After a request is sent the reply is
    /// often already there — on one core the server runs as soon as the request
    /// wakes it — and tokio, whose readiness was cleared by the last read that
    /// found nothing, would park the task on `epoll_wait` first. A read past its
    /// readiness leaves tokio consistent: readiness is only a hint, and one that
    /// is stale costs a read that finds nothing.
    pub(super) fn read_now(&mut self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        match self {
            #[cfg(unix)]
            AsyncStream::Plain(stream) => match (&*socket2::SockRef::from(&*stream)).read(buf) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => None,
                read => Some(read),
            },
            #[cfg(not(unix))]
            AsyncStream::Plain(_) => None,
            #[cfg(feature = "tls")]
            AsyncStream::Tls(_) => None,
        }
    }

    /// Sends what a TLS stream still buffers, by `deadline`; nothing to do (not
    /// even a timer) on plain TCP.
    #[cfg_attr(not(feature = "tls"), allow(clippy::unused_async))]
    pub(super) async fn flush_records(&mut self, deadline: tokio::time::Instant) -> io::Result<()> {
        match self {
            AsyncStream::Plain(_) => {
                let _ = deadline;
                Ok(())
            }
            #[cfg(feature = "tls")]
            AsyncStream::Tls(tls) => {
                match tokio::time::timeout_at(deadline, tokio::io::AsyncWriteExt::flush(tls)).await {
                    Ok(flushed) => flushed,
                    Err(_) => Err(io::ErrorKind::TimedOut.into()),
                }
            }
        }
    }
}

#[cfg(feature = "tokio")]
impl tokio::io::AsyncRead for AsyncStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            AsyncStream::Plain(stream) => std::pin::Pin::new(stream).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            AsyncStream::Tls(tls) => std::pin::Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

#[cfg(feature = "tokio")]
impl tokio::io::AsyncWrite for AsyncStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            AsyncStream::Plain(stream) => std::pin::Pin::new(stream).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            AsyncStream::Tls(tls) => std::pin::Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            AsyncStream::Plain(stream) => std::pin::Pin::new(stream).poll_flush(cx),
            #[cfg(feature = "tls")]
            AsyncStream::Tls(tls) => std::pin::Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            AsyncStream::Plain(stream) => std::pin::Pin::new(stream).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            AsyncStream::Tls(tls) => std::pin::Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_entries_need_the_tls_feature() {
        let config = super::super::CacheConfig::default();
        let outcome = tls_setup(&["127.0.0.1:11211", "tls://127.0.0.1:11212"], &config);
        if cfg!(feature = "tls") {
            assert!(outcome.is_ok(), "{outcome:?}");
        } else {
            assert!(matches!(outcome, Err(ref why) if why.contains("`tls` cargo feature")), "{outcome:?}");
        }
        // Plain entries never need it.
        assert!(tls_setup(&["127.0.0.1:11211"], &config).is_ok());
    }

    /// A connected pair on loopback: the client end, the server end.
    fn pair() -> (TcpStream, TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let client = TcpStream::connect(listener.local_addr().expect("its address")).expect("connects");
        let (server, _) = listener.accept().expect("accepts");
        (client, server)
    }

    #[test]
    fn a_quiet_look_finds_stray_bytes_and_a_close_and_leaves_the_socket_blocking() {
        let plain = |(client, server): (TcpStream, TcpStream)| (Stream::Plain(client), server);
        let (mut idle, _server) = plain(pair());
        assert!(idle.is_quiet(), "an idle open connection is quiet");
        // Still blocking: a read waits for its timeout instead of failing at once
        // (half of it is asked: the kernel counts the timeout in clock ticks, and
        // the first may be partly gone; a non-blocking read returns within µs).
        let wait = Duration::from_millis(50);
        idle.tcp().set_read_timeout(Some(wait)).expect("sets the timeout");
        let started = std::time::Instant::now();
        let read = idle.read(&mut [0u8; 1]);
        assert!(read.is_err() && started.elapsed() >= wait / 2, "{read:?} after {:?}", started.elapsed());

        let (mut stray, mut server) = plain(pair());
        server.write_all(b"X").expect("writes");
        server.flush().expect("flushes");
        std::thread::sleep(Duration::from_millis(20));
        assert!(!stray.is_quiet(), "bytes nobody asked for");
        // A look takes nothing: the byte is still there to read.
        let mut byte = [0u8; 1];
        assert_eq!(stray.read(&mut byte).expect("reads"), 1);
        assert_eq!(&byte, b"X");

        let (mut closed, server) = plain(pair());
        drop(server);
        std::thread::sleep(Duration::from_millis(20));
        assert!(!closed.is_quiet(), "the server closed it");
    }

    /// Runs `test` on a current-thread runtime with a tokio client end of a pair,
    /// and the server end.
    #[cfg(all(unix, feature = "tokio"))]
    fn on_tokio<F: std::future::Future<Output = ()>>(test: impl FnOnce(AsyncStream, TcpStream) -> F) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async {
            let (client, server) = pair();
            client.set_nonblocking(true).expect("non-blocking");
            test(AsyncStream::Plain(tokio::net::TcpStream::from_std(client).expect("registers")), server).await;
        });
    }

    /// `read_now` reads what is there without waiting and leaves tokio able to
    /// wait for what comes later.
    #[cfg(all(unix, feature = "tokio"))]
    #[test]
    fn a_read_now_takes_what_is_there_and_tokio_still_waits_for_the_rest() {
        use tokio::io::AsyncReadExt;
        on_tokio(|mut stream, mut server| async move {
            let mut buf = [0u8; 16];
            assert!(stream.read_now(&mut buf).is_none(), "nothing sent yet");

            server.write_all(b"abc").expect("writes");
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(stream.read_now(&mut buf).expect("bytes are there").expect("reads"), 3);
            assert_eq!(&buf[..3], b"abc");
            assert!(stream.read_now(&mut buf).is_none(), "all taken");

            // Bytes that come later wake a tokio read, readiness undisturbed.
            let writer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                server.write_all(b"de").expect("writes");
                server
            });
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
            assert_eq!(read.expect("woken in time").expect("reads"), 2);
            assert_eq!(&buf[..2], b"de");

            drop(writer.join().expect("the writer"));
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(stream.read_now(&mut buf).expect("a close is there").expect("reads"), 0, "EOF");
        });
    }

    /// The reuse check of a tokio connection sees a close the runtime has not
    /// polled for yet: the task never yields between the bytes read with
    /// `read_now` and the check.
    #[cfg(all(unix, feature = "tokio"))]
    #[test]
    fn a_tokio_connection_closed_while_the_runtime_never_polled_is_not_quiet() {
        on_tokio(|mut stream, mut server| async move {
            assert!(stream.is_quiet(), "open and idle");
            server.write_all(b"reply").expect("writes");
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(stream.read_now(&mut [0u8; 16]).expect("there").expect("reads"), 5);
            assert!(stream.is_quiet(), "everything was read");
            drop(server);
            std::thread::sleep(Duration::from_millis(20));
            assert!(!stream.is_quiet(), "the server closed it");
        });
    }
}
