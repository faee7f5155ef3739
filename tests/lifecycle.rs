//! The instance's life as a ractor user expects it (issue 12): its own
//! messages and timers belong to the holder, a retired instance is a
//! standby again (so a plain supervisor survives a takeover), a hook runs on
//! the old holder once its handover is done, and a child linked to the
//! instance does not take the global server down with it.
//!
//! On the fake cluster; `real_standby_again.rs` checks the retired standby
//! between node processes.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, ActorStatus, SupervisionEvent};
use ractor_takeover::event::EventKind;
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::registry::NodeName;
use ractor_takeover::status::Phase;
use ractor_takeover::*;
use serde::{Deserialize, Serialize};
use support::{client, init_tracing, phase, spawn, wait_until, Counter, CounterMsg, TIMEOUT};

const SWEEPER: &str = "sweeper";

/// What one node's `init` got from `send_info` or `send_after`.
type InitResult = (String, Result<(), InfoErr>);

/// What the sweepers of every node did, as a test reads it.
#[derive(Clone, Default)]
struct Seen {
    /// Sweep ticks handled, per node.
    sweeps: Arc<Mutex<BTreeMap<String, u64>>>,
    /// `Late` infos handled, per node.
    late: Arc<Mutex<BTreeMap<String, u64>>>,
    /// `on_handed_over` calls: (old holder's node, the node it handed to).
    handed_over: Arc<Mutex<Vec<(String, String)>>>,
    /// Supervision events of linked children: (node, "failed"/"terminated").
    children: Arc<Mutex<Vec<(String, &'static str)>>>,
    /// What `send_info` and `send_after` said in `init` (no tenure there).
    in_init: Arc<Mutex<Vec<InitResult>>>,
}

impl Seen {
    fn sweeps(&self, node: &str) -> u64 {
        self.sweeps.lock().unwrap().get(node).copied().unwrap_or(0)
    }
    fn late(&self, node: &str) -> u64 {
        self.late.lock().unwrap().get(node).copied().unwrap_or(0)
    }
}

/// A lease-manager-like server with a sweep timer started in `go`.
struct Sweeper {
    seen: Seen,
    every: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum SweepMsg {
    Get,
    /// Start a one-shot `Late` info after this many milliseconds.
    ArmLate(u64),
    /// Spawn a child linked to the instance that stops (or fails) at once.
    SpawnChild {
        fail: bool,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct SweepState {
    sweeps: u64,
    late: u64,
}

enum Tick {
    Sweep,
    Late,
}

/// A child that ends as soon as it starts.
struct Child;

impl Actor for Child {
    type Msg = ();
    type State = ();
    type Arguments = bool;

    async fn pre_start(&self, _: ActorRef<()>, _: bool) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn post_start(&self, myself: ActorRef<()>, _: &mut ()) -> Result<(), ActorProcessingErr> {
        myself.stop(Some("done".into()));
        Ok(())
    }
}

/// A child that fails in `post_start`.
struct FailingChild;

impl Actor for FailingChild {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn post_start(&self, _: ActorRef<()>, _: &mut ()) -> Result<(), ActorProcessingErr> {
        Err("the child fails".into())
    }
}

impl TakeoverActor for Sweeper {
    type Msg = SweepMsg;
    type Reply = SweepState;
    type State = SweepState;
    type Arguments = ();
    type Info = Tick;

    async fn init(&self, ctx: &TakeoverCtx<Self>, _: ()) -> Result<SweepState, ActorProcessingErr> {
        let node = ctx.node().to_string();
        let mut in_init = self.seen.in_init.lock().unwrap();
        in_init.push((node.clone(), ctx.send_info(Tick::Sweep)));
        in_init.push((node, ctx.send_after(Duration::from_millis(1), Tick::Late)));
        Ok(SweepState::default())
    }

    async fn go(
        &self,
        ctx: &TakeoverCtx<Self>,
        _: &StartType,
        _: &mut SweepState,
    ) -> Result<(), ActorProcessingErr> {
        ctx.send_interval(self.every, || Tick::Sweep)?;
        Ok(())
    }

    async fn handle(
        &self,
        ctx: &TakeoverCtx<Self>,
        msg: SweepMsg,
        state: &mut SweepState,
    ) -> Result<SweepState, ActorProcessingErr> {
        match msg {
            SweepMsg::Get => {}
            SweepMsg::ArmLate(ms) => ctx.send_after(Duration::from_millis(ms), Tick::Late)?,
            SweepMsg::SpawnChild { fail: false } => {
                Actor::spawn_linked(None, Child, false, ctx.myself().get_cell()).await?;
            }
            SweepMsg::SpawnChild { fail: true } => {
                let _ = Actor::spawn_linked(None, FailingChild, (), ctx.myself().get_cell()).await;
            }
        }
        Ok(state.clone())
    }

    async fn handle_info(
        &self,
        ctx: &TakeoverCtx<Self>,
        info: Tick,
        state: &mut SweepState,
    ) -> Result<(), ActorProcessingErr> {
        let node = ctx.node().to_string();
        match info {
            Tick::Sweep => {
                state.sweeps += 1;
                *self.seen.sweeps.lock().unwrap().entry(node).or_default() += 1;
            }
            Tick::Late => {
                state.late += 1;
                *self.seen.late.lock().unwrap().entry(node).or_default() += 1;
            }
        }
        Ok(())
    }

    async fn on_handed_over(
        &self,
        ctx: &TakeoverCtx<Self>,
        to: &NodeName,
        _: &mut SweepState,
    ) -> Result<(), ActorProcessingErr> {
        assert_eq!(ctx.epoch(), None, "the name is given up before the hook");
        self.seen
            .handed_over
            .lock()
            .unwrap()
            .push((ctx.node().to_string(), to.to_string()));
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        ctx: &TakeoverCtx<Self>,
        event: SupervisionEvent,
        _: &mut SweepState,
    ) -> Result<(), ActorProcessingErr> {
        let kind = match event {
            SupervisionEvent::ActorFailed(..) => "failed",
            SupervisionEvent::ActorTerminated(..) => "terminated",
            _ => return Ok(()),
        };
        self.seen
            .children
            .lock()
            .unwrap()
            .push((ctx.node().to_string(), kind));
        Ok(())
    }
}

async fn sweeper(
    cluster: &FakeCluster,
    node: &str,
    seen: &Seen,
    every: Duration,
) -> TakeoverRef<Sweeper> {
    let behaviour = Sweeper {
        seen: seen.clone(),
        every,
    };
    TakeoverServer::new(
        SWEEPER,
        behaviour,
        cluster.registry(node),
        TakeoverConfig::default(),
    )
    .spawn(())
    .await
    .expect("spawn a sweeper")
    .0
}

async fn phase_of<A: TakeoverActor>(instance: &TakeoverRef<A>) -> Option<Phase> {
    instance.status(TIMEOUT).await.ok().map(|s| s.phase)
}

async fn wait_phase_of<A: TakeoverActor>(instance: &TakeoverRef<A>, want: Phase) {
    wait_until(&format!("the instance is {want:?}"), || async {
        phase_of(instance).await == Some(want)
    })
    .await
}

/// A sweep timer started in `go` runs on the holder alone: never on the
/// standby, it stops on the old holder once it handed over, starts on the
/// new one, and the sweeps counted in the state move with it. The old
/// holder is a standby again by itself, takes the name back, and its timer
/// runs again there (a new tenure) while the other's stops. `on_handed_over`
/// runs once per handover, on the old holder. `init` (on every instance)
/// cannot start a timer: there is no tenure yet.
#[tokio::test]
async fn a_sweep_timer_runs_only_on_the_holder_and_moves_with_the_name() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b"]);
    let seen = Seen::default();
    let every = Duration::from_millis(5);
    let on_a = sweeper(&cluster, "a", &seen, every).await;
    let on_b = sweeper(&cluster, "b", &seen, every).await;
    assert_eq!(phase_of(&on_b).await, Some(Phase::Standby));
    let cb = GlobalClient::<Sweeper>::new(SWEEPER, cluster.registry("b"));

    for (node, result) in seen.in_init.lock().unwrap().iter() {
        assert_eq!(result, &Err(InfoErr::NotHolding), "init on {node}");
    }
    wait_until("a sweeps", || async { seen.sweeps("a") >= 3 }).await;
    assert_eq!(seen.sweeps("b"), 0, "a standby never sweeps");

    tracing::info!("--- takeover a -> b");
    let report = on_b.takeover(TIMEOUT).await.expect("takeover to b");
    assert_eq!(report.start, StartType::Takeover { from: "a".into() });
    wait_phase_of(&on_a, Phase::Standby).await;
    let a_then = seen.sweeps("a");
    wait_until("b sweeps", || async { seen.sweeps("b") >= 3 }).await;
    assert_eq!(
        seen.sweeps("a"),
        a_then,
        "a stopped sweeping once it retired"
    );
    let state = cb.call(SweepMsg::Get, TIMEOUT).await.expect("b answers");
    assert!(
        state.sweeps >= a_then + 3,
        "the sweeps counted on a came along: {state:?}, a swept {a_then}"
    );
    assert_eq!(
        *seen.handed_over.lock().unwrap(),
        [("a".to_string(), "b".to_string())]
    );

    tracing::info!("--- takeover back b -> a, by the same instance on a");
    let report = on_a.takeover(TIMEOUT).await.expect("takeover back to a");
    assert_eq!(report.start, StartType::Takeover { from: "b".into() });
    wait_phase_of(&on_b, Phase::Standby).await;
    let b_then = seen.sweeps("b");
    wait_until("a sweeps again", || async {
        seen.sweeps("a") >= a_then + 3
    })
    .await;
    assert_eq!(
        seen.sweeps("b"),
        b_then,
        "b stopped sweeping once it retired"
    );
    assert_eq!(
        *seen.handed_over.lock().unwrap(),
        [
            ("a".to_string(), "b".to_string()),
            ("b".to_string(), "a".to_string())
        ]
    );
    on_a.stop(None);
    on_b.stop(None);
}

/// A one-shot timer of a tenure that ended never fires, here or anywhere:
/// an info is not forwarded to the new holder. One armed on the new holder
/// fires there. Time is paused, so "after its delay" is exact.
#[tokio::test(start_paused = true)]
async fn a_timer_of_the_old_holder_is_cancelled_not_forwarded() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b"]);
    let seen = Seen::default();
    // The sweep is far away: only `Late` matters here.
    let every = Duration::from_secs(24 * 3600);
    let on_a = sweeper(&cluster, "a", &seen, every).await;
    let on_b = sweeper(&cluster, "b", &seen, every).await;
    let cb = GlobalClient::<Sweeper>::new(SWEEPER, cluster.registry("b"));

    tracing::info!("--- a arms a Late info in 10 minutes, then hands over to b");
    cb.call(SweepMsg::ArmLate(600_000), TIMEOUT)
        .await
        .expect("a arms");
    on_b.takeover(TIMEOUT).await.expect("takeover to b");
    wait_phase_of(&on_a, Phase::Standby).await;
    tokio::time::sleep(Duration::from_secs(1200)).await;
    assert_eq!(seen.late("a"), 0, "cancelled on a");
    assert_eq!(seen.late("b"), 0, "not forwarded to b");
    assert_eq!(cb.call(SweepMsg::Get, TIMEOUT).await.unwrap().late, 0);

    tracing::info!("--- b, the holder now, arms one: it fires on b");
    cb.call(SweepMsg::ArmLate(600_000), TIMEOUT)
        .await
        .expect("b arms");
    tokio::time::sleep(Duration::from_secs(1200)).await;
    assert_eq!(seen.late("b"), 1);
    assert_eq!(seen.late("a"), 0);
    assert_eq!(cb.call(SweepMsg::Get, TIMEOUT).await.unwrap().late, 1);
    on_a.stop(None);
    on_b.stop(None);
}

/// A child that user code links to the instance reaches the behaviour's
/// `handle_supervisor_evt` when it stops or fails, on the holder and on a
/// standby; the server goes on (ractor's default would stop it). With the
/// default hook (the counter has none), a linked child's end does not stop
/// the server either.
#[tokio::test]
async fn a_linked_child_s_end_reaches_the_behaviour_and_the_server_goes_on() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b"]);
    let seen = Seen::default();
    let every = Duration::from_secs(24 * 3600);
    let on_a = sweeper(&cluster, "a", &seen, every).await;
    let on_b = sweeper(&cluster, "b", &seen, every).await;
    let ca = GlobalClient::<Sweeper>::new(SWEEPER, cluster.registry("a"));

