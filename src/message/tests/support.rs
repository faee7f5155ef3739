//! A counter server and polling helpers for the tests in this module (a
//! small copy of what `tests/support` gives the integration tests).

use std::future::Future;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::fake::FakeCluster;
use crate::{
    EventHub, GlobalClient, HandoverReport, Phase, TakeoverActor, TakeoverConfig, TakeoverCtx,
    TakeoverErr, TakeoverEvent, TakeoverRef, TakeoverServer,
};

/// Generous: these deadlines catch hangs, they do not measure speed.
pub(super) const TIMEOUT: Duration = Duration::from_secs(20);

pub(super) const NAME: &str = "counter";

pub(super) fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "ractor_takeover=info".into()),
        )
        .with_test_writer()
        .try_init();
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum CounterMsg {
    Add(u64),
    Get,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct CounterState {
    pub(super) total: u64,
    pub(super) calls: u64,
}

/// A counter whose state travels with the default codec.
#[derive(Clone, Default)]
pub(super) struct Counter;

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
}

pub(super) async fn spawn(
    cluster: &FakeCluster,
    node: &str,
    config: &TakeoverConfig,
) -> TakeoverRef<Counter> {
    TakeoverServer::new(NAME, Counter, cluster.registry(node), config.clone())
        .spawn(())
        .await
        .expect("spawn")
        .0
}

/// Starts a takeover by `instance` in the background, to act while it runs.
pub(super) fn start_takeover(
    instance: &TakeoverRef<Counter>,
) -> tokio::task::JoinHandle<Result<HandoverReport, TakeoverErr>> {
    let instance = instance.clone();
    tokio::spawn(async move { instance.takeover(TIMEOUT).await })
}

pub(super) fn client(cluster: &FakeCluster, node: &str) -> GlobalClient<Counter> {
    GlobalClient::new(NAME, cluster.registry(node))
}

/// Polls `cond` until it holds; panics with `what` after [`TIMEOUT`].
pub(super) async fn wait_until<F, Fut>(what: &str, mut cond: F)
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

/// Polls `instance` until it reports `want`; panics after [`TIMEOUT`].
pub(super) async fn wait_phase(instance: &TakeoverRef<Counter>, want: Phase) {
    wait_until(&format!("the instance is {want:?}"), || async {
        instance.status(TIMEOUT).await.ok().map(|s| s.phase) == Some(want)
    })
    .await
}

/// Waits until every up node's view resolves `NAME` to a holder on `node`.
pub(super) async fn wait_holder_everywhere(cluster: &FakeCluster, node: &str) {
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

/// Under `tokio::time::pause()`, lets every task run until all are idle or
/// waiting on a timer (the paused clock only jumps when nothing else can run).
pub(super) async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Reads a hub's events and waits for the ones a test expects.
pub(super) struct Watcher {
    rx: broadcast::Receiver<TakeoverEvent>,
}

impl Watcher {
    pub(super) fn new(hub: &EventHub) -> Self {
        Self {
            rx: hub.subscribe(),
        }
    }

    /// The next event (on any node) that `pred` accepts; panics after [`TIMEOUT`].
    pub(super) async fn wait_for(
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

    /// Waits for the next `Registered` event on `node`.
    pub(super) async fn registered(&mut self, node: &str) {
        self.wait_for(&format!("{node} registers"), |e| {
            on(e, node) && matches!(e.kind, crate::EventKind::Registered { .. })
        })
        .await;
    }

    /// Waits for the next `Standby` event on `node`.
    pub(super) async fn standby(&mut self, node: &str) {
        self.wait_for(&format!("{node} is standby"), |e| {
            on(e, node) && matches!(e.kind, crate::EventKind::Standby { .. })
        })
        .await;
    }
}

pub(super) fn on(ev: &TakeoverEvent, node: &str) -> bool {
    ev.node.as_str() == node
}

/// Failures a [`Watchdog`] saw: the actor and why.
pub(super) type Failures = std::sync::Arc<std::sync::Mutex<Vec<(ractor::ActorId, String)>>>;

/// A supervisor that records every failure of the actors linked to it
/// (panics included), for tests that check nothing failed.
pub(super) struct Watchdog;

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
