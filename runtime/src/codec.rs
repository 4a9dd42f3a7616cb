//! Byte formats of cached values.
//!
//! **Objects**: a magic byte, the 32-bit tag of the shape they were encoded with
//! (the schema hash: table, columns, types), then postcard (compact binary serde).
//! Keys do not depend on the struct (two versions of a model share them during a
//! rolling deploy), so the tag is what keeps one version from decoding the other's
//! bytes as its own: a value of another shape reads as a miss, and the reader repairs
//! it under its CAS.
//!
//! An object's **etag** is a 64-bit hash of its encoded bytes (xxh3, a published
//! algorithm every version and build computes alike): equal etags mean equal bytes.
//!
//! **Nodes**: a header that only a complete fill or write-back writes (with a random
//! nonce of its own, so that a node's bytes, once changed, never come back: see
//! [`NODE_HEADER_TAG`]), then one entry per id. An
//! entry is the id and the etag of the object as the write that put it there (or the
//! fill that listed it) encoded it. Writers append entries with `append`, which
//! memcached applies to whatever item is there, including a lease placeholder (an
//! empty item). A placeholder that received appends holds entries but no header and
//! reads as a miss. Entries never start with the header's first byte, so a headerless
//! value can never be mistaken for a filled node.
//!
//! A write appends an entry for its row to every node the row was in *and* is in, so
//! an id listed with one etag names the row's current version, and an id listed with
//! several (or with [`UNKNOWN_ETAG`]) names a row that changed since the node was
//! filled: its reader asks the database and writes the node back clean.
//!
//! The header says how many bytes of entries follow it **verified**: written by a
//! fill from the database or by a reader's write-back, under CAS, each entry checked
//! against the database or the object's own cached bytes. Everything after them was
//! appended since, and an append can land arbitrarily late (a writer's batch, or a
//! lazy removal's re-homing, delayed after the row changed again and a reader
//! cleaned the node of its newer entries): it names a version that *was* current
//! once. So the near cache serves a kept object only for an id whose entries are all
//! verified; an appended entry sends its reader to the object's cached bytes (whose
//! invalidation by every write is what makes them authoritative), and the reader's
//! write-back then makes it verified (K12 in RELIABILITY.md).
//!
//! Entry formats are self-delimiting so appends need no framing: an integer key is
//! its decimal digits and `,` (`1111,`), a text key `<byte length>:<bytes>`, each
//! followed by the etag as 16 lowercase hex digits.
//!
//! **Ordered nodes** (an index with `order_by`) hold the same entries, each verified
//! one preceded by `^` and the row's order value at that version (an integer or
//! instant as digits and `,`, a float as its 16 hex bits, a bool `0`/`1`, text and
//! bytes as `<byte length>:<bytes>`, a UUID as 32 hex digits, NULL `~`). Their
//! verified entries are written sorted by order value, then key. When the key is an
//! integer and the order value fits 8 bytes (integer, instant, float, bool), the
//! verified entries are instead `=` and fixed-width records of 25 bytes (a NULL flag,
//! the value, the id and the etag, big-endian), so that a page is read at its
//! position in the bytes without scanning the entries before it (measured: the scan
//! of a 1,000-line cart's entries was the largest cost of a page read). Appends
//! stay plain entries: a writer need not know the order column (another version's
//! may lack it), and an appended entry's value would not be trusted anyway, since it
//! is not verified. So a reader trusts an order value exactly when it trusts the
//! entry: verified, and the id's only version in the node.

use memdex_grammar::decimal::Digits;
use memdex_grammar::{Type, Value};

/// The header of a complete node (version 4) starts with these bytes, followed by
/// the byte length of the verified entries as 8 hex digits, the node's **nonce** as
/// 16 hex digits and a newline. The nonce is random, drawn afresh by every write of
/// a whole node (a fill or a write-back); appends leave it alone. So a node's bytes
/// never come back once they changed: an append makes them longer, and a new whole
/// value brings another nonce — after a delete, an eviction or a server restart too.
/// Equal bytes read at two moments mean the node did not change in between, which a
/// fetch over several nodes relies on to skip re-reading them
/// ([`is_unique_node`]).
pub const NODE_HEADER_TAG: &[u8] = b"#4";

/// Header bytes: the tag, 8 hex digits of length, 16 of nonce, a newline.
const NODE_HEADER_LEN: usize = NODE_HEADER_TAG.len() + 8 + 16 + 1;

/// The header of the previous version (3): the tag, 8 hex digits of length and a
/// newline, no nonce. Read as before — a process of the previous release may still
/// fill nodes during a rolling upgrade, and treating its nodes as corrupt would make
/// the two releases rewrite each other's — but never taken as unchanged by its
/// bytes alone. Any other value starting with `#` is corrupt, rewritten under CAS.
const NODE_HEADER_TAG_V3: &[u8] = b"#3";

/// The first byte of every object value memdex writes (version 2, tagged).
const OBJECT_MAGIC: u8 = 0xB2;

/// An entry whose row version is not known (an id a fill keeps as a candidate):
/// its reader always asks the database.
pub const UNKNOWN_ETAG: u64 = 0;

/// The entry of a deleted row.
pub const DELETED_ETAG: u64 = u64::MAX;

