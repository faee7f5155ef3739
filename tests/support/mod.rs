//! Shared helpers for the integration tests: a counter server, an event
//! watcher, a restarting supervisor and condition polling. Real node
//! processes and their helpers are in `ractor_takeover_testkit`.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_takeover::codec::decode_postcard;
use ractor_takeover::event::{EventHub, EventKind, TakeoverEvent};
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::registry::RegistrationInfo;
use ractor_takeover::status::Phase;
use ractor_takeover::*;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Generous: these deadlines catch hangs, they do not measure speed.
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub const NAME: &str = "counter";

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "ractor_takeover=info".into()),
        )
        .with_test_writer()
        .try_init();
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CounterMsg {
    Add(u64),
    Get,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CounterState {
    pub total: u64,
    pub calls: u64,
}

/// A counter; `reject_decode` makes this instance refuse any transferred
/// state; `merge_adds` makes a split-brain winner add the loser's counts.
#[derive(Clone, Default)]
pub struct Counter {
    pub reject_decode: bool,
    pub merge_adds: bool,
}

impl TakeoverActor for Counter {
    type Msg = CounterMsg;
    type Reply = CounterState;
    type State = CounterState;
    type Arguments = ();
    type Info = ();

    async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<CounterState, ActorProcessingErr> {
        Ok(CounterState::default())
    }

    async fn handle(
        &self,
        _: &TakeoverCtx<Self>,
        msg: CounterMsg,
        state: &mut CounterState,
    ) -> Result<CounterState, ActorProcessingErr> {
        if let CounterMsg::Add(n) = msg {
            state.total += n;
            state.calls += 1;
        }
        Ok(state.clone())
    }

    async fn merge(
        &self,
        _: &TakeoverCtx<Self>,
        mine: &mut CounterState,
        theirs: CounterState,
        _: &RegistrationInfo,
    ) -> Result<MergeOutcome, ActorProcessingErr> {
        if !self.merge_adds {
            return Ok(MergeOutcome::KeptWinner);
        }
        mine.total += theirs.total;
        mine.calls += theirs.calls;
        Ok(MergeOutcome::Merged)
    }
    fn decode_state(&self, bytes: &[u8]) -> Result<CounterState, StateCodecErr> {
        if self.reject_decode {
            return Err(StateCodecErr::Decode(
                "this instance rejects every state".into(),
            ));
        }
        decode_postcard(bytes)
    }
}

pub fn server(
    cluster: &FakeCluster,
    node: &str,
    config: &TakeoverConfig,
) -> TakeoverServer<Counter> {
    TakeoverServer::new(
        NAME,
        Counter::default(),
        cluster.registry(node),
        config.clone(),
    )
}

pub async fn spawn(
    cluster: &FakeCluster,
    node: &str,
    config: &TakeoverConfig,
) -> TakeoverRef<Counter> {
    server(cluster, node, config)
        .spawn(())
        .await
        .expect("spawn")
        .0
}

/// Starts a takeover by `instance` in the background, to act while it runs.
pub fn start_takeover(
    instance: &TakeoverRef<Counter>,
) -> tokio::task::JoinHandle<Result<HandoverReport, TakeoverErr>> {
    let instance = instance.clone();
    tokio::spawn(async move { instance.takeover(TIMEOUT).await })
}

pub fn client(cluster: &FakeCluster, node: &str) -> GlobalClient<Counter> {
    GlobalClient::new(NAME, cluster.registry(node))
}

pub async fn phase(instance: &TakeoverRef<Counter>) -> Option<Phase> {
    instance.status(TIMEOUT).await.ok().map(|s| s.phase)
}

/// Polls `cond` until it holds; panics with `what` after [`TIMEOUT`].
pub async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until every up node's view resolves `NAME` to a holder on `node`.
pub async fn wait_holder_everywhere(cluster: &FakeCluster, node: &str) {
    wait_until(&format!("every view resolves the holder to {node}"), || {
        let holders = cluster.holders(NAME);
        async move {
            holders
                .values()
                .all(|h| h.as_ref().is_some_and(|h| h.node.as_str() == node))
        }
    })
    .await
}

/// Reads a hub's events and waits for the ones a test expects.
pub struct Watcher {
    rx: broadcast::Receiver<TakeoverEvent>,
}

impl Watcher {
    pub fn new(hub: &EventHub) -> Self {
        Self {
            rx: hub.subscribe(),
        }
    }

    /// The next event (on any node) that `pred` accepts; panics after [`TIMEOUT`].
    pub async fn wait_for(
        &mut self,
        what: &str,
        pred: impl Fn(&TakeoverEvent) -> bool,
    ) -> TakeoverEvent {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Ok(ev)) if pred(&ev) => return ev,
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(e)) => panic!("event hub closed while waiting for {what}: {e}"),
                Err(_) => panic!("timed out waiting for event: {what}"),
            }
        }
    }
}