    tracing::info!("--- the holder spawns a child that stops and one that fails");
    ca.call(SweepMsg::SpawnChild { fail: false }, TIMEOUT)
        .await
        .expect("spawns");
    ca.call(SweepMsg::SpawnChild { fail: true }, TIMEOUT)
        .await
        .expect("spawns");
    wait_until("both children's ends reached the behaviour", || async {
        seen.children.lock().unwrap().len() >= 2
    })
    .await;
    let mut kinds = seen.children.lock().unwrap().clone();
    kinds.sort();
    assert_eq!(
        kinds,
        [("a".to_string(), "failed"), ("a".to_string(), "terminated")]
    );
    assert_eq!(phase_of(&on_a).await, Some(Phase::Holder));
    ca.call(SweepMsg::Get, TIMEOUT)
        .await
        .expect("a still serves");

    tracing::info!("--- a child linked to the standby ends");
    let (child, handle) = Actor::spawn_linked(None, Child, false, on_b.get_cell())
        .await
        .expect("spawn a child of the standby");
    let _ = handle.await;
    drop(child);
    wait_until("the standby's child reached the behaviour", || async {
        seen.children.lock().unwrap().len() >= 3
    })
    .await;
    assert_eq!(phase_of(&on_b).await, Some(Phase::Standby));

