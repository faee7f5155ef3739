//! The heartbeat's messages on a session: a ping or pong travels as a
//! small postcard [`Wire`] record, the member list as its own cast; the
//! local messages never leave the node.

use ractor::message::{BoxedDowncastErr, SerializedMessage};

use super::HeartbeatMsg;
use crate::NodeName;

/// What a ping or pong carries on the session.
#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    from: NodeName,
    seq: u64,
    inc: u64,
    downs: u64,
    client: bool,
}

impl ractor::Message for HeartbeatMsg {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        if let Self::Members(members) = self {
            return Ok(SerializedMessage::Cast {
                variant: "members".into(),
                args: postcard::to_allocvec(&members).map_err(|_| BoxedDowncastErr)?,
                metadata: None,
            });
        }
        let (variant, wire) = match self {
            Self::Ping { from, seq, client } => (
                "ping",
                Wire {
                    from,
                    seq,
                    inc: 0,
                    downs: 0,
                    client,
                },
            ),
            Self::Pong {
                from,
                seq,
                inc,
                downs,
                client,
            } => (
                "pong",
                Wire {
                    from,
                    seq,
                    inc,
                    downs,
                    client,
                },
            ),
            _ => return Err(BoxedDowncastErr),
        };
        Ok(SerializedMessage::Cast {
            variant: variant.into(),
            args: postcard::to_allocvec(&wire).map_err(|_| BoxedDowncastErr)?,
            metadata: None,
        })
    }

    fn deserialize(bytes: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        let SerializedMessage::Cast { variant, args, .. } = bytes else {
            return Err(BoxedDowncastErr);
        };
        if variant == "members" {
            let members = postcard::from_bytes(&args).map_err(|_| BoxedDowncastErr)?;
            return Ok(Self::Members(members));
        }
        let w: Wire = postcard::from_bytes(&args).map_err(|_| BoxedDowncastErr)?;
        match variant.as_str() {
            "ping" => Ok(Self::Ping {
                from: w.from,
                seq: w.seq,
                client: w.client,
            }),
            "pong" => Ok(Self::Pong {
                from: w.from,
                seq: w.seq,
                inc: w.inc,
                downs: w.downs,
                client: w.client,
            }),
            _ => Err(BoxedDowncastErr),
        }
    }
}