/// Why a node value could not be read; the executor answers from the database and
/// rewrites the node.
#[derive(Debug, PartialEq, Eq)]
pub enum NodeDecode {
    /// No header: a lease placeholder, possibly with appended records.
    Unfilled,
    /// Bytes that are not records of this key type.
    Corrupt,
}

/// One entry of a node: an id and the etag of its row's version.
pub type Entry = (Value, u64);

/// A decoded node: its entries in stored order (repeats included), the first
/// `verified` of which were written by a fill or a write-back, the rest appended.
#[derive(Debug, PartialEq)]
pub struct Node {
    /// Every entry, in stored order.
    pub entries: Vec<Entry>,
    /// How many of the first entries the header declares verified.
    pub verified: usize,
    /// An ordered node's order values, parallel to `entries` (`None` for an entry
    /// without one: an append); empty for a node of an unordered index.
    pub orders: Vec<Option<Value>>,
}

/// Marks an entry of an ordered node that carries its order value.
const ORDER_MARK: u8 = b'^';

/// Starts the fixed-width verified entries of an ordered node (see the module docs).
const FIXED_MARK: u8 = b'=';

/// One fixed-width record: NULL flag, order value, id, etag.
const FIXED_LEN: usize = 1 + 8 + 8 + 8;

/// An order value as a fixed-width record's 8 bytes, when it has such a form.
fn fixed_order(value: &Value) -> Option<(u8, u64)> {
    match value {
        Value::Null => Some((0, 0)),
        Value::Int(i) | Value::Timestamp(i) => Some((1, *i as u64)),
        Value::Float(x) => Some((1, x.to_bits())),
        Value::Bool(b) => Some((1, u64::from(*b))),
        _ => None,
    }
}

/// The order value of a fixed-width record (`flag`, `bits`) of column type `ty`.
fn order_from_fixed(flag: u8, bits: u64, ty: Type) -> Option<Value> {
    match (flag, ty) {
        (0, _) => Some(Value::Null),
        (1, Type::Int) => Some(Value::Int(bits as i64)),
        (1, Type::Timestamp) => Some(Value::Timestamp(bits as i64)),
        (1, Type::Float) => Some(Value::Float(f64::from_bits(bits))),
        (1, Type::Bool) if bits <= 1 => Some(Value::Bool(bits == 1)),
        _ => None,
    }
}

/// Record `at` of a fixed-width region (after its mark): order value, id, etag.
fn fixed_record(region: &[u8], at: usize, ty: Type) -> Option<(Value, Entry)> {
    let record = region.get(at * FIXED_LEN..(at + 1) * FIXED_LEN)?;
    let word = |from: usize| u64::from_be_bytes(record[from..from + 8].try_into().unwrap_or_default());
    let order = order_from_fixed(record[0], word(1), ty)?;
    Some((order, (Value::Int(word(9) as i64), word(17))))
}

/// The etag of an encoded object: never `UNKNOWN_ETAG` or `DELETED_ETAG`, which
/// name no version.
pub fn etag(bytes: &[u8]) -> u64 {
    match xxhash_rust::xxh3::xxh3_64(bytes) {
        UNKNOWN_ETAG => 1,
        DELETED_ETAG => DELETED_ETAG - 1,
        hash => hash,
    }
}

/// Appends one entry.
pub fn push_entry(out: &mut Vec<u8>, id: &Value, etag: u64) {
    push_id(out, id);
    let at = out.len();
    out.resize(at + 16, 0);
    push_hex(&mut out[at..], etag);
}

fn push_id(out: &mut Vec<u8>, id: &Value) {
    match id {
        Value::Int(i) => {
            if *i < 0 {
                out.push(b'-');
            }
            push_digits(out, i.unsigned_abs());
            out.push(b',');
        }
        Value::Text(s) => push_counted(out, s.as_bytes()),
        // Keys are integers or strings (the derive rejects other key types); any
        // other value is written as its text spelling so that it still round-trips
        // as a string key rather than corrupting the node.
        other => push_id(out, &Value::Text(other.to_string())),
    }
}

/// Appends `n` in decimal without the `fmt` machinery or a temporary `String`.
fn push_digits(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(Digits::new(n).as_bytes());
}

/// Appends an order value (`^` and its spelling; see the module's docs).
fn push_order(out: &mut Vec<u8>, value: &Value) {
    out.push(ORDER_MARK);
    match value {
        Value::Null => out.push(b'~'),
        Value::Bool(b) => out.push(if *b { b'1' } else { b'0' }),
        Value::Int(i) | Value::Timestamp(i) => push_id(out, &Value::Int(*i)),
        Value::Float(x) => {
            let at = out.len();
            out.resize(at + 16, 0);
            push_hex(&mut out[at..], x.to_bits());
        }
        Value::Text(t) => push_counted(out, t.as_bytes()),
        Value::Bytes(b) => push_counted(out, b),
        Value::Uuid(u) => {
            for half in [&u[..8], &u[8..]] {
                let at = out.len();
                out.resize(at + 16, 0);
                push_hex(&mut out[at..], u64::from_be_bytes(half.try_into().unwrap_or_default()));
            }
        }
        // Never an order column (the derive rejects JSON; lists are not columns):
        // spelled as text so that the node still decodes.
        other => push_id(out, &Value::Text(other.to_string())),
    }
}

