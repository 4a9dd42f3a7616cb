//! Not public API: the conversions behind [`text_enum!`](crate::text_enum).
//!
//! Enums stored as text: a field marked `#[memdex(text)]` holds an enum of unit
//! variants whose column is the variant's serde name (`#[serde(rename…)]` honoured),
//! made a column type by [`text_enum!`](crate::text_enum).

use std::fmt;

use memdex_grammar::Value;
use serde::ser::{Impossible, Serialize, Serializer};

/// Why a value is not a unit variant's name.
#[derive(Debug)]
pub struct NotAName(String);

impl fmt::Display for NotAName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotAName {}

impl serde::ser::Error for NotAName {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        NotAName(msg.to_string())
    }
}

/// The text of `value`: a unit variant's name, or a string.
pub fn to_text<T: Serialize + ?Sized>(value: &T) -> Result<String, NotAName> {
    value.serialize(Name)
}

/// The value of `text` as `T`: the unit variant of that name.
pub fn from_text<T: serde::de::DeserializeOwned>(text: String) -> Result<T, String> {
    use serde::de::IntoDeserializer;
    let deserializer: serde::de::value::StringDeserializer<serde::de::value::Error> = text.into_deserializer();
    T::deserialize(deserializer).map_err(|e| e.to_string())
}

/// The column value of an enum field: its variant's name as text. A variant with
/// data cannot be one (there is no text for it): it becomes NULL, which the
/// non-null column refuses, so the write fails rather than storing something else.
pub fn value<T: Serialize + ?Sized>(value: &T) -> Value {
    to_text(value).map_or(Value::Null, Value::Text)
}

/// A serializer that accepts only unit variants and strings, and returns the name.
struct Name;

fn refuse<T>(what: &str) -> Result<T, NotAName> {
    Err(NotAName(format!("{what} is not a unit variant; a text enum stores only variants without data")))
}

macro_rules! refuse_scalars {
    ($($method:ident($t:ty)),*) => {$(
        fn $method(self, _: $t) -> Result<String, NotAName> {
            refuse(stringify!($t))
        }
    )*};
}

impl Serializer for Name {
    type Ok = String;
    type Error = NotAName;
    type SerializeSeq = Impossible<String, NotAName>;
    type SerializeTuple = Impossible<String, NotAName>;
    type SerializeTupleStruct = Impossible<String, NotAName>;
    type SerializeTupleVariant = Impossible<String, NotAName>;
    type SerializeMap = Impossible<String, NotAName>;
    type SerializeStruct = Impossible<String, NotAName>;
    type SerializeStructVariant = Impossible<String, NotAName>;

    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<String, NotAName> {
        Ok(variant.to_owned())
    }

    fn serialize_str(self, v: &str) -> Result<String, NotAName> {
        Ok(v.to_owned())
    }

    refuse_scalars!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str)
    );

    fn serialize_none(self) -> Result<String, NotAName> {
        refuse("None")
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, NotAName> {
        refuse("Some")
    }

    fn serialize_unit(self) -> Result<String, NotAName> {
        refuse("()")
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result<String, NotAName> {
        v.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: &T,
    ) -> Result<String, NotAName> {
        refuse(variant)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotAName> {
        refuse("a sequence")
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotAName> {
        refuse("a tuple")
    }

    fn serialize_tuple_struct(self, name: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, NotAName> {
        refuse(name)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotAName> {
        refuse(variant)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotAName> {
        refuse("a map")
    }

    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Self::SerializeStruct, NotAName> {
        refuse(name)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotAName> {
        refuse(variant)
    }
}
