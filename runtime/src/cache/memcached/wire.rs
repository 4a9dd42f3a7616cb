//! The memcached protocol on the wire, without I/O: a server's part of a batch
//! encoded into a buffer and its replies framed out of one ([`ReadBuf`]) and
//! interpreted against the ops they answer ([`PartExchange`]). The blocking and the
//! tokio transports share it; they only move bytes.
//!
//! Every op is a meta command, except runs of plain gets, which go as one classic
//! `gets k1 … kn` (its `VALUE` blocks name their keys, in the order asked, and `END`
//! closes it; a key without a block missed).
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

use bytes::{Buf, Bytes, BytesMut};
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
    Meta(Header, Option<Bytes>),
    /// A `SERVER_ERROR` line, after which the stream is still in step.
    ServerError(String),
}

/// Received bytes of one connection: `buf[..end]` are not consumed yet, and
/// `buf[end..]` is room to read into (zeroed when it was added: reading wants
/// initialised bytes).
///
/// A value is split off the front of the buffer rather than copied out of it: its
/// reply shares the buffer's allocation until the caller drops it, and the buffer
/// takes that allocation back, once no reply uses it, when it next needs room. The
/// copy per value (an allocation, the bytes, a free) was ~10 % of a near-cache-off
/// fetch's instructions under callgrind and ~3 µs of the client's ~92 µs of CPU
/// per fetch (three alternating pinned `bench --cpu-split 10000` pairs); zeroing
/// the room added (64 KiB per 64 KiB read) costs less.
#[derive(Debug)]
pub(crate) struct ReadBuf {
    buf: BytesMut,
    end: usize,
    /// Bytes the reply being framed needs in all (a value larger than the buffer
    /// grows it).
    need: usize,
}

impl Default for ReadBuf {
    fn default() -> Self {
        ReadBuf { buf: BytesMut::zeroed(READ_BUFFER), end: 0, need: 0 }
    }
}

impl ReadBuf {
    /// Whether every received byte was consumed (a connection in step between
    /// exchanges has nothing left over).
    pub(crate) fn is_empty(&self) -> bool {
        self.end == 0
    }

    /// Room to read into, at least [`MIN_SPARE`] bytes and whatever the reply being
    /// framed still needs: the buffer grows by a whole [`READ_BUFFER`] (or the
    /// reply's size) when it has less.
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        let wanted = self.need.saturating_sub(self.end).max(MIN_SPARE);
        if self.buf.len() - self.end < wanted {
            self.buf.resize(self.end + wanted.max(READ_BUFFER), 0);
        }
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes read into [`ReadBuf::spare`] as received.
    pub(crate) fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Consumes the first `n` received bytes, which hold a value: they are split
    /// off, sharing the allocation.
    fn take(&mut self, n: usize) -> BytesMut {
        self.end -= n;
        self.need = 0;
        self.buf.split_to(n)
    }

    /// Consumes the first `n` received bytes, which hold no value.
    fn skip(&mut self, n: usize) {
        self.end -= n;
        self.need = 0;
        self.buf.advance(n);
    }

    /// The next complete meta reply, consumed; `None` until enough bytes arrived.
    /// An error means the stream is not a meta reply: the connection is out of step.
    pub(crate) fn next_reply(&mut self) -> Result<Option<Reply>, String> {
        let framed = self.next_frame(|line| {
            if let Some(message) = line.strip_prefix(b"SERVER_ERROR") {
                return Ok((Err(String::from_utf8_lossy(message).trim().to_owned()), None));
            }
            let header = Header::parse(line)?;
            let length = header.length;
            Ok((Ok(header), length))
        })?;
        Ok(framed.map(|(line, value)| match line {
            Ok(header) => Reply::Meta(header, value),
            Err(message) => Reply::ServerError(message),
        }))
    }

    /// The next complete frame of a classic `gets` reply: a `VALUE` of the key
    /// `position_of` places among the keys asked for, or the closing `END`.
    fn next_classic(
        &mut self,
        position_of: impl FnOnce(&[u8]) -> Option<usize>,
    ) -> Result<Option<Frame<Classic>>, String> {
        self.next_frame(|line| Classic::parse(line, position_of))
    }

