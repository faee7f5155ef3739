//! Byte vectors as one serde byte string, for states that hold big blobs.
//!
//! serde sends a `Vec<u8>` through its generic sequence path, so postcard
//! (and most formats) handle it one byte at a time: a 64 MiB blob costs
//! hundreds of milliseconds each way. Mark such fields
//! `#[serde(with = "ractor_takeover::codec::bytes")]` and they travel as one byte
//! string. (postcard writes both forms the same on the wire.)

use serde::{Deserializer, Serializer};

/// Serializes bytes as one byte string.
pub fn serialize<S: Serializer, T: AsRef<[u8]>>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(v.as_ref())
}

/// Deserializes one byte string into a `Vec<u8>`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a byte string")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
    }
    d.deserialize_byte_buf(Visitor)
}
