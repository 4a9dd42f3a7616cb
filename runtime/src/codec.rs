//! Byte formats of cached values.
//!
//! **Nodes**: a header that only a complete fill writes, then one record per id.
//! Writers append records with `append`, which memcached applies to whatever item is
//! there, including a lease placeholder (an empty item). A placeholder that received
//! appends therefore holds records but no header, and must read as a miss: it does
//! not list every id of the node, only those written since the lease was taken.
//! Records never start with the header's first byte, so a headerless value can never
//! be mistaken for a filled node.
//!
//! Record formats are self-delimiting so appends need no framing: an integer key is
//! its decimal digits and `,` (`1111,`); a text key is `<byte length>:<bytes>`.
//!
//! **Objects**: postcard (compact binary serde). The schema hash in every key keeps a
//! deploy from decoding old bytes as a new struct; a value that still fails to decode
//! is treated as a miss and repaired.

use memdex_grammar::decimal::Digits;
use memdex_grammar::{Type, Value};

/// The header of a completely filled node (version 1).
pub const NODE_HEADER: &[u8] = b"#1\n";

/// Why a node value could not be read; the executor answers from the database and
/// rewrites the node.
#[derive(Debug, PartialEq, Eq)]
pub enum NodeDecode {
    /// No header: a lease placeholder, possibly with appended records.
    Unfilled,
    /// Bytes that are not records of this key type.
    Corrupt,
}

/// Appends one id record.
pub fn push_id(out: &mut Vec<u8>, id: &Value) {
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

/// A complete node: header and the given ids.
pub fn encode_node(ids: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(NODE_HEADER.len() + ids.len() * 8);
    out.extend_from_slice(NODE_HEADER);
    for id in ids {
        push_id(&mut out, id);
    }
    out
}

/// The ids of a node, in stored order, duplicates included (appends may repeat an
/// id that is already there; readers dedupe and the next clean-up drops repeats).
pub fn decode_node(bytes: &[u8], key_type: Type) -> Result<Vec<Value>, NodeDecode> {
    let Some(mut rest) = bytes.strip_prefix(NODE_HEADER) else {
        return Err(NodeDecode::Unfilled);
    };
    let mut ids = Vec::new();
    while !rest.is_empty() {
        match key_type {
            Type::Text => {
                let colon = rest.iter().position(|&b| b == b':').ok_or(NodeDecode::Corrupt)?;
                let len: usize = parse_digits(&rest[..colon]).ok_or(NodeDecode::Corrupt)?;
                let body = rest.get(colon + 1..colon + 1 + len).ok_or(NodeDecode::Corrupt)?;
                let s = std::str::from_utf8(body).map_err(|_| NodeDecode::Corrupt)?;
                ids.push(Value::Text(s.to_owned()));
                rest = &rest[colon + 1 + len..];
            }
            _ => {
                let comma = rest.iter().position(|&b| b == b',').ok_or(NodeDecode::Corrupt)?;
                ids.push(Value::Int(parse_int(&rest[..comma]).ok_or(NodeDecode::Corrupt)?));
                rest = &rest[comma + 1..];
            }
        }
    }
    Ok(ids)
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

/// One id as an append payload.
pub fn id_record(id: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    push_id(&mut out, id);
    out
}

pub fn encode_object<T: serde::Serialize>(value: &T) -> Option<Vec<u8>> {
    postcard::to_stdvec(value).ok()
}

pub fn decode_object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    postcard::from_bytes(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_round_trip_for_both_key_types() {
        let ints = vec![Value::Int(1111), Value::Int(-3), Value::Int(0), Value::Int(i64::MAX), Value::Int(i64::MIN)];
        let encoded = encode_node(&ints);
        assert_eq!(encoded, format!("#1\n1111,-3,0,{},{},", i64::MAX, i64::MIN).into_bytes());
        assert_eq!(decode_node(&encode_node(&ints), Type::Int), Ok(ints));
        let texts = vec![Value::Text("a,b:c".into()), Value::Text(String::new()), Value::Text("ü\n#1".into())];
        assert_eq!(decode_node(&encode_node(&texts), Type::Text), Ok(texts));
    }

    #[test]
    fn appends_extend_a_filled_node_and_leave_a_placeholder_unfilled() {
        let mut node = encode_node(&[Value::Int(1)]);
        node.extend(id_record(&Value::Int(2)));
        assert_eq!(decode_node(&node, Type::Int), Ok(vec![Value::Int(1), Value::Int(2)]));
        let placeholder_with_append = id_record(&Value::Int(2));
        assert_eq!(decode_node(&placeholder_with_append, Type::Int), Err(NodeDecode::Unfilled));
        assert_eq!(decode_node(b"", Type::Int), Err(NodeDecode::Unfilled));
        let text_append = id_record(&Value::Text("#1\nx".into()));
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
        for bad in [&b"#1\nxyz"[..], b"#1\n12", b"#1\n99999999999999999999,", b"#1\n5:ab"] {
            assert_eq!(decode_node(bad, Type::Int), Err(NodeDecode::Corrupt), "{bad:?}");
        }
        assert_eq!(decode_node(b"#1\n5:ab", Type::Text), Err(NodeDecode::Corrupt));
        assert_eq!(decode_node(b"#1\n999999999999999:ab", Type::Text), Err(NodeDecode::Corrupt));
    }
}
