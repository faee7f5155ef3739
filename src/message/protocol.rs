//! The handover protocol between two instances of one name.

use serde::{Deserialize, Serialize};

use crate::{Claim, Epoch, RegistrationInfo, StateCodecErr};

/// The handover protocol, between two instances of one name.
///
/// ```text
///   new (standby)                 registry                 old (holder, epoch e)
///       | go(Takeover)               |                            |
///       |-- steal: epoch e' > e ---->|-- lookups resolve to new   |
///       |-- StateRequest{e, new} ------------------------------->| answers what came before,
///       |   buffers calls            |                            | encodes its state
///       |<------------------------------- StateReply{bytes} -----| then forwards every call
///       | decode, install, go(Takeover{from}),                    | that still reaches it
///       | serve buffered calls in order                           |
///       |-- HandoverDone ---------------------------------------->| unregisters, on_handed_over,
///       |                                                         | a standby again
///       |                                                         |
///   on decode error / timeout while old is alive:                 |
///       |-- HandoverAborted ------------------------------------->| serves again, with its state
///       |-- unregister e', forward buffered calls to old          |
///   on old gone (node down, died) before the state: run as Failover, report StateLost
///
///   no HandoverDone after pull_timeout (lost on the way?):         |
///       |<------------------------------- HandoverQuery ---------| asks again, every pull_timeout
///       |-- HandoverDone (if it installed that state) ----------->|
///   successor gone with no HandoverDone: with no newer holder, or once a
///   newer holder answers HandoverUnknown (only the successor can confirm),
///   the old holder takes a new epoch and runs go(Failover{from:
///   successor's node}) from the state it sent (what the successor served
///   since then may be lost; a newer holder meets it as a split brain)
/// ```
///
/// A state larger than `TakeoverConfig::state_part_bytes` travels as
/// `StatePart`s instead of one `StateReply` (or `MergeOffer`, or
/// `Checkpoint`), each acknowledged by a `StatePartAck`, at most two
/// unacknowledged; a part that does not continue the ones received aborts
/// the takeover as a state that does not decode does.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub(crate) enum HandoverMsg {
    /// New to old: send me your state (you hold at `holder_epoch`).
    StateRequest {
        /// The epoch the requester saw the old holder at.
        holder_epoch: Epoch,
        /// The requester's own (stolen) registration.
        requester: RegistrationInfo,
        /// The checkpoint or replica the requester holds, as `(holder
        /// epoch, seq)`: an old holder whose state has not changed since
        /// answers `StateUnchanged` instead of sending it again.
        have: Option<(Epoch, u64)>,
    },
    /// Old to new, instead of a `StateReply`: your replica `seq` of my
    /// state at `holder_epoch` is my state now (it was sent to you before
    /// this, on the same link); install it.
    StateUnchanged {
        /// The requester's epoch, to match the reply with its pull.
        requester_epoch: Epoch,
        /// The old holder's epoch.
        holder_epoch: Epoch,
        /// The replica that is the state.
        seq: u64,
    },
    /// Holder to standby, synchronous standby: the effect of the holder's
    /// calls up to `seq`. The standby stores it and answers `ReplicaAck`.
    Replica {
        /// The holder (the fence: a standby never stores a replica of an
        /// older epoch than the one it has).
        holder: RegistrationInfo,
        /// Its number within the holder's epoch (shared with checkpoints).
        seq: u64,
        /// Calls the holder had handled then.
        handled: u64,
        /// What it carries.
        body: ReplicaBody,
    },
    /// Standby to holder: what it stored of the holder's replicas.
    ReplicaAck {
        /// The holder epoch the replicas came from.
        holder_epoch: Epoch,
        /// The newest replica it holds from that epoch.
        seq: u64,
        /// The standby's node.
        standby: crate::NodeName,
        /// It could not apply a delta (it lacks the one before): send the
        /// whole state.
        need_full: bool,
    },
    /// Old to new: the state, or why not.
    StateReply {
        /// The requester's epoch, to match the reply with its pull.
        requester_epoch: Epoch,
        /// The encoded state, or why there is none.
        #[serde(with = "raw_bytes_result")]
        result: Result<Vec<u8>, ReplyErr>,
    },
    /// One part of a state larger than
    /// [`crate::TakeoverConfig::state_part_bytes`] (a takeover reply, a merge
    /// offer or a checkpoint), in order. Why parts: a frame over the
    /// receiver's inbound cap closes the whole session, and a state sent
    /// whole sits in memory once more in each hop's buffer and holds the
    /// link (heartbeats included) for as long as it takes. In parts, the
    /// receiver acknowledges each with `StatePartAck`, the sender keeps at
    /// most two ahead and frees its encoded copy once the last is out, and
    /// the receiver hands the state on only when it is complete.
    StatePart {
        /// The transfer the part belongs to: what the state is, and for whom.
        of: PartOf,
        /// Where the part starts in the encoded state.
        offset: u64,
        /// The encoded state's whole length.
        total: u64,
        /// The part's bytes.
        #[serde(with = "crate::codec::bytes")]
        bytes: Vec<u8>,
    },
    /// Receiver to sender: the first `received` bytes of the state are in.
    StatePartAck {
        /// The transfer acknowledged.
        of: PartOf,
        /// The receiving instance (the sender checks it is the one it sends to).
        receiver: RegistrationInfo,
        /// How many bytes of the state it has.
        received: u64,
    },
    /// New to old: the state is in, retire.
    HandoverDone {
        /// The new holder.
        successor: RegistrationInfo,
    },
    /// New to old: the takeover failed, serve again.
    HandoverAborted {
        /// The instance whose takeover failed.
        successor: RegistrationInfo,
    },
    /// Holder to a rival holder of the same name (one that is neither the
    /// predecessor it took over from nor its successor): here is my claim.
    /// It says "this is not a takeover", so neither side waits out
    /// `conflict_grace`, and it carries the lineage the resolver needs:
    /// both sides decide with the same two claims, so they agree.
    ///
    /// ```text
    ///   holder X                                   holder Y
    ///     |-- Rival{claim X, want_reply} ------------>| (Y holds from here if X ranks above it)
    ///     |<----------- Rival{claim Y, no reply} -----| both decide on (X, Y)
    ///   winner: holds its calls until the merge       loser: stops, yields:
    ///     |<----------- MergeOffer{state} ------------| forwards its held calls
    ///     | merge, serve the held calls               |
    ///     |------------ MergeDone ------------------->| unregisters, drains
    /// ```
    Rival {
        /// The sender's claim, the same in every `Rival` it sends this rival.
        claim: Claim,
        /// The sender has no claim from us yet: answer with ours.
        want_reply: bool,
    },
    /// Split-brain loser to winner: my state (or why none); I forward to you
    /// from now on.
    MergeOffer {
        /// The loser.
        loser: RegistrationInfo,
        /// The winner's epoch as the loser saw it.
        winner_epoch: Epoch,
        /// Where the state stands in the loser's tenure: its newest
        /// replica or checkpoint number and the calls it had handled. A
        /// winner that takes the state whole (`MergeOutcome::TookTheirs`)
        /// reports them as its failover's checkpoint.
        seq: u64,
        handled: u64,
        /// The loser's encoded state.
        #[serde(with = "raw_bytes_result")]
        result: Result<Vec<u8>, ReplyErr>,
    },
    /// Winner to loser: your state is in (or reported); retire.
    MergeDone {
        /// The loser.
        loser: RegistrationInfo,
    },
    /// Holder to standby: a checkpoint of the state (warm standby).
    Checkpoint {
        /// The holder.
        holder: RegistrationInfo,
        /// Its number within the holder's epoch.
        seq: u64,
        /// Calls the holder had handled when it took it.
        handled: u64,
        /// The encoded state.
        #[serde(with = "crate::codec::bytes")]
        bytes: Vec<u8>,
    },
    /// Old to new, when no `HandoverDone` came for a while (it may have been
    /// lost): did my state reach you? A successor that installed it answers
    /// `HandoverDone` again; one still pulling says nothing (its pull ends by
    /// itself, either way).
    HandoverQuery {
        /// The retiring holder that sent the state.
        old: RegistrationInfo,
        /// The registration the state was sent to.
        successor: RegistrationInfo,
    },
    /// Answer to a `HandoverQuery` from an instance that holds no state that
    /// came through `successor` (neither installed from the old holder nor
    /// taken over from `successor`).
    HandoverUnknown {
        /// The registration the query named.
        successor: RegistrationInfo,
        /// The answering instance's registration (`None`: it holds none).
        /// Why: the successor's own answer is final (it will never confirm
        /// a handover it has no state from), a newer holder's is not while
        /// the successor is still there to confirm.
        answerer: Option<RegistrationInfo>,
    },
}

