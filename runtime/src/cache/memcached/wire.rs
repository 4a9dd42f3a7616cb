//! The meta protocol on the wire, without I/O: requests encoded into a buffer,
//! replies framed out of a buffer ([`ReadBuf`]) and interpreted against the op they
//! answer. The blocking and the tokio transports share it; they only move bytes.
//!
//! The command and return-code tokens come from the `memcache` crate's wire layer
//! ([`MetaOp`], [`ReturnCode`]).
//!
//! Leases: a lease get is `mg <key> v c f N<ttl>`. memcached answers a miss by
//! creating an empty placeholder and flagging the creator `W` (won) and later
//! getters `Z` (busy). An append onto the placeholder drops those flags, so every
//! value this backend stores carries client flag 1 (`F1`) and a placeholder keeps
//! flag 0: a lease get that finds flag 0 is still busy, exactly like the
//! in-process cache. An item written by another client with flag 0 therefore
//! reads as busy to lease getters (a miss the executor answers from the database).

use memdex_grammar::decimal::Digits;

use memcache::exp::{MetaOp, ReturnCode};

use crate::cache::{CacheOp, CacheReply};

/// Client flag on every value this backend stores; lease placeholders keep 0.
const FILLED_FLAG: &[u8] = b"F1";

/// Read buffer per connection: large enough that a 100-key multi-get of small
/// values is one or two `read` calls.
const READ_BUFFER: usize = 64 * 1024;

/// Room kept free at the end of the read buffer before a read; less, and the unread
/// bytes move to the front first.
const MIN_SPARE: usize = 4 * 1024;

/// A reply header is a few dozen bytes; anything longer is not memcached talking.
const MAX_LINE: usize = 4096;

/// The largest value a reply may announce (memcached's own ceiling for `-I`).
const MAX_VALUE: usize = 1 << 30;

/// Appends the meta command for one op. Keys were checked (no whitespace or
/// control bytes, at most 250 bytes) before routing, so they go on the wire as is.
pub(crate) fn encode(op: &CacheOp<'_>, out: &mut Vec<u8>) {
    let mut head = |command: MetaOp, key: &str| {
        out.extend_from_slice(command.wire());
        out.push(b' ');
        out.extend_from_slice(key.as_bytes());
    };
    match *op {
        CacheOp::Get { key, lease } => {
            head(MetaOp::Get, key);
            out.extend_from_slice(b" v c f");
            if let Some(ttl) = lease {
                out.extend_from_slice(b" N");
                push_decimal(out, u64::from(ttl));
            }
        }
        CacheOp::GetCas { key } => {
            head(MetaOp::Get, key);
            out.extend_from_slice(b" c");
        }
        CacheOp::Set { key, value, ttl } => {
            store_head(out, key, value, ttl);
            return data_block(out, value);
        }
        CacheOp::Cas { key, value, ttl, cas } => {
            store_head(out, key, value, ttl);
            out.extend_from_slice(b" C");
            push_decimal(out, cas);
            return data_block(out, value);
        }
        // Append mode without `N` never creates the item.
        CacheOp::Append { key, value } => {
            head(MetaOp::Set, key);
            out.push(b' ');
            push_decimal(out, value.len() as u64);
            out.extend_from_slice(b" MA");
            return data_block(out, value);
        }
        CacheOp::Delete { key } => head(MetaOp::Delete, key),
    }
    out.extend_from_slice(b"\r\n");
}

/// `ms <key> <length> T<ttl> F1`, without the line end.
fn store_head(out: &mut Vec<u8>, key: &str, value: &[u8], ttl: u32) {
    out.extend_from_slice(MetaOp::Set.wire());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b' ');
    push_decimal(out, value.len() as u64);
    out.extend_from_slice(b" T");
    push_decimal(out, u64::from(ttl));
    out.push(b' ');
    out.extend_from_slice(FILLED_FLAG);
}

/// Ends a store's request line and appends its data block.
fn data_block(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal without going through `fmt`.
fn push_decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(Digits::new(n).as_bytes());
}

/// Whether an unanswered op may have changed the server's state.
pub(crate) fn mutates(op: &CacheOp<'_>) -> bool {
    !matches!(op, CacheOp::Get { lease: None, .. } | CacheOp::GetCas { .. })
}