    tracing::info!("--- the default hook: a counter's linked child ends");
    let counter = spawn(&cluster, "a", &TakeoverConfig::default()).await;
    let (_child, handle) = Actor::spawn_linked(None, Child, false, counter.get_cell())
        .await
        .expect("spawn a child of the counter");
    // Its end was sent to the counter before its handle finished, and
    // supervision events go before messages: the status below comes after.
    let _ = handle.await;
    assert_eq!(phase(&counter).await, Some(Phase::Holder));
    assert_eq!(
        client(&cluster, "b")
            .call(CounterMsg::Add(1), TIMEOUT)
            .await
            .unwrap()
            .total,
        1
    );
    on_a.stop(None);
    on_b.stop(None);
    counter.stop(None);
}

/// A plain ractor supervisor, with ractor's default supervision (it stops
/// when its child ends), that spawned the instance with `spawn_linked`.
struct Plain;

impl Actor for Plain {
    type Msg = ();
    type State = ();
    type Arguments = (
        FakeCluster,
        tokio::sync::oneshot::Sender<TakeoverRef<Counter>>,
    );

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        (cluster, child): Self::Arguments,
    ) -> Result<(), ActorProcessingErr> {
        let (instance, _) = support::server(&cluster, "a", &TakeoverConfig::default())
            .spawn_linked((), myself.get_cell())
            .await?;
        let _ = child.send(instance);
        Ok(())
    }
}