/// `<byte length>:<bytes>`.
fn push_counted(out: &mut Vec<u8>, bytes: &[u8]) {
    push_digits(out, bytes.len() as u64);
    out.push(b':');
    out.extend_from_slice(bytes);
}

/// A complete node: header and the given entries, all verified. `orders` is empty
/// for a node of an unordered index, else parallel to `entries`: an ordered node is
/// written sorted by order value, then key (entries without a value last), so that
/// its reader finds a page by position instead of sorting the node.
pub fn encode_node(entries: &[Entry], orders: &[Option<Value>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(NODE_HEADER_LEN + entries.len() * 24);
    out.extend_from_slice(NODE_HEADER_TAG);
    // The verified length, filled in once the entries are written, then the nonce.
    out.extend_from_slice(b"00000000");
    let mut nonce = [0u8; 16];
    push_hex(&mut nonce, fastrand::u64(..));
    out.extend_from_slice(&nonce);
    out.push(b'\n');
    let mut sequence: Vec<usize> = (0..entries.len()).collect();
    if !orders.is_empty() {
        sequence.sort_by(|&a, &b| {
            let order = |at: usize| orders.get(at).and_then(Option::as_ref);
            match (order(a), order(b)) {
                (Some(x), Some(y)) => x.order(y),
                (x, y) => x.is_none().cmp(&y.is_none()),
            }
            .then_with(|| entries[a].0.order(&entries[b].0))
        });
    }
    let fixed = !orders.is_empty()
        && !entries.is_empty()
        && entries.iter().all(|(id, _)| matches!(id, Value::Int(_)))
        && orders.iter().all(|o| o.as_ref().is_some_and(|v| fixed_order(v).is_some()));
    if fixed {
        out.push(FIXED_MARK);
    }
    for at in sequence {
        let (id, etag) = &entries[at];
        match (fixed, orders.get(at), id) {
            (true, Some(Some(order)), Value::Int(i)) => {
                let (flag, bits) = fixed_order(order).unwrap_or((0, 0));
                out.push(flag);
                out.extend_from_slice(&bits.to_be_bytes());
                out.extend_from_slice(&(*i as u64).to_be_bytes());
                out.extend_from_slice(&etag.to_be_bytes());
            }
            (_, Some(Some(order)), _) => {
                push_order(&mut out, order);
                push_entry(&mut out, id, *etag);
            }
            _ => push_entry(&mut out, id, *etag),
        }
    }
    // Eight hex digits hold 4 GiB, far above any cache's item limit (a node that
    // long would not be stored anyway).
    let verified = u64::try_from(out.len() - NODE_HEADER_LEN).unwrap_or(u64::MAX);
    push_hex(&mut out[NODE_HEADER_TAG.len()..NODE_HEADER_TAG.len() + 8], verified);
    out
}

/// Whether `bytes` are a node whose bytes name one state of it only: a version 4
/// header, with a nonce. Reading such bytes twice means the node did not change
/// between the two reads (see [`NODE_HEADER_TAG`]).
pub fn is_unique_node(bytes: &[u8]) -> bool {
    bytes.starts_with(NODE_HEADER_TAG) && bytes.get(NODE_HEADER_LEN - 1) == Some(&b'\n')
}

/// Writes the low `out.len()` hex digits of `n` into `out`.
fn push_hex(out: &mut [u8], n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let len = out.len();
    for (at, digit) in out.iter_mut().enumerate() {
        *digit = HEX[((n >> ((len - 1 - at) * 4)) & 0xf) as usize];
    }
}

/// A node's header: the byte length of its verified entries, and the body (every
/// entry) after it.
fn split_header(bytes: &[u8]) -> Result<(usize, &[u8]), NodeDecode> {
    let (after_tag, nonce_len) = if let Some(after_tag) = bytes.strip_prefix(NODE_HEADER_TAG) {
        (after_tag, 16)
    } else if let Some(after_tag) = bytes.strip_prefix(NODE_HEADER_TAG_V3) {
        (after_tag, 0)
    } else {
        // Entries never start with `#`: a value that does is a node of another
        // format (or garbage), not a placeholder.
        return Err(if bytes.first() == Some(&b'#') { NodeDecode::Corrupt } else { NodeDecode::Unfilled });
    };
    let end = 8 + nonce_len;
    let (Some(digits), Some(nonce), Some(b'\n')) = (after_tag.get(..8), after_tag.get(8..end), after_tag.get(end))
    else {
        return Err(NodeDecode::Corrupt);
    };
    if parse_hex(nonce).is_none() {
        return Err(NodeDecode::Corrupt);
    }
    let verified_bytes = usize::try_from(parse_hex(digits).ok_or(NodeDecode::Corrupt)?).unwrap_or(usize::MAX);
    let body = &after_tag[end + 1..];
    if verified_bytes > body.len() {
        return Err(NodeDecode::Corrupt);
    }
    Ok((verified_bytes, body))
}

/// The entries of a node, in stored order, repeats included (a write appends its
/// entry whether or not the node lists the id already; readers resolve them).
/// `order`: the order column's type, for a node of an ordered index.
pub fn decode_node(bytes: &[u8], key_type: Type, order: Option<Type>) -> Result<Node, NodeDecode> {
    let (verified_bytes, body) = split_header(bytes)?;
    let mut rest = body;
    let mut entries = Vec::with_capacity(rest.len() / 24);
    let mut orders = Vec::new();
    // Where the verified entries end: at an entry's start, or at the end.
    let mut verified = None;
    if let (Some(order_type), Some(&FIXED_MARK)) = (order, body.first()) {
        let region = &body[1..verified_bytes.max(1)];
        if key_type == Type::Text || verified_bytes == 0 || region.len() % FIXED_LEN != 0 {
            return Err(NodeDecode::Corrupt);
        }
        for at in 0..region.len() / FIXED_LEN {
            let (order, entry) = fixed_record(region, at, order_type).ok_or(NodeDecode::Corrupt)?;
            orders.push(Some(order));
            entries.push(entry);
        }
        // The loop below marks the end of the verified region at its first append.
        verified = (verified_bytes == body.len()).then_some(entries.len());
        rest = &body[verified_bytes..];
    }
    while !rest.is_empty() {
        if body.len() - rest.len() == verified_bytes {
            verified = Some(entries.len());
        }
        if let Some(order_type) = order {
            let value = match rest.strip_prefix(&[ORDER_MARK]) {
                Some(marked) => {
                    let (value, after) = parse_order(marked, order_type).ok_or(NodeDecode::Corrupt)?;
                    rest = after;
                    Some(value)
                }
                None => None,
            };
            orders.push(value);
        }
        let (id, after) = parse_id(rest, key_type).ok_or(NodeDecode::Corrupt)?;
        let hex = after.get(..16).ok_or(NodeDecode::Corrupt)?;
        entries.push((id, parse_hex(hex).ok_or(NodeDecode::Corrupt)?));
        rest = &after[16..];
    }
    if verified_bytes == body.len() {
        verified = Some(entries.len());
    }
    // `None`: the verified length falls inside an entry.
    Ok(Node { entries, verified: verified.ok_or(NodeDecode::Corrupt)?, orders })
}

/// An ordered node whose every entry is verified and carries its order value, as
/// its writer left it: sorted by order value, then key, each id once (a fill lists
/// rows, a write-back keeps an id once). Only the entries' positions are found when
/// it is read; an entry is decoded when a page asks for it, so a page of a large
/// node costs a scan of its bytes, not a decode and a sort of every entry.
#[derive(Debug)]
pub struct OrderedNode<'b> {
    body: &'b [u8],
    layout: Layout,
    key_type: Type,
    order_type: Type,
}