/// The replicated envelope of synchronous standby: what one `Replica`
/// carries. A state larger than `state_part_bytes` goes as a `Checkpoint`
/// in parts instead (acknowledged with `ReplicaAck` all the same).
///
/// Why an envelope rather than the state's bytes alone: more than the
/// user's state has to reach the standby with each call. Exactly-once
/// retries keep a window of answered call keys with their replies
/// (`crate::dedup`), and the standby a failover starts must know every
/// call whose effect it holds, or a retry of an acknowledged call would
/// run a second time there. So the window's change rides beside the
/// image, stored with the very call whose effect it records.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub(crate) struct ReplicaBody {
    /// The user state, whole or as a delta.
    pub(crate) image: ReplicaImage,
    /// With a delta image: what the window of answered calls gained with
    /// it. `None` with a whole state, whose bytes carry the whole window
    /// (`crate::dedup::seal`); a delta without it is refused (the standby
    /// asks for the whole state).
    pub(crate) answered: Option<crate::dedup::WindowDelta>,
}

/// The user state in a `Replica`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum ReplicaImage {
    /// The whole encoded state.
    Full(#[serde(with = "crate::codec::bytes")] Vec<u8>),
    /// `TakeoverActor::take_delta`'s bytes, to apply on replica `seq - 1`.
    Delta(#[serde(with = "crate::codec::bytes")] Vec<u8>),
}

/// What a state sent in parts is, and who sends it: the message it stands
/// for, without the bytes. It also names the transfer: the requester's epoch
/// for a takeover, the loser and the winner's epoch for a merge, the holder
/// and the number for a checkpoint (fenced as the whole message is).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub(crate) enum PartOf {
    /// A takeover reply (`StateReply`) to the requester at this epoch.
    StateReply {
        /// The requester's epoch.
        requester_epoch: Epoch,
    },
    /// A split-brain loser's `MergeOffer`.
    MergeOffer {
        /// The loser (the sender, unless `via` is set).
        loser: RegistrationInfo,
        /// The winner's epoch as the loser saw it.
        winner_epoch: Epoch,
        /// As in `HandoverMsg::MergeOffer`.
        seq: u64,
        handled: u64,
        /// The sender when it is not the loser: a standby's entry in the
        /// standby group, offering the checkpoint of a loser that is gone
        /// (see `server::checkpoint`). The parts' acks go to it.
        via: Option<RegistrationInfo>,
    },
    /// A holder's `Checkpoint`.
    Checkpoint {
        /// The holder (the sender).
        holder: RegistrationInfo,
        /// Its number within the holder's epoch.
        seq: u64,
        /// Calls the holder had handled when it took it.
        handled: u64,
    },
}

/// `Result<Vec<u8>, ReplyErr>` with the bytes as one serde `bytes` value
/// (same variant order as `Result`).
mod raw_bytes_result {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::ReplyErr;

    #[derive(Serialize)]
    enum Out<'a> {
        Ok(#[serde(serialize_with = "crate::codec::bytes::serialize")] &'a [u8]),
        Err(&'a ReplyErr),
    }

    #[derive(Deserialize)]
    enum In {
        Ok(#[serde(deserialize_with = "crate::codec::bytes::deserialize")] Vec<u8>),
        Err(ReplyErr),
    }

    pub(super) fn serialize<S: Serializer>(
        v: &Result<Vec<u8>, ReplyErr>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Ok(b) => Out::Ok(b),
            Err(e) => Out::Err(e),
        }
        .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Result<Vec<u8>, ReplyErr>, D::Error> {
        Ok(match In::deserialize(d)? {
            In::Ok(b) => Ok(b),
            In::Err(e) => Err(e),
        })
    }
}

/// Why an old holder sent no state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub(crate) enum ReplyErr {
    /// Its state could not be encoded or was too large.
    State(StateCodecErr),
    /// It does not hold the name at the epoch the request named.
    Refused(String),
}
