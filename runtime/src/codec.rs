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
//! **Nodes**: a header that only a complete fill writes, then one entry per id. An
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
//! Entry formats are self-delimiting so appends need no framing: an integer key is
//! its decimal digits and `,` (`1111,`), a text key `<byte length>:<bytes>`, each
//! followed by the etag as 16 lowercase hex digits.

use memdex_grammar::decimal::Digits;
use memdex_grammar::{Type, Value};

/// The header of a completely filled node (version 2: entries carry etags).
pub const NODE_HEADER: &[u8] = b"#2\n";

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
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(HEX[((etag >> (shift * 4)) & 0xf) as usize]);
    }
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
        Value::Text(s) => {
            push_digits(out, s.len() as u64);
            out.push(b':');
            out.extend_from_slice(s.as_bytes());
        }
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

/// A complete node: header and the given entries.
pub fn encode_node(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(NODE_HEADER.len() + entries.len() * 24);
    out.extend_from_slice(NODE_HEADER);
    for (id, etag) in entries {
        push_entry(&mut out, id, *etag);
    }
    out
}

/// The entries of a node, in stored order, repeats included (a write appends its
/// entry whether or not the node lists the id already; readers resolve them).
pub fn decode_node(bytes: &[u8], key_type: Type) -> Result<Vec<Entry>, NodeDecode> {
    let Some(mut rest) = bytes.strip_prefix(NODE_HEADER) else {
        return Err(NodeDecode::Unfilled);
    };
    let mut entries = Vec::with_capacity(rest.len() / 24);
    while !rest.is_empty() {
        let (id, after) = match key_type {
            Type::Text => {
                let colon = rest.iter().position(|&b| b == b':').ok_or(NodeDecode::Corrupt)?;
                let len: usize = parse_digits(&rest[..colon]).ok_or(NodeDecode::Corrupt)?;
                let body = rest.get(colon + 1..colon + 1 + len).ok_or(NodeDecode::Corrupt)?;
                let s = std::str::from_utf8(body).map_err(|_| NodeDecode::Corrupt)?;
                (Value::Text(s.to_owned()), &rest[colon + 1 + len..])
            }
            _ => {
                let comma = rest.iter().position(|&b| b == b',').ok_or(NodeDecode::Corrupt)?;
                (Value::Int(parse_int(&rest[..comma]).ok_or(NodeDecode::Corrupt)?), &rest[comma + 1..])
            }
        };
        let hex = after.get(..16).ok_or(NodeDecode::Corrupt)?;
        entries.push((id, parse_hex(hex).ok_or(NodeDecode::Corrupt)?));
        rest = &after[16..];
    }
    Ok(entries)
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

    #[test]
    fn nodes_round_trip_for_both_key_types() {
        let ints = vec![
            (Value::Int(1111), 7),
            (Value::Int(-3), u64::MAX - 1),
            (Value::Int(0), 1),
            (Value::Int(i64::MAX), UNKNOWN_ETAG),
            (Value::Int(i64::MIN), DELETED_ETAG),
        ];
        let encoded = encode_node(&ints);
        assert!(encoded.starts_with(b"#2\n1111,0000000000000007-3,fffffffffffffffe"));
        assert_eq!(decode_node(&encoded, Type::Int), Ok(ints));
        let texts =
            vec![(Value::Text("a,b:c".into()), 5), (Value::Text(String::new()), 6), (Value::Text("ü\n#2".into()), 9)];
        assert_eq!(decode_node(&encode_node(&texts), Type::Text), Ok(texts));
    }

    #[test]
    fn appends_extend_a_filled_node_and_leave_a_placeholder_unfilled() {
        let mut node = encode_node(&[(Value::Int(1), 10)]);
        node.extend(entry_record(&Value::Int(2), 20));
        node.extend(entry_record(&Value::Int(1), 11));
        assert_eq!(
            decode_node(&node, Type::Int),
            Ok(vec![(Value::Int(1), 10), (Value::Int(2), 20), (Value::Int(1), 11)])
        );
        let placeholder_with_append = entry_record(&Value::Int(2), 20);
        assert_eq!(decode_node(&placeholder_with_append, Type::Int), Err(NodeDecode::Unfilled));
        assert_eq!(decode_node(b"", Type::Int), Err(NodeDecode::Unfilled));
        let text_append = entry_record(&Value::Text("#2\nx".into()), 3);
        assert_eq!(decode_node(&text_append, Type::Text), Err(NodeDecode::Unfilled));
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
        for bad in [
            &b"#2\nxyz"[..],
            b"#2\n12",
            b"#2\n99999999999999999999,0000000000000001",
            b"#2\n5:ab",
            b"#2\n12,000000000000000",
            b"#2\n12,000000000000000g",
            b"#2\n12,000000000000000F",
        ] {
            assert_eq!(decode_node(bad, Type::Int), Err(NodeDecode::Corrupt), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(decode_node(b"#2\n5:ab", Type::Text), Err(NodeDecode::Corrupt));
        assert_eq!(decode_node(b"#2\n999999999999999:ab", Type::Text), Err(NodeDecode::Corrupt));
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