/// How an ordered node's entries are found.
#[derive(Debug)]
enum Layout {
    /// Text entries: where each starts in the body (at its `^`).
    Text(Vec<u32>),
    /// Fixed-width records after the mark: how many.
    Fixed(usize),
}

/// The ordered node in `bytes`, if it is complete and every entry is verified and
/// carries its order value; `None` otherwise (an append since the last verified
/// write, an in-flight id without a value, a placeholder, damage): the caller then
/// decodes it whole with [`decode_node`], which says which.
pub fn ordered_node(bytes: &[u8], key_type: Type, order_type: Type) -> Option<OrderedNode<'_>> {
    let (verified_bytes, body) = split_header(bytes).ok()?;
    if verified_bytes != body.len() || u32::try_from(body.len()).is_err() {
        return None;
    }
    if let Some(region) = body.strip_prefix(&[FIXED_MARK]) {
        if key_type == Type::Text || region.is_empty() || region.len() % FIXED_LEN != 0 {
            return None;
        }
        return Some(OrderedNode {
            body: region,
            layout: Layout::Fixed(region.len() / FIXED_LEN),
            key_type,
            order_type,
        });
    }
    let mut starts = Vec::with_capacity(body.len() / 28);
    let mut rest = body;
    while !rest.is_empty() {
        starts.push((body.len() - rest.len()) as u32);
        let after_value = skip_order(rest.strip_prefix(&[ORDER_MARK])?, order_type)?;
        let after_id = match key_type {
            Type::Text => parse_counted(after_value)?.1,
            _ => &after_value[after_value.iter().position(|&b| b == b',')? + 1..],
        };
        rest = after_id.get(16..)?;
    }
    Some(OrderedNode { body, layout: Layout::Text(starts), key_type, order_type })
}

/// What follows an order value of type `ty`, without decoding it.
fn skip_order(rest: &[u8], ty: Type) -> Option<&[u8]> {
    if let Some(after) = rest.strip_prefix(b"~") {
        return Some(after);
    }
    match ty {
        Type::Bool => rest.get(1..),
        Type::Int | Type::Timestamp => Some(&rest[rest.iter().position(|&b| b == b',')? + 1..]),
        Type::Float => rest.get(16..),
        Type::Uuid => rest.get(32..),
        Type::Text | Type::Bytes => Some(parse_counted(rest)?.1),
        Type::Json => None,
    }
}