/// A plain supervisor survives a takeover of its child: the retired child
/// is a standby again (it does not stop, as it did with reason "Drained"),
/// and the same child takes the name back with the state.
#[tokio::test]
async fn a_plain_supervisor_survives_a_takeover_of_its_child() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b"]);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (supervisor, _) = Actor::spawn(None, Plain, (cluster.clone(), tx))
        .await
        .expect("spawn the supervisor");
    let on_a = rx.await.expect("the supervisor's child");
    support::wait_phase(&on_a, Phase::Holder).await;
    let on_b = spawn(&cluster, "b", &TakeoverConfig::default()).await;
    let cb = client(&cluster, "b");
    assert_eq!(cb.call(CounterMsg::Add(5), TIMEOUT).await.unwrap().total, 5);

    tracing::info!("--- takeover a -> b");
    on_b.takeover(TIMEOUT).await.expect("takeover to b");
    support::wait_phase(&on_a, Phase::Standby).await;
    assert_eq!(cb.call(CounterMsg::Add(1), TIMEOUT).await.unwrap().total, 6);
    // Had the child stopped, its supervisor would have stopped with it: the
    // child is alive (a standby), so its supervisor is.
    assert_eq!(supervisor.get_status(), ActorStatus::Running);

    tracing::info!("--- the supervised child takes the name back");
    let report = on_a.takeover(TIMEOUT).await.expect("takeover back to a");
    assert_eq!(report.start, StartType::Takeover { from: "b".into() });
    support::wait_phase(&on_b, Phase::Standby).await;
    assert_eq!(cb.call(CounterMsg::Add(1), TIMEOUT).await.unwrap().total, 7);
    assert_eq!(supervisor.get_status(), ActorStatus::Running);
    assert_eq!(phase(&on_a).await, Some(Phase::Holder));

    supervisor.stop(None);
    on_b.stop(None);
}

