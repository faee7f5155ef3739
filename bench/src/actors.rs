//! Plain actors on every node: Echo (the plain `ractor_cluster` baseline)
//! and Control (the parent's hands on a node), and their envelope message.

use super::*;

/// A plain request for Echo and Control: an operation, raw argument bytes and
/// a byte reply port. Its wire form is ractor's own `SerializedMessage`, with
/// nothing added: `args` and the reply travel as they are.
pub(crate) struct Envelope {
    pub(crate) op: String,
    pub(crate) args: Vec<u8>,
    pub(crate) reply: Option<RpcReplyPort<Vec<u8>>>,
}

impl ractor::Message for Envelope {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        Ok(match self.reply {
            Some(reply) => SerializedMessage::Call {
                variant: self.op,
                args: self.args,
                reply,
                metadata: None,
            },
            None => SerializedMessage::Cast {
                variant: self.op,
                args: self.args,
                metadata: None,
            },
        })
    }

    fn deserialize(bytes: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        match bytes {
            SerializedMessage::Call {
                variant,
                args,
                reply,
                ..
            } => Ok(Self {
                op: variant,
                args,
                reply: Some(reply),
            }),
            SerializedMessage::Cast { variant, args, .. } => Ok(Self {
                op: variant,
                args,
                reply: None,
            }),
            SerializedMessage::CallReply(..) => Err(BoxedDowncastErr),
        }
    }
}

/// Calls a plain actor (local or remote) with an [`Envelope`].
pub(crate) async fn envelope_call(
    to: &ActorRef<Envelope>,
    op: &str,
    args: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, AnyErr> {
    let outcome = to
        .call(
            |reply| Envelope {
                op: op.to_string(),
                args,
                reply: Some(reply),
            },
            Some(timeout),
        )
        .await;
    match outcome {
        Ok(CallResult::Success(bytes)) => Ok(bytes),
        Ok(CallResult::Timeout) => Err(format!("{op}: timed out after {timeout:?}").into()),
        Ok(CallResult::SenderError) => Err(format!("{op}: no reply (actor gone)").into()),
        Err(_) => Err(format!("{op}: could not send").into()),
    }
}

/// `echo` answers with its payload; `sink` answers with the payload's length.
pub(crate) struct Echo;

impl Actor for Echo {
    type Msg = Envelope;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Envelope>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Envelope>,
        msg: Envelope,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let Some(reply) = msg.reply {
            let answer = match msg.op.as_str() {
                "sink" => (msg.args.len() as u64).to_le_bytes().to_vec(),
                _ => msg.args,
            };
            let _ = reply.send(answer);
        }
        Ok(())
    }
}

/// The node's `bench` instance (a standby again after it retires).
pub(crate) type Slot = Arc<Mutex<Option<TakeoverRef<Bench>>>>;

/// What a `takeover` through Control did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TakeoverOutcome {
    /// The new holder's own pause (steal until the buffered calls were served).
    pub(crate) pause_us: u64,
    pub(crate) state_bytes: u64,
    pub(crate) buffered: u64,
    /// The whole `takeover` call on the node.
    pub(crate) total_us: u64,
    /// How long Control waited for its node's standby to be ready.
    pub(crate) waited_us: u64,
}

/// A node's memory, from `/proc/self/status`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Mem {
    pub(crate) hwm_kb: u64,
    pub(crate) rss_kb: u64,
}

/// Every Control op answers `Result<T, String>` in postcard.
pub(crate) struct Control;

/// The node's `bench` and `bench_sync` instances.
type Slots = (Slot, Slot);

impl Actor for Control {
    type Msg = Envelope;
    type State = Slots;
    type Arguments = Slots;

    async fn pre_start(
        &self,
        _: ActorRef<Envelope>,
        slots: Slots,
    ) -> Result<Slots, ActorProcessingErr> {
        Ok(slots)
    }