impl OrderedNode<'_> {
    /// How many entries (ids) the node lists.
    pub(crate) fn len(&self) -> usize {
        match &self.layout {
            Layout::Text(starts) => starts.len(),
            Layout::Fixed(count) => *count,
        }
    }

    /// Where text entry `at` starts, after its `^`.
    fn text_entry(&self, at: usize) -> Option<&[u8]> {
        let Layout::Text(starts) = &self.layout else { return None };
        self.body.get(*starts.get(at)? as usize..)?.strip_prefix(&[ORDER_MARK])
    }

    /// Entry `at`: its order value, id and etag; `None` past the end or for
    /// damaged bytes.
    pub(crate) fn get(&self, at: usize) -> Option<(Value, Entry)> {
        if let Layout::Fixed(_) = self.layout {
            return fixed_record(self.body, at, self.order_type);
        }
        let rest = self.text_entry(at)?;
        let (order, rest) = parse_order(rest, self.order_type)?;
        let (id, rest) = parse_id(rest, self.key_type)?;
        let (etag, _) = fixed_hex(rest, 16)?;
        Some((order, (id, etag)))
    }

    /// The order value of entry `at`.
    pub(crate) fn order_at(&self, at: usize) -> Option<Value> {
        if let Layout::Fixed(_) = self.layout {
            return fixed_record(self.body, at, self.order_type).map(|(order, _)| order);
        }
        parse_order(self.text_entry(at)?, self.order_type).map(|(order, _)| order)
    }
}

/// `<byte length>:<bytes>` at the start of `rest`, and what follows.
fn parse_counted(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = rest.iter().position(|&b| b == b':')?;
    let len: usize = parse_digits(&rest[..colon])?;
    let body = rest.get(colon + 1..colon.checked_add(1 + len)?)?;
    Some((body, &rest[colon + 1 + len..]))
}

/// An entry's id of type `key_type` (a text key counted, any other an integer),
/// and what follows.
fn parse_id(rest: &[u8], key_type: Type) -> Option<(Value, &[u8])> {
    match key_type {
        Type::Text => parse_text(rest).map(|(s, after)| (Value::Text(s), after)),
        _ => parse_int_field(rest).map(|(i, after)| (Value::Int(i), after)),
    }
}

fn parse_text(rest: &[u8]) -> Option<(String, &[u8])> {
    let (body, after) = parse_counted(rest)?;
    Some((std::str::from_utf8(body).ok()?.to_owned(), after))
}

/// Decimal digits and `,` at the start of `rest`, and what follows.
fn parse_int_field(rest: &[u8]) -> Option<(i64, &[u8])> {
    let comma = rest.iter().position(|&b| b == b',')?;
    Some((parse_int(&rest[..comma])?, &rest[comma + 1..]))
}

/// `n` hex digits at the start of `rest` as a number, and what follows.
fn fixed_hex(rest: &[u8], n: usize) -> Option<(u64, &[u8])> {
    Some((parse_hex(rest.get(..n)?)?, rest.get(n..)?))
}

/// An order value of type `ty` (after its `^`), and what follows.
fn parse_order(rest: &[u8], ty: Type) -> Option<(Value, &[u8])> {
    if let Some(after) = rest.strip_prefix(b"~") {
        return Some((Value::Null, after));
    }
    match ty {
        Type::Bool => match rest.split_first()? {
            (b'0', after) => Some((Value::Bool(false), after)),
            (b'1', after) => Some((Value::Bool(true), after)),
            _ => None,
        },
        Type::Int => parse_int_field(rest).map(|(i, after)| (Value::Int(i), after)),
        Type::Timestamp => parse_int_field(rest).map(|(i, after)| (Value::Timestamp(i), after)),
        Type::Float => fixed_hex(rest, 16).map(|(bits, after)| (Value::Float(f64::from_bits(bits)), after)),
        Type::Text => parse_text(rest).map(|(s, after)| (Value::Text(s), after)),
        Type::Bytes => parse_counted(rest).map(|(b, after)| (Value::Bytes(b.to_vec()), after)),
        Type::Uuid => {
            let (high, rest) = fixed_hex(rest, 16)?;
            let (low, after) = fixed_hex(rest, 16)?;
            let mut u = [0u8; 16];
            u[..8].copy_from_slice(&high.to_be_bytes());
            u[8..].copy_from_slice(&low.to_be_bytes());
            Some((Value::Uuid(u), after))
        }
        Type::Json => None,
    }
}

fn parse_hex(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some((n << 4) | u64::from(v))
    })
}

/// An integer record: what `i64::from_str` accepts (an optional sign, then
/// digits, in range), without the UTF-8 check and its error type, since nodes are
/// decoded for every fetch.
fn parse_int(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, bytes),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulated negatively so that `i64::MIN` fits.
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative { Some(n) } else { n.checked_neg() }
}

fn parse_digits(bytes: &[u8]) -> Option<usize> {
    if bytes.is_empty() || bytes.len() > 12 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// One entry as an append payload.
pub fn entry_record(id: &Value, etag: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    push_entry(&mut out, id, etag);
    out
}

/// An object's bytes: magic, shape tag, postcard.
pub fn encode_object<T: serde::Serialize>(value: &T, tag: u32) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    out.push(OBJECT_MAGIC);
    out.extend_from_slice(&tag.to_le_bytes());
    postcard::to_extend(value, out).ok()
}