pub fn on(ev: &TakeoverEvent, node: &str) -> bool {
    ev.node.as_str() == node
}

/// A supervisor that restarts its `TakeoverServer<Counter>` child whenever it
/// dies, like a one_for_one supervisor, and reports each new child.
pub struct Restarter;

pub struct RestarterArgs {
    pub cluster: FakeCluster,
    pub node: String,
    pub config: TakeoverConfig,
    pub children: tokio::sync::mpsc::UnboundedSender<TakeoverRef<Counter>>,
}

impl Restarter {
    async fn start_child(
        myself: &ActorRef<()>,
        args: &RestarterArgs,
    ) -> Result<(), ActorProcessingErr> {
        let (child, _) = server(&args.cluster, &args.node, &args.config)
            .spawn_linked((), myself.get_cell())
            .await?;
        let _ = args.children.send(child);
        Ok(())
    }
}

impl Actor for Restarter {
    type Msg = ();
    type State = RestarterArgs;
    type Arguments = RestarterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        args: RestarterArgs,
    ) -> Result<RestarterArgs, ActorProcessingErr> {
        Self::start_child(&myself, &args).await?;
        Ok(args)
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        state: &mut RestarterArgs,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(..) | SupervisionEvent::ActorTerminated(..) => {
                tracing::info!("--- supervisor restarts the instance on {}", state.node);
                Self::start_child(&myself, state).await
            }
            _ => Ok(()),
        }
    }
}

/// Puts a call straight into `instance`'s mailbox (synchronously, so calls
/// sent one after another are queued in that order) and returns its reply.
pub fn send_call(
    instance: &TakeoverRef<Counter>,
    msg: CounterMsg,
) -> ractor::concurrency::OneshotReceiver<Result<CounterState, CallErr>> {
    let (tx, rx) = ractor::concurrency::oneshot();
    instance
        .send_call(msg, tx.into())
        .expect("instance takes messages");
    rx
}

/// Under `tokio::time::pause()`, lets every task run until all are idle or
/// waiting on a timer (the paused clock only jumps when nothing else can run).
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

// --- Helpers for the placement tests ---

impl Watcher {
    /// Every event published since the last read, without waiting. Panics if
    /// the watcher lagged (an exact count of events would then be wrong).
    pub fn drain(&mut self) -> Vec<TakeoverEvent> {
        let mut out = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(ev) => out.push(ev),
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    panic!("the watcher lagged and lost {n} events")
                }
                Err(_) => return out,
            }
        }
    }

    /// Waits for the next `Registered` event on `node` and returns its start type.
    pub async fn registered(&mut self, node: &str) -> StartType {
        let ev = self
            .wait_for(&format!("{node} registers"), |e| {
                on(e, node) && matches!(e.kind, EventKind::Registered { .. })
            })
            .await;
        match ev.kind {
            EventKind::Registered { start } => start,
            _ => unreachable!(),
        }
    }

    /// Waits for the next `Standby` event on `node` and returns the holder it saw.
    pub async fn standby(&mut self, node: &str) -> Option<RegistrationInfo> {
        let ev = self
            .wait_for(&format!("{node} is standby"), |e| {
                on(e, node) && matches!(e.kind, EventKind::Standby { .. })
            })
            .await;
        match ev.kind {
            EventKind::Standby { holder } => holder,
            _ => unreachable!(),
        }
    }
}

/// The `Registered` events in `events`, as `(node, start)`.
pub fn registrations(events: &[TakeoverEvent]) -> Vec<(String, StartType)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Registered { start } => Some((e.node.as_str().to_string(), start.clone())),
            _ => None,
        })
        .collect()
}