    /// Frames one reply: a header line `parse` reads (giving the length of the data
    /// block that follows, if any), then that block. Nothing is consumed until the
    /// whole frame is there.
    fn next_frame<H>(
        &mut self,
        parse: impl FnOnce(&[u8]) -> Result<(H, Option<usize>), String>,
    ) -> Result<Option<Frame<H>>, String> {
        let pending = &self.buf[..self.end];
        // `memchr` looks at a word of bytes at a time: framing the header line of each of
        // a multi-get's values byte by byte cost a tenth of a near-cache-off fetch
        // (callgrind, `bench --cpu-split`).
        let Some(newline) = memchr::memchr(b'\n', pending) else {
            if pending.len() > MAX_LINE {
                return Err(format!("reply line longer than {MAX_LINE} bytes"));
            }
            self.need = 0;
            return Ok(None);
        };
        if newline == 0 || pending[newline - 1] != b'\r' {
            return Err("reply line not terminated by CRLF".to_owned());
        }
        let (head, length) = parse(&pending[..newline - 1])?;
        let Some(length) = length else {
            self.skip(newline + 1);
            return Ok(Some((head, None)));
        };
        let total = newline + 1 + length + 2;
        if pending.len() < total {
            self.need = total;
            return Ok(None);
        }
        if &pending[newline + 1 + length..total] != b"\r\n" {
            return Err("data block not terminated by CRLF".to_owned());
        }
        let mut value = self.take(total).split_off(newline + 1);
        value.truncate(length);
        Ok(Some((head, Some(value.freeze()))))
    }
}

/// A framed reply: what its header line says, and its data block if it has one.
type Frame<H> = (H, Option<Bytes>);

/// A frame of a classic multi-get's reply.
#[derive(Debug, PartialEq, Eq)]
enum Classic {
    /// `VALUE <key> <flags> <bytes> <cas>`: the key at `at` among those asked for.
    Value { at: usize, cas: u64 },
    /// `END`: every key not answered before it missed.
    End,
}

impl Classic {
    fn parse(
        line: &[u8],
        position_of: impl FnOnce(&[u8]) -> Option<usize>,
    ) -> Result<(Classic, Option<usize>), String> {
        if line == b"END" {
            return Ok((Classic::End, None));
        }
        let garbage = || format!("unexpected line in a multi-get reply: {:?}", String::from_utf8_lossy(line));
        // Read from the right: the three numbers are short, and the key (whatever is
        // left, spaces and all) must be one of those asked for, which hold none.
        let (rest, cas) = last_word(line.strip_prefix(b"VALUE ").ok_or_else(garbage)?).ok_or_else(garbage)?;
        let (rest, length) = last_word(rest).ok_or_else(garbage)?;
        let (key, flags) = last_word(rest).ok_or_else(garbage)?;
        let length = parse_decimal(length).and_then(|n| usize::try_from(n).ok()).filter(|&n| n <= MAX_VALUE);
        let (Some(_), Some(length), Some(cas)) = (parse_decimal(flags), length, parse_decimal(cas)) else {
            return Err(garbage());
        };
        let at = position_of(key)
            .ok_or_else(|| format!("multi-get reply for a key not asked for: {:?}", String::from_utf8_lossy(key)))?;
        Ok((Classic::Value { at, cas }, Some(length)))
    }
}

/// `line` split at its last space: what comes before it, and the word after it
/// (`None` without a space).
fn last_word(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = memchr::memrchr(b' ', line)?;
    Some((&line[..space], &line[space + 1..]))
}

/// Consecutive plain gets of one server's part shorter than this go as meta
/// commands; from two on they go as one classic `gets`.
const MIN_MULTI_GET: usize = 2;

/// The most keys one classic `gets` names (a 250-byte key each keeps the line near
/// 128 KiB, which memcached reads as one command).
const MAX_MULTI_GET: usize = 512;

/// Whether `op` may go in a classic multi-get: a plain read, no lease, value wanted.
fn is_plain_get(op: &CacheOp<'_>) -> bool {
    matches!(op, CacheOp::Get { lease: None, .. })
}

/// One request line of a part: `len` ops from `first` (indexes into the part's
/// positions), as one meta command or as one classic multi-get.
#[derive(Clone, Copy, Debug)]
struct Command {
    first: usize,
    len: usize,
    multi: bool,
}