/// A parsed reply, or why it does not answer `op`.
pub(crate) fn interpret(op: &CacheOp<'_>, reply: Reply) -> Result<CacheReply, String> {
    let (header, value) = match reply {
        Reply::Meta(header, value) => (header, value),
        Reply::ServerError(message) => {
            // memcached swallows the data block of a store it cannot hold
            // ("object too large for cache", "out of memory storing object") and
            // stays in step, so only a store may answer this way.
            return match op {
                CacheOp::Set { .. } | CacheOp::Cas { .. } | CacheOp::Append { .. } => Ok(CacheReply::NotStored),
                _ => Err(format!("SERVER_ERROR {message}")),
            };
        }
    };
    let number = |name: char, flag: Flag| -> Result<Option<u64>, String> {
        match flag {
            Flag::Absent => Ok(None),
            Flag::Number(n) => Ok(Some(n)),
            Flag::Malformed => Err(format!("malformed {name} flag in reply to {op:?}")),
        }
    };
    let cas = || number('c', header.cas)?.ok_or_else(|| format!("reply to {op:?} lacks its CAS"));
    match (op, header.rc) {
        (CacheOp::Get { lease, .. }, ReturnCode::Va) => {
            let cas = cas()?;
            let value = value.unwrap_or_default();
            if lease.is_none() {
                return Ok(CacheReply::Hit { value, cas });
            }
            if header.won {
                Ok(CacheReply::LeaseWon { cas })
            } else if header.busy || number('f', header.client_flags)?.unwrap_or(0) == 0 {
                Ok(CacheReply::LeaseBusy)
            } else {
                Ok(CacheReply::Hit { value, cas })
            }
        }
        // With `N` a miss creates a placeholder; `EN` means it could not (memory
        // pressure), so nobody holds the lease and the caller must not fill.
        (CacheOp::Get { lease: Some(_), .. }, ReturnCode::En) => Ok(CacheReply::LeaseBusy),
        (CacheOp::Get { lease: None, .. } | CacheOp::GetCas { .. }, ReturnCode::En) => Ok(CacheReply::Miss),
        (CacheOp::GetCas { .. }, ReturnCode::Hd) => Ok(CacheReply::Present { cas: cas()? }),
        (CacheOp::Set { .. } | CacheOp::Cas { .. } | CacheOp::Append { .. }, ReturnCode::Hd) => Ok(CacheReply::Stored),
        (CacheOp::Set { .. } | CacheOp::Append { .. }, ReturnCode::Ns) => Ok(CacheReply::NotStored),
        (CacheOp::Cas { .. }, ReturnCode::Ex) => Ok(CacheReply::Exists),
        (CacheOp::Cas { .. }, ReturnCode::Nf) => Ok(CacheReply::NotFound),
        (CacheOp::Cas { .. }, ReturnCode::Ns) => Ok(CacheReply::NotStored),
        (CacheOp::Delete { .. }, ReturnCode::Hd) => Ok(CacheReply::Deleted),
        (CacheOp::Delete { .. }, ReturnCode::Nf) => Ok(CacheReply::NotFound),
        (_, rc) => Err(format!("unexpected reply {rc:?} to {op:?}")),
    }
}

/// A numeric reply flag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Flag {
    #[default]
    Absent,
    Number(u64),
    Malformed,
}

impl Flag {
    fn parse(digits: &[u8]) -> Flag {
        parse_decimal(digits).map_or(Flag::Malformed, Flag::Number)
    }
}

/// The parts of a meta reply header the client reads.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) rc: ReturnCode,
    /// The data length of a `VA` reply.
    length: Option<usize>,
    /// `c`: the CAS token.
    cas: Flag,
    /// `f`: the client flags.
    client_flags: Flag,
    /// `W`: this getter won the lease.
    won: bool,
    /// `Z`: another getter holds the lease.
    busy: bool,
}

impl Header {
    /// Parses a header line (without its CRLF) in place.
    fn parse(line: &[u8]) -> Result<Header, String> {
        let mut tokens = line.split(|&byte| byte == b' ').filter(|token| !token.is_empty());
        let garbage = || format!("unreadable reply {:?}", String::from_utf8_lossy(line));
        let rc = tokens.next().and_then(|token| ReturnCode::from_wire(token).ok()).ok_or_else(garbage)?;
        let mut header =
            Header { rc, length: None, cas: Flag::Absent, client_flags: Flag::Absent, won: false, busy: false };
        if rc == ReturnCode::Va {
            let length = tokens
                .next()
                .and_then(parse_decimal)
                .and_then(|length| usize::try_from(length).ok())
                .filter(|&length| length <= MAX_VALUE)
                .ok_or_else(|| format!("VA reply without a valid data length: {:?}", String::from_utf8_lossy(line)))?;
            header.length = Some(length);
        }
        for token in tokens {
            match token.split_first() {
                Some((b'c', digits)) => header.cas = Flag::parse(digits),
                Some((b'f', digits)) => header.client_flags = Flag::parse(digits),
                Some((b'W', _)) => header.won = true,
                Some((b'Z', _)) => header.busy = true,
                _ => {}
            }
        }
        Ok(header)
    }
}

