//! Serde adapters for `serde_json::Value` fields (feature `json`).
//!
//! memdex caches objects in postcard, a compact format without type tags, and
//! `serde_json::Value` can only be read back by a format that says what each value
//! is. A JSON field is therefore cached as its JSON text: put
//! `#[serde(with = "memdex::json")]` on a `serde_json::Value` field and
//! `#[serde(with = "memdex::json::option")]` on an `Option<serde_json::Value>`
//! (`#[derive(Model)]` asks for it). Other serde formats then see a string too.
//!
//! ```
//! use memdex::Model;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Model, Clone, Debug, Serialize, Deserialize)]
//! struct Order {
//!     #[memdex(key)]
//!     id: i64,
//!     #[serde(with = "memdex::json")]
//!     details: serde_json::Value,
//!     #[serde(with = "memdex::json::option")]
//!     extra: Option<serde_json::Value>,
//! }
//! ```

use serde::{Deserialize, Deserializer, Serializer};

/// Writes the document as its JSON text.
pub fn serialize<S: Serializer>(value: &serde_json::Value, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&value.to_string())
}

/// Reads the document back from its JSON text.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<serde_json::Value, D::Error> {
    let text = String::deserialize(deserializer)?;
    serde_json::from_str(&text).map_err(serde::de::Error::custom)
}

/// The same for `Option<serde_json::Value>`: `None`, or the document's JSON text.
pub mod option {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `None`, or the document as its JSON text.
    pub fn serialize<S: Serializer>(value: &Option<serde_json::Value>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => serializer.serialize_some(&v.to_string()),
            None => serializer.serialize_none(),
        }
    }

    /// Reads `None`, or the document back from its JSON text.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<serde_json::Value>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        text.map(|t| serde_json::from_str(&t).map_err(serde::de::Error::custom)).transpose()
    }
}
