//! Shared helpers for the integration tests: a counter server, an event
//! watcher, a restarting supervisor and condition polling.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_takeover::fake::FakeCluster;
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

/// A counter; `reject_decode` makes this instance refuse any transferred state.
#[derive(Clone, Default)]
pub struct Counter {
    pub reject_decode: bool,
}

impl TakeoverActor for Counter {
    type Msg = CounterMsg;
    type Reply = CounterState;
    type State = CounterState;
    type Arguments = ();

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

    fn encode_state(&self, state: &CounterState) -> Result<Vec<u8>, StateCodecErr> {
        encode_postcard(state)
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

pub fn client(cluster: &FakeCluster, node: &str) -> GlobalClient<Counter> {
    GlobalClient::new(NAME, cluster.registry(node))
}

pub async fn phase(instance: &TakeoverRef<Counter>) -> Option<Phase> {
    status(instance, TIMEOUT).await.map(|s| s.phase)
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
        .send_message(TakeoverMessage::Call {
            msg,
            reply: Some(tx.into()),
        })
        .expect("instance takes messages");
    rx
}

/// Under `tokio::time::pause()`, lets every task run until all are idle or
/// waiting on a timer (the paused clock only jumps when nothing else can run).
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}