/// Decimal digits as a `u64`; `None` for anything else (empty, signs, overflow).
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &digit| {
        if digit.is_ascii_digit() { n.checked_mul(10)?.checked_add(u64::from(digit - b'0')) } else { None }
    })
}

/// One framed reply off the wire.
pub(crate) enum Reply {
    Meta(Header, Option<Vec<u8>>),
    /// A `SERVER_ERROR` line, after which the stream is still in step.
    ServerError(String),
}

/// Received bytes of one connection: `buf[start..end]` are not consumed yet.
#[derive(Debug)]
pub(crate) struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes from `start` the reply being framed needs in all (a value larger than
    /// the buffer grows it).
    need: usize,
}

impl Default for ReadBuf {
    fn default() -> Self {
        ReadBuf { buf: vec![0; READ_BUFFER], start: 0, end: 0, need: 0 }
    }
}

impl ReadBuf {
    /// Whether every received byte was consumed (a connection in step between
    /// exchanges has nothing left over).
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Room to read into: unread bytes move to the front when the tail is short,
    /// and the buffer grows to hold a value larger than itself.
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let wanted = self.need.max(MIN_SPARE);
        if self.buf.len() - self.end < wanted.min(MIN_SPARE) || self.start + self.need > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.need > self.buf.len() {
            self.buf.resize(self.need.next_power_of_two(), 0);
        }
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes read into [`ReadBuf::spare`] as received.
    pub(crate) fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// The next complete reply, consumed; `None` until enough bytes arrived. An
    /// error means the stream is not a meta reply: the connection is out of step.
    pub(crate) fn next_reply(&mut self) -> Result<Option<Reply>, String> {
        let pending = &self.buf[self.start..self.end];
        let Some(newline) = pending.iter().position(|&byte| byte == b'\n') else {
            if pending.len() > MAX_LINE {
                return Err(format!("reply line longer than {MAX_LINE} bytes"));
            }
            self.need = 0;
            return Ok(None);
        };
        if newline == 0 || pending[newline - 1] != b'\r' {
            return Err("reply line not terminated by CRLF".to_owned());
        }
        let line = &pending[..newline - 1];
        if let Some(message) = line.strip_prefix(b"SERVER_ERROR") {
            let reply = Reply::ServerError(String::from_utf8_lossy(message).trim().to_owned());
            self.start += newline + 1;
            return Ok(Some(reply));
        }
        let header = Header::parse(line)?;
        let Some(length) = header.length else {
            self.start += newline + 1;
            self.need = 0;
            return Ok(Some(Reply::Meta(header, None)));
        };
        let total = newline + 1 + length + 2;
        if pending.len() < total {
            self.need = total;
            return Ok(None);
        }
        let data = &pending[newline + 1..total];
        if &data[length..] != b"\r\n" {
            return Err("data block not terminated by CRLF".to_owned());
        }
        let value = data[..length].to_vec();
        self.start += total;
        self.need = 0;
        Ok(Some(Reply::Meta(header, Some(value))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(op: CacheOp<'_>) -> String {
        let mut out = Vec::new();
        encode(&op, &mut out);
        String::from_utf8(out).expect("requests are ASCII around ASCII values")
    }

    #[test]
    fn requests_are_spelled_as_the_meta_protocol_wants() {
        let check = |op: CacheOp<'_>, expect: &str| assert_eq!(encoded(op), expect, "{op:?}");
        check(CacheOp::Get { key: "a:b=1", lease: None }, "mg a:b=1 v c f\r\n");
        check(CacheOp::Get { key: "k", lease: Some(30) }, "mg k v c f N30\r\n");
        check(CacheOp::GetCas { key: "k" }, "mg k c\r\n");
        check(CacheOp::Set { key: "k", value: b"xy", ttl: 0 }, "ms k 2 T0 F1\r\nxy\r\n");
        check(
            CacheOp::Cas { key: "k", value: b"", ttl: 600, cas: u64::MAX },
            "ms k 0 T600 F1 C18446744073709551615\r\n\r\n",
        );
        check(CacheOp::Append { key: "k", value: b"12," }, "ms k 3 MA\r\n12,\r\n");
        check(CacheOp::Delete { key: "k" }, "md k\r\n");
    }

    #[test]
    fn reply_headers_are_parsed_in_place() {
        let header = Header::parse(b"VA 185 c203 f1").expect("a VA header");
        assert_eq!(
            header,
            Header {
                rc: ReturnCode::Va,
                length: Some(185),
                cas: Flag::Number(203),
                client_flags: Flag::Number(1),
                won: false,
                busy: false
            }
        );
        let lease = Header::parse(b"VA 0 c9 f0 W").expect("a lease header");
        assert!(lease.won && !lease.busy && lease.length == Some(0));
        assert!(Header::parse(b"VA 0 c9 f0 Z").expect("a busy header").busy);
        assert_eq!(Header::parse(b"HD c18446744073709551615").map(|h| h.cas), Ok(Flag::Number(u64::MAX)));
        assert_eq!(Header::parse(b"HD c18446744073709551616").map(|h| h.cas), Ok(Flag::Malformed));
        assert_eq!(Header::parse(b"HD c-1").map(|h| h.cas), Ok(Flag::Malformed));
        assert_eq!(Header::parse(b"EN").map(|h| (h.rc, h.cas)), Ok((ReturnCode::En, Flag::Absent)));
        for garbage in [&b""[..], b"HELLO", b"VA", b"VA banana", b"VA -1", b"VA 1073741825", b"CLIENT_ERROR bad"] {
            assert!(Header::parse(garbage).is_err(), "{:?}", String::from_utf8_lossy(garbage));
        }
    }

    #[test]
    fn decimals_round_trip() {
        for n in [0, 7, 10, 99, 1_000_000, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
            assert_eq!(parse_decimal(&out), Some(n));
        }
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"+1"), None);
    }

    #[test]
    fn replies_are_framed_across_reads_and_values_larger_than_the_buffer() {
        let big = vec![b'x'; READ_BUFFER * 3];
        let mut wire = b"HD c7\r\nVA 3 c9 f1\r\nabc\r\nEN\r\n".to_vec();
        wire.extend_from_slice(format!("VA {} c1 f1\r\n", big.len()).as_bytes());
        wire.extend_from_slice(&big);
        wire.extend_from_slice(b"\r\nMN\r\n");
        let mut buf = ReadBuf::default();
        let mut replies = Vec::new();
        // Seven bytes at a time: every boundary falls somewhere awkward.
        for chunk in wire.chunks(7) {
            let spare = buf.spare();
            spare[..chunk.len()].copy_from_slice(chunk);
            buf.filled(chunk.len());
            while let Some(reply) = buf.next_reply().expect("valid replies") {
                replies.push(reply);
            }
        }
        assert!(buf.is_empty());
        let shapes: Vec<(ReturnCode, Option<usize>)> = replies
            .iter()
            .map(|r| match r {
                Reply::Meta(h, v) => (h.rc, v.as_ref().map(Vec::len)),
                Reply::ServerError(_) => (ReturnCode::Me, None),
            })
            .collect();
        assert_eq!(
            shapes,
            vec![
                (ReturnCode::Hd, None),
                (ReturnCode::Va, Some(3)),
                (ReturnCode::En, None),
                (ReturnCode::Va, Some(big.len())),
                (ReturnCode::Mn, None)
            ]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_wait() {
        for garbage in [&b"HELLO\r\n"[..], b"VA 3 c1\r\nabcdef", b"HD\n", b"VA -1\r\n"] {
            let mut buf = ReadBuf::default();
            buf.spare()[..garbage.len()].copy_from_slice(garbage);
            buf.filled(garbage.len());
            assert!(buf.next_reply().is_err(), "{:?}", String::from_utf8_lossy(garbage));
        }
        let mut buf = ReadBuf::default();
        let long = vec![b'a'; MAX_LINE + 10];
        buf.spare()[..long.len()].copy_from_slice(&long);
        buf.filled(long.len());
        assert!(buf.next_reply().is_err(), "an endless line");
    }
}