/// A server's part of a batch on the wire: its requests, encoded by
/// [`PartExchange::encode`], and the reading of their replies, in order, by
/// [`PartExchange::advance`]. The transports only move the bytes.
///
/// Runs of plain gets (no lease) go as ONE classic `gets k1 k2 …`: memcached answers
/// a multi-key command at a fraction of the cost of as many meta commands, which is
/// where a fetch's object batch spent its server time (BENCHMARKS.md, "The
/// two-round-trip path"). Every other op goes as a meta command of its own.
#[derive(Debug)]
pub(crate) struct PartExchange {
    commands: Vec<Command>,
    /// The command whose replies are being read.
    command: usize,
    /// One reply per op answered so far, in the part's order.
    replies: Vec<CacheReply>,
}

impl PartExchange {
    /// Appends the requests for the ops at `positions` to `out`.
    pub(crate) fn encode(ops: &[CacheOp<'_>], positions: &[usize], out: &mut Vec<u8>) -> PartExchange {
        let mut commands = Vec::new();
        let mut first = 0;
        while first < positions.len() {
            let run = positions[first..].iter().take(MAX_MULTI_GET).take_while(|&&p| is_plain_get(&ops[p])).count();
            let command = if run >= MIN_MULTI_GET {
                out.extend_from_slice(b"gets");
                for &position in &positions[first..first + run] {
                    out.push(b' ');
                    out.extend_from_slice(ops[position].key().as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                Command { first, len: run, multi: true }
            } else {
                encode(&ops[positions[first]], out);
                Command { first, len: 1, multi: false }
            };
            commands.push(command);
            first += command.len;
        }
        PartExchange { commands, command: 0, replies: Vec::with_capacity(positions.len()) }
    }

    /// How many ops have their reply.
    pub(crate) fn answered(&self) -> usize {
        self.replies.len()
    }

    /// Reads every complete reply in `read`: true once every op is answered, false
    /// while more bytes are needed. An error means the stream is out of step (or a
    /// reply does not answer its op): the connection must not be reused.
    pub(crate) fn advance(
        &mut self,
        ops: &[CacheOp<'_>],
        positions: &[usize],
        read: &mut ReadBuf,
    ) -> Result<bool, String> {
        while let Some(&command) = self.commands.get(self.command) {
            if !command.multi {
                let Some(reply) = read.next_reply()? else { return Ok(false) };
                self.replies.push(interpret(&ops[positions[command.first]], reply)?);
                self.command += 1;
                continue;
            }
            let end = command.first + command.len;
            let from = self.replies.len();
            let asked = &positions[from..end];
            let position_of = |key: &[u8]| asked.iter().position(|&p| ops[p].key().as_bytes() == key);
            match read.next_classic(position_of)? {
                None => return Ok(false),
                Some((Classic::Value { at, cas }, value)) => {
                    // Keys come back in the order asked; those skipped missed.
                    self.replies.extend(std::iter::repeat_n(CacheReply::Miss, at));
                    self.replies.push(CacheReply::Hit { value: value.unwrap_or_default(), cas });
                }
                Some((Classic::End, _)) => {
                    self.replies.extend(std::iter::repeat_n(CacheReply::Miss, end - from));
                    self.command += 1;
                }
            }
        }
        Ok(true)
    }

    /// The replies read, one per answered op.
    pub(crate) fn into_replies(self) -> Vec<CacheReply> {
        self.replies
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
                Reply::Meta(h, v) => (h.rc, v.as_ref().map(Bytes::len)),
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

    /// A value shares the read buffer's allocation rather than being copied out of
    /// it, so it must keep its bytes while the buffer goes on receiving: values
    /// kept across several buffers' worth of later replies read back intact.
    #[test]
    fn values_keep_their_bytes_while_the_buffer_reads_on() {
        let mut buf = ReadBuf::default();
        let mut kept = Vec::new();
        for n in 0..2_000u32 {
            let body = format!("{n:0>100}");
            let wire = format!("VA {} c{n} f1\r\n{body}\r\n", body.len());
            let spare = buf.spare();
            spare[..wire.len()].copy_from_slice(wire.as_bytes());
            buf.filled(wire.len());
            let value = match buf.next_reply().expect("a valid reply") {
                Some(Reply::Meta(_, value)) => value,
                _ => None,
            };
            kept.push((body, value.expect("the reply is a value")));
        }
        assert!(buf.is_empty());
        for (body, value) in &kept {
            assert_eq!(&value[..], body.as_bytes());
        }
    }

    proptest::proptest! {
        /// Any sequence of replies — without a value, or with one of any length,
        /// up to several times the buffer — arriving in reads of any sizes, is
        /// framed into exactly those replies, every value with its bytes while all
        /// are kept to the end.
        #[test]
        fn replies_arriving_in_any_reads_are_framed_whole(
            replies in proptest::collection::vec(
                proptest::option::of(proptest::prop_oneof![
                    8 => proptest::collection::vec(proptest::num::u8::ANY, 0..300),
                    1 => proptest::collection::vec(proptest::num::u8::ANY, 60_000..200_000),
                ]),
                1..40,
            ),
            reads in proptest::collection::vec(1usize..80_000, 1..20),
        ) {
            let mut wire = Vec::new();
            for (n, value) in replies.iter().enumerate() {
                match value {
                    Some(value) => {
                        wire.extend_from_slice(format!("VA {} c{n} f1\r\n", value.len()).as_bytes());
                        wire.extend_from_slice(value);
                        wire.extend_from_slice(b"\r\n");
                    }
                    None => wire.extend_from_slice(format!("HD c{n}\r\n").as_bytes()),
                }
            }
            let mut buf = ReadBuf::default();
            let mut framed = Vec::new();
            let (mut at, mut next_read) = (0, 0);
            while at < wire.len() {
                let spare = buf.spare();
                let n = reads[next_read % reads.len()].min(spare.len()).min(wire.len() - at);
                next_read += 1;
                spare[..n].copy_from_slice(&wire[at..at + n]);
                buf.filled(n);
                at += n;
                while let Some(reply) = buf.next_reply().expect("valid replies") {
                    framed.push(match reply {
                        Reply::Meta(_, value) => value,
                        Reply::ServerError(message) => Some(Bytes::from(message)),
                    });
                }
            }
            proptest::prop_assert!(buf.is_empty());
            proptest::prop_assert_eq!(framed.len(), replies.len());
            for (got, want) in framed.iter().zip(&replies) {
                proptest::prop_assert_eq!(got.as_deref(), want.as_deref());
            }
        }
    }

    /// The requests `ops` go out as, and the replies `wire` gives them when it
    /// arrives seven bytes at a time (`Err` with the reason once it goes out of step).
    fn exchange(ops: &[CacheOp<'_>], wire: &[u8]) -> (String, Result<Vec<CacheReply>, String>) {
        let positions: Vec<usize> = (0..ops.len()).collect();
        let mut out = Vec::new();
        let mut exchange = PartExchange::encode(ops, &positions, &mut out);
        let mut buf = ReadBuf::default();
        let mut done = false;
        for chunk in wire.chunks(7) {
            let spare = buf.spare();
            spare[..chunk.len()].copy_from_slice(chunk);
            buf.filled(chunk.len());
            match exchange.advance(ops, &positions, &mut buf) {
                Ok(finished) => done = finished,
                Err(reason) => return (String::from_utf8_lossy(&out).into_owned(), Err(reason)),
            }
        }
        assert!(done && buf.is_empty(), "every op answered, nothing left over");
        (String::from_utf8_lossy(&out).into_owned(), Ok(exchange.into_replies()))
    }

    #[test]
    fn runs_of_plain_gets_go_as_one_classic_multi_get() {
        let get = |key| CacheOp::Get { key, lease: None };
        let ops = [
            get("n1"),
            CacheOp::Get { key: "leased", lease: Some(30) },
            get("a"),
            get("b"),
            get("a"),
            get("c"),
            CacheOp::GetCas { key: "n1" },
            get("lone"),
        ];
        let wire = b"VA 2 c1 f1\r\nn!\r\nVA 0 c2 f0 W\r\n\r\n\
                     VALUE a 1 3 7\r\nabc\r\nVALUE a 1 3 7\r\nabc\r\nVALUE c 0 0 9\r\n\r\nEND\r\n\
                     HD c1\r\nEN\r\n";
        let (requests, replies) = exchange(&ops, wire);
        assert_eq!(requests, "mg n1 v c f\r\nmg leased v c f N30\r\ngets a b a c\r\nmg n1 c\r\nmg lone v c f\r\n");
        let hit = |value: &[u8], cas| CacheReply::Hit { value: Bytes::copy_from_slice(value), cas };
        assert_eq!(
            replies,
            Ok(vec![
                hit(b"n!", 1),
                CacheReply::LeaseWon { cas: 2 },
                hit(b"abc", 7),
                CacheReply::Miss,
                hit(b"abc", 7),
                // A lease placeholder reads as an empty value, as a meta plain get reads it.
                hit(b"", 9),
                CacheReply::Present { cas: 1 },
                CacheReply::Miss,
            ])
        );
        // Every key missing: only END comes back.
        assert_eq!(exchange(&[get("x"), get("y")], b"END\r\n").1, Ok(vec![CacheReply::Miss, CacheReply::Miss]));
    }

    #[test]
    fn a_multi_get_reply_that_does_not_fit_its_request_is_out_of_step() {
        let ops = [CacheOp::Get { key: "a", lease: None }, CacheOp::Get { key: "b", lease: None }];
        for (wire, why) in [
            (&b"VALUE z 1 1 3\r\nx\r\nEND\r\n"[..], "a key not asked for"),
            (b"VALUE b 1 1 3\r\nx\r\nVALUE a 1 1 4\r\ny\r\nEND\r\n", "a key out of order"),
            (b"VALUE a 1 1\r\nx\r\nEND\r\n", "no CAS (a `get`, not a `gets`, reply)"),
            (b"VALUE a 1 -1 3\r\nEND\r\n", "a negative length"),
            (b"VALUE a b 1 1 3\r\nx\r\nEND\r\n", "a word too many"),
            (b"VALUE  1 1 3\r\nx\r\nEND\r\n", "no key"),
            (b"VALUE\r\nEND\r\n", "nothing after VALUE"),
            (b"SERVER_ERROR out of memory\r\n", "an error line"),
            (b"EN\r\n", "a meta reply"),
            (b"VALUE a 1 1 3\r\nxyz\r\nEND\r\n", "a data block longer than announced"),
        ] {
            assert!(exchange(&ops, wire).1.is_err(), "{why}");
        }
    }

    /// A multi-get reply with bytes changed, dropped or doubled anywhere (a server or
    /// a network gone wrong) frames as replies that fit the request, as "more bytes
    /// needed", or as an error — never a panic, never an answer for an op not asked.
    #[test]
    fn a_damaged_multi_get_reply_never_panics() {
        let keys = ["memdex:item:0:1", "memdex:item:0:2", "memdex:item:0:3"];
        let ops: Vec<CacheOp<'_>> = keys.iter().map(|&key| CacheOp::Get { key, lease: None }).collect();
        let positions: Vec<usize> = (0..ops.len()).collect();
        let valid = b"VALUE memdex:item:0:1 1 3 7\r\nabc\r\nVALUE memdex:item:0:3 0 5 12\r\nhello\r\nEND\r\n";
        let mut rng = fastrand::Rng::with_seed(30);
        let damages: [&[u8]; 6] = [b" ", b"\r", b"\n", b"9", b"VALUE ", b"\xff"];
        for _ in 0..5_000 {
            let mut wire = valid.to_vec();
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(..wire.len());
                match rng.u8(..3) {
                    0 => wire[at] = rng.u8(..),
                    1 => drop(wire.drain(at..(at + rng.usize(1..6)).min(wire.len()))),
                    _ => drop(wire.splice(at..at, damages[rng.usize(..damages.len())].iter().copied())),
                }
            }
            let mut exchange = PartExchange::encode(&ops, &positions, &mut Vec::new());
            let mut buf = ReadBuf::default();
            let spare = buf.spare();
            let n = wire.len().min(spare.len());
            spare[..n].copy_from_slice(&wire[..n]);
            buf.filled(n);
            if let Ok(true) = exchange.advance(&ops, &positions, &mut buf) {
                assert_eq!(exchange.into_replies().len(), ops.len(), "{:?}", String::from_utf8_lossy(&wire));
            }
        }
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
