//! A state sent between instances (a takeover or a merge): one size limit,
//! checked on both sides.

use super::TakeoverServer;
use crate::{StateCodecErr, TakeoverActor};

impl<A: TakeoverActor> TakeoverServer<A> {
    /// Encodes our state for another instance (a takeover or a merge),
    /// refusing one over `max_state_bytes`.
    pub(super) fn encode_for_transfer(&self, user: &A::State) -> Result<Vec<u8>, StateCodecErr> {
        let bytes = self.behaviour.encode_state(user)?;
        let max = self.config.max_state_bytes;
        if bytes.len() > max {
            return Err(StateCodecErr::TooLarge {
                bytes: bytes.len(),
                max,
            });
        }
        Ok(bytes)
    }

    /// Decodes a state another instance sent, refusing one over
    /// `max_state_bytes` before decoding it.
    pub(super) fn decode_transferred(&self, bytes: &[u8]) -> Result<A::State, StateCodecErr> {
        let max = self.config.max_state_bytes;
        if bytes.len() > max {
            return Err(StateCodecErr::TooLarge {
                bytes: bytes.len(),
                max,
            });
        }
        self.behaviour.decode_state(bytes)
    }
}