/// The object in `bytes`, if they hold one of this shape (`tag`).
pub fn decode_object<T: serde::de::DeserializeOwned>(bytes: &[u8], tag: u32) -> Option<T> {
    let [OBJECT_MAGIC, t0, t1, t2, t3, body @ ..] = bytes else { return None };
    if u32::from_le_bytes([*t0, *t1, *t2, *t3]) != tag {
        return None;
    }
    postcard::from_bytes(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_verified(entries: Vec<Entry>) -> Result<Node, NodeDecode> {
        let verified = entries.len();
        Ok(Node { entries, verified, orders: Vec::new() })
    }

    /// A version 4 header saying `len` bytes are verified, with a fixed nonce.
    fn header(len: usize) -> Vec<u8> {
        format!("#4{len:08x}0123456789abcdef\n").into_bytes()
    }

    #[test]
    fn every_whole_write_of_a_node_has_bytes_of_its_own() {
        let entries = vec![(Value::Int(1), 10), (Value::Int(2), 20)];
        let (first, second) = (encode_node(&entries, &[]), encode_node(&entries, &[]));
        // The same entries, written twice (a fill, then a refill from the same rows):
        // equal bytes would tell a reader that compares bytes the node never changed.
        assert_ne!(first, second);
        assert_eq!(decode_node(&first, Type::Int, None), decode_node(&second, Type::Int, None));
        assert!(is_unique_node(&first) && is_unique_node(&second));
        // An append keeps the nonce; the bytes grow, so they never come back either.
        let appended = [&first[..], &entry_record(&Value::Int(3), 30)].concat();
        assert!(is_unique_node(&appended));
        assert_eq!(decode_node(&appended, Type::Int, None).map(|n| n.verified), Ok(2));
    }

    #[test]
    fn a_node_of_the_previous_version_reads_but_is_not_unique() {
        let current = encode_node(&[(Value::Int(1), 10)], &[]);
        let body = &current[NODE_HEADER_LEN..];
        let previous = [format!("#3{:08x}\n", body.len()).as_bytes(), body].concat();
        assert_eq!(decode_node(&previous, Type::Int, None), all_verified(vec![(Value::Int(1), 10)]));
        assert!(!is_unique_node(&previous));
        // A placeholder and garbage are no node at all.
        assert!(!is_unique_node(b"") && !is_unique_node(b"1,000000000000000a") && !is_unique_node(b"#4"));
    }

    #[test]
    fn nodes_round_trip_for_both_key_types() {
        let ints = vec![
            (Value::Int(1111), 7),
            (Value::Int(-3), u64::MAX - 1),
            (Value::Int(0), 1),
            (Value::Int(i64::MAX), UNKNOWN_ETAG),
            (Value::Int(i64::MIN), DELETED_ETAG),
        ];
        let encoded = encode_node(&ints, &[]);
        let body = encoded.len() - NODE_HEADER_LEN;
        assert!(encoded.starts_with(format!("#4{body:08x}").as_bytes()));
        assert!(encoded[NODE_HEADER_LEN..].starts_with(b"1111,0000000000000007-3,fffffffffffffffe"));
        assert_eq!(decode_node(&encoded, Type::Int, None), all_verified(ints));
        let texts =
            vec![(Value::Text("a,b:c".into()), 5), (Value::Text(String::new()), 6), (Value::Text("ü\n#3".into()), 9)];
        assert_eq!(decode_node(&encode_node(&texts, &[]), Type::Text, None), all_verified(texts));
        assert_eq!(decode_node(&encode_node(&[], &[]), Type::Int, None), all_verified(vec![]));
    }

    #[test]
    fn appends_extend_a_filled_node_unverified_and_leave_a_placeholder_unfilled() {
        let mut node = encode_node(&[(Value::Int(1), 10)], &[]);
        node.extend(entry_record(&Value::Int(2), 20));
        node.extend(entry_record(&Value::Int(1), 11));
        let entries = vec![(Value::Int(1), 10), (Value::Int(2), 20), (Value::Int(1), 11)];
        assert_eq!(decode_node(&node, Type::Int, None), Ok(Node { entries, verified: 1, orders: Vec::new() }));
        let mut empty = encode_node(&[], &[]);
        empty.extend(entry_record(&Value::Int(2), 20));
        assert_eq!(
            decode_node(&empty, Type::Int, None),
            Ok(Node { entries: vec![(Value::Int(2), 20)], verified: 0, orders: Vec::new() })
        );
        let placeholder_with_append = entry_record(&Value::Int(2), 20);
        assert_eq!(decode_node(&placeholder_with_append, Type::Int, None), Err(NodeDecode::Unfilled));
        assert_eq!(decode_node(b"", Type::Int, None), Err(NodeDecode::Unfilled));
        let text_append = entry_record(&Value::Text("#3\nx".into()), 3);
        assert_eq!(decode_node(&text_append, Type::Text, None), Err(NodeDecode::Unfilled));
    }

    #[test]
    fn ordered_nodes_keep_each_verified_entry_with_its_order_value() {
        let check = |ty: Type, mut values: Vec<Value>| {
            // Written sorted by value, then key: given sorted, read back as given.
            values.sort_by(Value::order);
            let entries: Vec<Entry> = (0..values.len()).map(|i| (Value::Int(i as i64), 7 + i as u64)).collect();
            let orders: Vec<Option<Value>> = values.into_iter().map(Some).collect();
            let mut bytes = encode_node(&entries, &orders);
            // An append names no order value: a plain entry.
            bytes.extend(entry_record(&Value::Int(99), 5));
            let node = decode_node(&bytes, Type::Int, Some(ty)).expect("decodes");
            assert_eq!(node.entries[..entries.len()], entries[..], "{ty:?}");
            assert_eq!(node.entries.last(), Some(&(Value::Int(99), 5)));
            assert_eq!(node.verified, entries.len());
            assert_eq!(node.orders[..orders.len()], orders[..], "{ty:?}");
            assert_eq!(node.orders.last(), Some(&None), "the append has no order value");
            // A reader of the unordered format sees garbage, never wrong ids.
            if !entries.is_empty() {
                assert_eq!(decode_node(&bytes, Type::Int, None), Err(NodeDecode::Corrupt));
            }
        };
        check(Type::Int, vec![Value::Int(3), Value::Int(-1), Value::Null, Value::Int(i64::MIN)]);
        check(Type::Timestamp, vec![Value::Timestamp(1_700_000_000_000_000), Value::Timestamp(-5)]);
        check(Type::Float, vec![Value::Float(1.5), Value::Float(-0.0), Value::Float(f64::INFINITY)]);
        check(Type::Text, vec![Value::Text("a,b:^c".into()), Value::Text(String::new()), Value::Text("ü~".into())]);
        check(Type::Bytes, vec![Value::Bytes(vec![0, b'^', 255]), Value::Bytes(vec![])]);
        check(Type::Bool, vec![Value::Bool(true), Value::Bool(false), Value::Null]);
        check(Type::Uuid, vec![Value::Uuid([0xab; 16]), Value::Uuid(*b"0123456789abcdef")]);
        check(Type::Int, vec![]);
        // NaN survives bit for bit (equality on the value would not say so).
        let nan = encode_node(&[(Value::Int(1), 2)], &[Some(Value::Float(f64::NAN))]);
        let node = decode_node(&nan, Type::Int, Some(Type::Float)).expect("decodes");
        assert!(matches!(node.orders[0], Some(Value::Float(x)) if x.is_nan()));
        // Damaged order values are corrupt, not a panic.
        for bad in [&b"^"[..], b"^x1,", b"^12", b"^5:ab", b"^zzzzzzzzzzzzzzzz1,0000000000000001"] {
            let bytes = [&header(0)[..], bad].concat();
            for ty in [Type::Int, Type::Text, Type::Float, Type::Bool, Type::Uuid, Type::Json] {
                assert_eq!(decode_node(&bytes, Type::Int, Some(ty)), Err(NodeDecode::Corrupt), "{ty:?} {bad:?}");
            }
        }
    }

    #[test]
    fn ordered_nodes_are_written_sorted_by_value_then_key() {
        let entries: Vec<Entry> = [5, 3, 9, 1, 4].iter().map(|&id| (Value::Int(id), 10 + id as u64)).collect();
        let orders = vec![Some(Value::Int(20)), Some(Value::Int(10)), None, Some(Value::Int(20)), Some(Value::Null)];
        let node = decode_node(&encode_node(&entries, &orders), Type::Int, Some(Type::Int)).expect("decodes");
        let ids: Vec<i64> = node.entries.iter().filter_map(|(id, _)| id.as_i64()).collect();
        // NULL first (as `order_by` sorts it), ties by key, no value last.
        assert_eq!(ids, [4, 3, 1, 5, 9]);
        assert_eq!(
            node.orders,
            [Some(Value::Null), Some(Value::Int(10)), Some(Value::Int(20)), Some(Value::Int(20)), None]
        );
        assert_eq!(node.entries[0].1, 14, "each id keeps its own etag");
    }

    #[test]
    fn ordered_nodes_of_integer_keys_and_fixed_size_values_are_fixed_width() {
        let entries: Vec<Entry> = (1..=3).map(|id| (Value::Int(id * 7), 100 + id as u64)).collect();
        let orders = vec![Some(Value::Int(-5)), Some(Value::Null), Some(Value::Int(i64::MAX))];
        let bytes = encode_node(&entries, &orders);
        assert_eq!(bytes.len(), NODE_HEADER_LEN + 1 + 3 * FIXED_LEN);
        assert_eq!(bytes[NODE_HEADER_LEN], FIXED_MARK);
        let node = decode_node(&bytes, Type::Int, Some(Type::Int)).expect("decodes");
        assert_eq!(node.entries, [(Value::Int(14), 102), (Value::Int(7), 101), (Value::Int(21), 103)]);
        assert_eq!(node.orders, [Some(Value::Null), Some(Value::Int(-5)), Some(Value::Int(i64::MAX))]);
        let ordered = ordered_node(&bytes, Type::Int, Type::Int).expect("clean");
        assert_eq!(ordered.len(), 3);
        assert_eq!(ordered.get(2), Some((Value::Int(i64::MAX), (Value::Int(21), 103))));
        assert_eq!(ordered.get(3), None);
        // Appends after the records: decoded, not verified, and no page from the bytes.
        let mut appended = bytes.clone();
        appended.extend(entry_record(&Value::Int(7), 9));
        let node = decode_node(&appended, Type::Int, Some(Type::Int)).expect("decodes");
        assert_eq!((node.entries.len(), node.verified, node.orders.last()), (4, 3, Some(&None)));
        assert!(ordered_node(&appended, Type::Int, Type::Int).is_none());
        // Each fixed-size type round-trips; text values or keys keep the text layout.
        for (ty, v) in [
            (Type::Timestamp, Value::Timestamp(-1)),
            (Type::Float, Value::Float(-2.5)),
            (Type::Bool, Value::Bool(true)),
        ] {
            let bytes = encode_node(&entries[..1], &[Some(v.clone())]);
            assert_eq!(bytes[NODE_HEADER_LEN], FIXED_MARK, "{ty:?}");
            assert_eq!(decode_node(&bytes, Type::Int, Some(ty)).expect("decodes").orders, [Some(v)]);
        }
        let text = encode_node(&entries[..1], &[Some(Value::Text("a".into()))]);
        assert_eq!(text[NODE_HEADER_LEN], ORDER_MARK);
        // Damaged records are corrupt, not a panic: a short region, a bad flag, a
        // text key, a bool that is not 0 or 1.
        let region = &bytes[NODE_HEADER_LEN..];
        let short = [header(region.len() - 1), region[..region.len() - 1].to_vec()].concat();
        let mut flagged = bytes.clone();
        flagged[NODE_HEADER_LEN + 1] = 7;
        for bad in [short, flagged] {
            assert_eq!(decode_node(&bad, Type::Int, Some(Type::Int)), Err(NodeDecode::Corrupt));
            // Not found at once (the records are only counted), but never read.
            assert!(ordered_node(&bad, Type::Int, Type::Int).is_none_or(|node| node.get(0).is_none()));
        }
        assert_eq!(decode_node(&bytes, Type::Text, Some(Type::Int)), Err(NodeDecode::Corrupt));
        assert_eq!(decode_node(&bytes, Type::Int, Some(Type::Bool)), Err(NodeDecode::Corrupt));
    }

    #[test]
    fn headers_that_do_not_fit_their_entries_are_corrupt() {
        let one = encode_node(&[(Value::Int(1), 10)], &[]);
        for bad in [
            b"#2\n1,000000000000000a".to_vec(),
            b"#4\n".to_vec(),
            b"#3\n".to_vec(),
            b"#4zzzzzzzz0000000000000000\n".to_vec(),
            b"#3zzzzzzzz\n".to_vec(),
            // A nonce that is not hex, one too short, none in a version 4 header.
            b"#400000000000000000000000g\n".to_vec(),
            b"#40000000000000000000000000\n".to_vec(),
            b"#400000000\n".to_vec(),
            b"#300000005".to_vec(),
            // More verified bytes than there are.
            [&header(0xff)[..], &one[NODE_HEADER_LEN..]].concat(),
            // A verified length inside an entry.
            [&header(3)[..], &one[NODE_HEADER_LEN..]].concat(),
        ] {
            assert_eq!(
                decode_node(&bad, Type::Int, None),
                Err(NodeDecode::Corrupt),
                "{}",
                String::from_utf8_lossy(&bad)
            );
        }
    }

    #[test]
    fn integer_records_parse_as_from_str_does() {
        let cases = [
            "0",
            "-0",
            "+7",
            "1111",
            "-3",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "-9223372036854775809",
            "",
            "-",
            "+",
            "1a",
            " 1",
            "1 ",
            "--1",
            "+-1",
            "٣",
        ];
        for text in cases {
            assert_eq!(parse_int(text.as_bytes()), text.parse::<i64>().ok(), "{text:?}");
        }
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        // Garbage after a well-formed header (no verified entries), so that the
        // entries themselves are parsed.
        let node = |body: &[u8]| [&header(0)[..], body].concat();
        for bad in [
            &b"xyz"[..],
            b"12",
            b"99999999999999999999,0000000000000001",
            b"5:ab",
            b"12,000000000000000",
            b"12,000000000000000g",
            b"12,000000000000000F",
        ] {
            assert_eq!(
                decode_node(&node(bad), Type::Int, None),
                Err(NodeDecode::Corrupt),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(decode_node(&node(b"5:ab"), Type::Text, None), Err(NodeDecode::Corrupt));
        assert_eq!(decode_node(&node(b"999999999999999:ab"), Type::Text, None), Err(NodeDecode::Corrupt));
        assert!(
            decode_node(&node(b"12,000000000000000a"), Type::Int, None).is_ok(),
            "the header itself is well-formed"
        );
    }

    #[test]
    fn objects_of_another_shape_are_not_decoded() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct V1 {
            id: i64,
            label: String,
        }
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct V2 {
            id: i64,
            label: String,
            note: Option<String>,
        }
        let v1 = encode_object(&V1 { id: 1, label: "a".into() }, 0xAAAA).expect("encodes");
        assert_eq!(decode_object::<V1>(&v1, 0xAAAA), Some(V1 { id: 1, label: "a".into() }));
        // Another version's bytes, even ones postcard could misread, are a miss.
        assert_eq!(decode_object::<V2>(&v1, 0xBBBB), None);
        assert_eq!(decode_object::<V1>(&v1[1..], 0xAAAA), None, "no magic");
        assert_eq!(decode_object::<V1>(b"", 0xAAAA), None);
        // Equal bytes, equal etags; the reserved values are never produced.
        let again = encode_object(&V1 { id: 1, label: "a".into() }, 0xAAAA).expect("encodes");
        assert_eq!(etag(&v1), etag(&again));
        assert_ne!(etag(&v1), etag(&encode_object(&V1 { id: 1, label: "b".into() }, 0xAAAA).expect("encodes")));
    }
}