/// A retired instance rejoins the standby group (warm standby): the new
/// holder's checkpoints reach it, and a failover to it starts from one.
#[tokio::test]
async fn a_retired_instance_gets_checkpoints_as_a_fresh_standby() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b"]);
    let config = TakeoverConfig::default().with_checkpoints(CheckpointPolicy::every_calls(1));
    let on_a = spawn(&cluster, "a", &config).await;
    let on_b = spawn(&cluster, "b", &config).await;
    let cb = client(&cluster, "b");
    assert_eq!(cb.call(CounterMsg::Add(5), TIMEOUT).await.unwrap().total, 5);
    on_b.takeover(TIMEOUT).await.expect("takeover to b");
    support::wait_phase(&on_a, Phase::Standby).await;
    wait_until("b sees a in the standby group", || {
        let members = cluster
            .registry("b")
            .members(&format!("{}#standby", support::NAME));
        async move { members.len() == 1 }
    })
    .await;
    let mut events = support::Watcher::new(&config.events);
    assert_eq!(cb.call(CounterMsg::Add(2), TIMEOUT).await.unwrap().total, 7);
    events
        .wait_for("a checkpoint of 7 reaches a", |e| {
            support::on(e, "a") && matches!(e.kind, EventKind::CheckpointStored { .. })
        })
        .await;

    tracing::info!("--- b crashes; a fails over from the checkpoint");
    cluster.crash("b");
    let report = on_a.failover("b", TIMEOUT).await.expect("failover to a");
    assert!(
        matches!(
            report.start,
            StartType::Failover {
                checkpoint: Some(_),
                ..
            }
        ),
        "{:?}",
        report.start
    );
    let ca = client(&cluster, "a");
    assert_eq!(ca.call(CounterMsg::Get, TIMEOUT).await.unwrap().total, 7);
    on_a.stop(None);
}

/// Without warm standby, a retired instance goes back to the state `init`
/// made: a failover to it later starts from that, as any standby's would,
/// and never serves the state it handed over (older than its successor's).
/// `real_deferred.rs` shows what the old state did on real processes: a
/// waiter queued behind a lock already released on the successor.
#[tokio::test]
async fn a_retired_instance_fails_over_from_init_s_state_not_the_one_it_handed_over() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = TakeoverConfig::default();
    let on_a = spawn(&cluster, "a", &config).await;
    let on_b = spawn(&cluster, "b", &config).await;
    let cc = client(&cluster, "c");
    assert_eq!(cc.call(CounterMsg::Add(5), TIMEOUT).await.unwrap().total, 5);
    on_b.takeover(TIMEOUT).await.expect("takeover to b");
    support::wait_phase(&on_a, Phase::Standby).await;
    assert_eq!(cc.call(CounterMsg::Add(2), TIMEOUT).await.unwrap().total, 7);

    tracing::info!("--- b crashes; a fails over with no checkpoint");
    cluster.crash("b");
    let report = on_a.failover("b", TIMEOUT).await.expect("failover to a");
    assert!(
        matches!(
            report.start,
            StartType::Failover {
                checkpoint: None,
                ..
            }
        ),
        "{:?}",
        report.start
    );
    let state = client(&cluster, "a")
        .call(CounterMsg::Get, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        state.total, 0,
        "the failover starts from init's state, not from the 5 that a handed over"
    );
    on_a.stop(None);
}
