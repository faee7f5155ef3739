//! The token actor: one per registration, the pg member that remote nodes see.

use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};

use crate::{NodeId, RegistrationInfo};

const PREFIX: &str = "ractor_takeover|reg|";

/// The token's spawn name: it carries the registration to every node, since a
/// remote proxy keeps its actor's spawn name and pg keeps nothing else.
pub(crate) fn actor_name(info: &RegistrationInfo) -> String {
    format!("{PREFIX}{}|{}|{}", info.epoch, info.node, info.name)
}

/// Reads a registration back from a token's name. The name comes last, so it
/// may contain anything; node names must not contain `|`.
pub(crate) fn parse_name(name: &str) -> Option<RegistrationInfo> {
    let mut parts = name.strip_prefix(PREFIX)?.splitn(3, '|');
    let epoch = parts.next()?.parse().ok()?;
    let node = NodeId::new(parts.next()?);
    let name = parts.next()?.to_string();
    Some(RegistrationInfo { name, epoch, node })
}

/// Passes every message on to the instance, still serialized: the token does
/// not know the instance's message type, and does not need to.
pub(crate) struct Token;

pub(crate) struct TokenMsg(SerializedMessage);

impl ractor::Message for TokenMsg {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        Ok(self.0)
    }

    fn deserialize(bytes: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        Ok(Self(bytes))
    }
}

impl Actor for Token {
    type Msg = TokenMsg;
    type State = ActorCell;
    type Arguments = ActorCell;

    async fn pre_start(
        &self,
        _myself: ActorRef<TokenMsg>,
        instance: ActorCell,
    ) -> Result<ActorCell, ActorProcessingErr> {
        Ok(instance)
    }

    async fn handle(
        &self,
        myself: ActorRef<TokenMsg>,
        msg: TokenMsg,
        instance: &mut ActorCell,
    ) -> Result<(), ActorProcessingErr> {
        if instance.send_serialized(msg.0).is_err() {
            // The instance retired or died; a call's byte port drops here and
            // its caller gets `CallErr::NoReply`.
            tracing::debug!(token = ?myself.get_name(), "instance gone; message dropped");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names round-trip, a name with the separator in it included; other
    /// actors' names are not tokens.
    #[test]
    fn names_round_trip() {
        let info = RegistrationInfo {
            name: "lock|manager".into(),
            epoch: 42,
            node: NodeId::new("b"),
        };
        assert_eq!(parse_name(&actor_name(&info)), Some(info));
        assert_eq!(parse_name("something_else"), None);
        assert_eq!(parse_name("ractor_takeover|reg|x|b|n"), None);
    }
}
