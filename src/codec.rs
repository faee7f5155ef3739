//! How a state travels between instances: encoded to bytes by the old
//! holder (or the holder sending a checkpoint), decoded by the new one.
//!
//! A state that is serde (`Serialize + DeserializeOwned`) needs nothing:
//! [`StateCodec`] is implemented for it with postcard, and
//! [`TakeoverActor::encode_state`](crate::TakeoverActor::encode_state) and
//! [`decode_state`](crate::TakeoverActor::decode_state) use it by default.
//! A state that is not serde implements [`StateCodec`] itself:
//!
//! ```
//! use ractor_takeover::codec::StateCodec;
//! use ractor_takeover::StateCodecErr;
//!
//! /// Not serde: say, it wraps a handle that cannot be derived.
//! struct Tally(u32);
//!
//! impl StateCodec for Tally {
//!     fn encode(&self) -> Result<Vec<u8>, StateCodecErr> {
//!         Ok(self.0.to_le_bytes().to_vec())
//!     }
//!     fn decode(bytes: &[u8]) -> Result<Self, StateCodecErr> {
//!         let b = bytes.try_into().map_err(|_| StateCodecErr::Decode("want 4 bytes".into()))?;
//!         Ok(Tally(u32::from_le_bytes(b)))
//!     }
//! }
//! assert_eq!(Tally::decode(&Tally(7).encode().unwrap()).unwrap().0, 7);
//! ```
//!
//! A behaviour that wants another format for a serde state (or to send only
//! part of it) overrides `encode_state` and `decode_state` instead.
//!
//! Why a trait on the state with a blanket impl, and not a default method or
//! a codec type on the behaviour: a default `encode_state` body can only call
//! serde if the trait demands `State: Serialize`, which shuts non-serde states
//! out; an associated `type Codec = Postcard` default is not stable Rust
//! (associated type defaults); a required `type Codec` is one more line in
//! every impl. The blanket impl costs a serde state nothing, and Rust's
//! coherence rules let a crate implement [`StateCodec`] for its own non-serde
//! type (a foreign one needs a newtype).

pub mod bytes;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::StateCodecErr;

/// How a state turns into bytes and back: postcard for every serde type,
/// or a codec of your own for a state that is not serde.
pub trait StateCodec: Sized {
    /// Encodes the state.
    fn encode(&self) -> Result<Vec<u8>, StateCodecErr>;

    /// Decodes a state encoded by [`StateCodec::encode`]. Bad bytes must
    /// give an error, never a panic: they abort a takeover, and the old
    /// holder keeps the name and its state.
    fn decode(bytes: &[u8]) -> Result<Self, StateCodecErr>;
}

impl<T: Serialize + DeserializeOwned> StateCodec for T {
    fn encode(&self) -> Result<Vec<u8>, StateCodecErr> {
        encode_postcard(self)
    }

    fn decode(bytes: &[u8]) -> Result<Self, StateCodecErr> {
        decode_postcard(bytes)
    }
}

/// Encodes a serde value with postcard: what [`StateCodec`] does for a
/// serde state, for a codec of your own that reuses it (say, for the serde
/// part of a state).
///
/// Why postcard: it is maintained, compact and made for serde; bincode 3.0.0
/// on the registry is a non-functional release.
pub fn encode_postcard<S: Serialize>(state: &S) -> Result<Vec<u8>, StateCodecErr> {
    postcard::to_allocvec(state).map_err(|e| StateCodecErr::Encode(e.to_string()))
}

/// Decodes a postcard value, the inverse of [`encode_postcard`].
pub fn decode_postcard<S: DeserializeOwned>(bytes: &[u8]) -> Result<S, StateCodecErr> {
    postcard::from_bytes(bytes).map_err(|e| StateCodecErr::Decode(e.to_string()))
}

#[cfg(all(test, feature = "test-util"))]
mod tests;