    async fn handle(
        &self,
        _: ActorRef<Envelope>,
        msg: Envelope,
        (slot, sync_slot): &mut Slots,
    ) -> Result<(), ActorProcessingErr> {
        let Some(reply) = msg.reply else {
            return Ok(());
        };
        let answer = match msg.op.as_str() {
            "takeover" => postcard::to_allocvec(&ctl_takeover(slot, &msg.args).await),
            "takeover_sync" => postcard::to_allocvec(&ctl_takeover(sync_slot, &msg.args).await),
            "raw" => postcard::to_allocvec(&ctl_raw(&msg.args).await),
            "stats" => postcard::to_allocvec(&ctl_stats(&msg.args)),
            other => postcard::to_allocvec(&Err::<(), String>(format!("unknown op {other}"))),
        };
        let _ = reply.send(answer?);
        Ok(())
    }
}

/// Waits (bounded) for this node's instance to be a standby, then takes over.
pub(crate) async fn ctl_takeover(slot: &Slot, args: &[u8]) -> Result<TakeoverOutcome, String> {
    let timeout_ms: u64 = postcard::from_bytes(args).map_err(|e| e.to_string())?;
    let asked = Instant::now();
    let deadline = asked + Duration::from_secs(30);
    let instance = loop {
        let current = slot.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(instance) = current {
            let st = instance.status(Duration::from_secs(1)).await.ok();
            if st.is_some_and(|s| s.phase == Phase::Standby) {
                break instance;
            }
        }
        if Instant::now() >= deadline {
            return Err("no standby instance on this node within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let started = Instant::now();
    let report = instance
        .takeover(Duration::from_millis(timeout_ms))
        .await
        .map_err(|e| e.to_string())?;
    Ok(TakeoverOutcome {
        pause_us: report.pause.as_micros() as u64,
        state_bytes: report.state_bytes as u64,
        buffered: report.buffered as u64,
        total_us: started.elapsed().as_micros() as u64,
        waited_us: (started - asked).as_micros() as u64,
    })
}

/// Times `reps` plain calls carrying `bytes` bytes to node `to`'s Echo (the
/// reply is 8 bytes), in microseconds. The payload is made before the clock.
pub(crate) async fn ctl_raw(args: &[u8]) -> Result<Vec<u64>, String> {
    let (to, bytes, reps): (String, u64, u32) =
        postcard::from_bytes(args).map_err(|e| e.to_string())?;
    let echo = find_member(&format!("echo|{to}"), Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    // One more first, as a warm-up: not recorded.
    for i in 0..=reps.min(1000) {
        let payload = vec![0x5A; bytes as usize];
        let t = Instant::now();
        let answer = envelope_call(&echo, "sink", payload, CALL_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        if i > 0 {
            out.push(t.elapsed().as_micros() as u64);
        }
        if answer != bytes.to_le_bytes() {
            return Err("the sink answered another length".into());
        }
    }
    Ok(out)
}

/// This process's peak and current RSS; with `reset`, then resets the peak.
pub(crate) fn ctl_stats(args: &[u8]) -> Result<Mem, String> {
    let reset: bool = postcard::from_bytes(args).map_err(|e| e.to_string())?;
    let mem = read_mem("self")?;
    if reset {
        std::fs::write("/proc/self/clear_refs", "5").map_err(|e| e.to_string())?;
    }
    Ok(mem)
}

pub(crate) fn read_mem(pid: &str) -> Result<Mem, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(Mem {
        hwm_kb: field("VmHWM:"),
        rss_kb: field("VmRSS:"),
    })
}

/// The first member of `group` in the bench scope, waiting (bounded) for it.
pub(crate) async fn find_member(group: &str, wait: Duration) -> Result<ActorRef<Envelope>, AnyErr> {
    let deadline = Instant::now() + wait;
    loop {
        let cells: Vec<ActorCell> = pg::get_scoped_members(&SCOPE.to_string(), &group.to_string());
        if let Some(cell) = cells.into_iter().next() {
            return Ok(cell.into());
        }
        if Instant::now() >= deadline {
            return Err(format!("no member of {group:?} after {wait:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