/// Polls `instance` until it reports `want`; panics after [`TIMEOUT`].
pub async fn wait_phase(instance: &TakeoverRef<Counter>, want: Phase) {
    wait_until(&format!("the instance is {want:?}"), || async {
        phase(instance).await == Some(want)
    })
    .await
}

/// An instance on one node kept running by a [`Restarter`], as an
/// application's supervisor would: an instance that crashed or failed is
/// replaced by a fresh one, which waits as a standby (a retired instance
/// is a standby again by itself).
pub struct Supervised {
    pub node: String,
    pub supervisor: ActorRef<()>,
    children: tokio::sync::mpsc::UnboundedReceiver<TakeoverRef<Counter>>,
    current: TakeoverRef<Counter>,
}

impl Supervised {
    /// Starts the supervisor and its first instance on `node`.
    pub async fn start(cluster: &FakeCluster, node: &str, config: &TakeoverConfig) -> Self {
        let (children_tx, mut children) = tokio::sync::mpsc::unbounded_channel();
        let (supervisor, _) = Actor::spawn(
            None,
            Restarter,
            RestarterArgs {
                cluster: cluster.clone(),
                node: node.into(),
                config: config.clone(),
                children: children_tx,
            },
        )
        .await
        .expect("spawn the supervisor");
        let current = children.recv().await.expect("the first instance");
        Self {
            node: node.into(),
            supervisor,
            children,
            current,
        }
    }

    /// Waits for the supervisor's next restart and returns the new instance.
    pub async fn next_restart(&mut self) -> TakeoverRef<Counter> {
        let child = self.children.recv().await.expect("the supervisor restarts");
        self.current = child.clone();
        child
    }

    /// The newest instance the supervisor started.
    pub fn current(&mut self) -> TakeoverRef<Counter> {
        while let Ok(child) = self.children.try_recv() {
            self.current = child;
        }
        self.current.clone()
    }

    /// Polls until the newest instance reports `want` (following restarts);
    /// panics after [`TIMEOUT`].
    pub async fn wait_phase(&mut self, want: Phase) {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let child = self.current();
            if phase(&child).await == Some(want) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for the instance on {} to be {want:?}",
                self.node
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.supervisor.stop(None);
    }
}

/// A client that calls `Add(1)` in a loop from one node and checks that each
/// reply's `calls` is one more than the previous one: no call lost, none
/// answered twice.
pub struct Caller {
    last: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<u64>,
}

impl Caller {
    /// Starts calling through `client`; `calls` is the count before the first call.
    pub fn start(client: GlobalClient<Counter>, calls: u64) -> Self {
        let last = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(calls));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn({
            let last = last.clone();
            async move {
                let mut prev = calls;
                while stopped.try_recv().is_err() {
                    let reply = client
                        .call(CounterMsg::Add(1), TIMEOUT)
                        .await
                        .expect("every call is answered");
                    assert_eq!(reply.calls, prev + 1, "calls answered once each, in order");
                    prev = reply.calls;
                    last.store(prev, std::sync::atomic::Ordering::SeqCst);
                }
                prev
            }
        });
        Self { last, stop, task }
    }

    /// The `calls` of the last reply.
    pub fn calls(&self) -> u64 {
        self.last.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until the replies count at least `n` calls; panics at once if
    /// the loop ended (one of its checks failed).
    pub async fn wait_calls(&self, n: u64) {
        wait_until(&format!("the caller reached {n} calls"), || async {
            assert!(!self.task.is_finished(), "the caller stopped early");
            self.calls() >= n
        })
        .await
    }

    /// Stops the loop and returns the `calls` of its last reply.
    pub async fn stop(self) -> u64 {
        let _ = self.stop.send(());
        self.task.await.expect("the caller's checks held")
    }
}

/// Failures a [`Watchdog`] saw: the actor and why.
pub type Failures = std::sync::Arc<std::sync::Mutex<Vec<(ractor::ActorId, String)>>>;

/// A supervisor that records every failure of the actors linked to it
/// (panics included), for tests that check nothing failed.
pub struct Watchdog;

impl Actor for Watchdog {
    type Msg = ();
    type State = Failures;
    type Arguments = Failures;

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        failures: Failures,
    ) -> Result<Failures, ActorProcessingErr> {
        Ok(failures)
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        event: SupervisionEvent,
        failures: &mut Failures,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(who, err) = event {
            failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((who.get_id(), err.to_string()));
        }
        Ok(())
    }
}
