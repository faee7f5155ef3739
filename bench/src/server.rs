//! The benchmark server: a `TakeoverActor` whose state is a blob of a
//! chosen size plus, per client, the sequence numbers it applied.

use super::*;

/// What clients send.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum BenchMsg {
    /// Count one call of `client`, numbered `seq` (1, 2, ... per client).
    Incr { client: u32, seq: u64 },
    /// Replace the blob with `bytes` bytes made on the holder.
    SetBlob { bytes: u64 },
    /// The whole state but the blob.
    Get,
    /// Answer with the payload (the handle's round trip).
    Ping {
        #[serde(with = "ractor_takeover::codec::bytes")]
        payload: Vec<u8>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum BenchReply {
    Count {
        /// Calls counted so far, all clients.
        counter: u64,
        /// Calls of this client handled so far.
        handled: u64,
        /// Who answered.
        node: String,
        /// Under which epoch (0: none), so that a stale holder's answer
        /// shows (the hung-holder series).
        epoch: u64,
    },
    Blob {
        len: u64,
    },
    State {
        counter: u64,
        blob_len: u64,
        clients: Vec<(u32, ClientRec)>,
    },
    Pong {
        #[serde(with = "ractor_takeover::codec::bytes")]
        payload: Vec<u8>,
    },
}

/// One client's calls as the state recorded them.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct ClientRec {
    /// The highest `seq` handled.
    pub(crate) last_seq: u64,
    /// Calls handled (duplicates included).
    pub(crate) handled: u64,
    /// Calls whose `seq` was not above `last_seq`: handled twice or out of order.
    pub(crate) dups: u64,
}

/// The state that moves: a counter, per-client records, and a blob.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct BenchState {
    pub(crate) counter: u64,
    pub(crate) clients: BTreeMap<u32, ClientRec>,
    #[serde(with = "ractor_takeover::codec::bytes")]
    pub(crate) blob: Vec<u8>,
    /// What changed since the last delta (synchronous standby, see
    /// `take_delta`): the clients whose record changed, and whether the
    /// blob did. Not part of the state.
    #[serde(skip)]
    pub(crate) touched: BTreeSet<u32>,
    #[serde(skip)]
    pub(crate) blob_changed: bool,
}

/// A change of `BenchState`: the counter and the changed client records.
#[derive(Serialize, Deserialize)]
struct BenchDelta {
    counter: u64,
    clients: Vec<(u32, ClientRec)>,
}

pub(crate) struct Bench;

impl TakeoverActor for Bench {
    type Msg = BenchMsg;
    type Reply = BenchReply;
    type State = BenchState;
    type Arguments = ();
    type Info = ();

    async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<BenchState, ActorProcessingErr> {
        Ok(BenchState::default())
    }

    async fn handle(
        &self,
        ctx: &TakeoverCtx<Self>,
        msg: BenchMsg,
        state: &mut BenchState,
    ) -> Result<BenchReply, ActorProcessingErr> {
        Ok(match msg {
            BenchMsg::Incr { client, seq } => {
                let rec = state.clients.entry(client).or_default();
                if seq <= rec.last_seq {
                    rec.dups += 1;
                }
                rec.last_seq = rec.last_seq.max(seq);
                rec.handled += 1;
                state.counter += 1;
                state.touched.insert(client);
                BenchReply::Count {
                    counter: state.counter,
                    handled: rec.handled,
                    node: ctx.node().to_string(),
                    epoch: ctx.epoch().unwrap_or(0),
                }
            }
            BenchMsg::SetBlob { bytes } => {
                state.blob = vec![0xA5; bytes as usize];
                state.blob_changed = true;
                BenchReply::Blob { len: bytes }
            }
            BenchMsg::Get => BenchReply::State {
                counter: state.counter,
                blob_len: state.blob.len() as u64,
                clients: state.clients.iter().map(|(k, v)| (*k, *v)).collect(),
            },
            BenchMsg::Ping { payload } => BenchReply::Pong { payload },
        })
    }

    /// The counter and the touched records; a new blob goes whole (the
    /// delta would be as big as the state).
    fn take_delta(&self, state: &mut BenchState) -> Option<Result<Vec<u8>, StateCodecErr>> {
        let touched = std::mem::take(&mut state.touched);
        if std::mem::take(&mut state.blob_changed) {
            return None;
        }
        let delta = BenchDelta {
            counter: state.counter,
            clients: touched
                .into_iter()
                .filter_map(|c| state.clients.get(&c).map(|r| (c, *r)))
                .collect(),
        };
        Some(ractor_takeover::codec::encode_postcard(&delta))
    }

    fn apply_delta(&self, state: &mut BenchState, delta: &[u8]) -> Result<(), StateCodecErr> {
        let delta: BenchDelta = ractor_takeover::codec::decode_postcard(delta)?;
        state.counter = delta.counter;
        state.clients.extend(delta.clients);
        Ok(())
    }
}
