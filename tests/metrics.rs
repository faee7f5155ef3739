//! Metrics (feature `metrics`) on the fake cluster, read back through
//! `metrics-util`'s `DebuggingRecorder`.
//!
//! # The invariants
//!
//! - The moves counter counts each move once, on the node the name moved
//!   to, under its reason: a requested takeover, a drain, a failover and a
//!   placement takeover back give exactly one each, and nothing else moves.
//! - Each takeover (requested, drain, takeover back) records one takeover
//!   pause and one state size, on its new holder, and a failover records
//!   neither; every state moved has bytes.
//! - The calls-buffered gauge rises while a pull holds calls and is back to
//!   0 once the new holder served them.
//! - The checkpoint lag is the count of calls since the last checkpoint.
//! - A holder cut off from the majority (quorum mode) counts the call it
//!   holds under `cause=quorum`; after the heal, its win counts as a
//!   `conflict` move, and the merge records no takeover pause.
//! - A holder without a lease (its node paused) counts the call it holds
//!   under `cause=lease`, and serves it once the lease is back.
//!
//! One test: the recorder is global to the test binary, and a snapshot
//! resets what it read, so two tests taking snapshots would steal each
//! other's counts. Each scenario uses a global name of its own, so its
//! metrics have labels of their own.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use ractor_takeover::event::{EventHub, EventKind};
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::metrics::*;
use ractor_takeover::resolver::PriorityThenEpoch;
use ractor_takeover::*;
use support::*;

/// A metric's name and labels.
type Key = (String, BTreeMap<String, String>);

/// What the snapshots read so far: a snapshot zeroes the counters and
/// gauges and empties the histograms it reads, so counters are summed and
/// samples kept across snapshots, and each gauge keeps its latest value and
/// its highest.
#[derive(Default)]
struct Seen {
    counters: BTreeMap<Key, u64>,
    histograms: BTreeMap<Key, Vec<f64>>,
    gauges: BTreeMap<Key, f64>,
    gauge_max: BTreeMap<Key, f64>,
}

impl Seen {
    fn take(&mut self, snapshotter: &Snapshotter) {
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let (kind, key) = key.into_parts();
            let labels = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            let k = (key.name().to_string(), labels);
            match (kind, value) {
                (MetricKind::Counter, DebugValue::Counter(n)) => {
                    *self.counters.entry(k).or_default() += n
                }
                (MetricKind::Histogram, DebugValue::Histogram(xs)) => self
                    .histograms
                    .entry(k)
                    .or_default()
                    .extend(xs.into_iter().map(|x| x.into_inner())),
                (MetricKind::Gauge, DebugValue::Gauge(x)) => {
                    let x = x.into_inner();
                    let max = self.gauge_max.entry(k.clone()).or_insert(x);
                    *max = max.max(x);
                    self.gauges.insert(k, x);
                }
                other => panic!("a metric of one kind with a value of another: {other:?}"),
            }
        }
    }

    /// Every label set of counter `metric` with what it counted (0s left out).
    fn counter(&self, metric: &str) -> BTreeMap<Vec<String>, u64> {
        of(&self.counters, metric)
            .filter(|(_, n)| **n > 0)
            .map(|(l, n)| (l, *n))
            .collect()
    }

    /// Every label set of histogram `metric` with its samples.
    fn samples(&self, metric: &str) -> BTreeMap<Vec<String>, Vec<f64>> {
        of(&self.histograms, metric)
            .filter(|(_, xs)| !xs.is_empty())
            .map(|(l, xs)| (l, xs.clone()))
            .collect()
    }
}

/// The entries of `metric` in `map`, each label set as `key=value` strings.
fn of<'a, V>(
    map: &'a BTreeMap<Key, V>,
    metric: &'a str,
) -> impl Iterator<Item = (Vec<String>, &'a V)> + 'a {
    map.iter()
        .filter(move |((m, _), _)| m == metric)
        .map(|((_, labels), v)| (labels.iter().map(|(k, v)| format!("{k}={v}")).collect(), v))
}

/// `key=value` strings of a label set, as [`Seen`] reports them (sorted by key).
fn labels(pairs: &[(&str, &str)]) -> Vec<String> {
    let mut pairs = pairs.to_vec();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn spawn_named(
    cluster: &FakeCluster,
    name: &str,
    node: &str,
    config: &TakeoverConfig,
) -> impl std::future::Future<Output = TakeoverRef<Counter>> {
    let server = TakeoverServer::new(
        name,
        Counter::default(),
        cluster.registry(node),
        config.clone(),
    );
    async move { server.spawn(()).await.expect("spawn").0 }
}

async fn add(client: &GlobalClient<Counter>, n: u64) -> CounterState {
    client
        .call(CounterMsg::Add(n), TIMEOUT)
        .await
        .expect("the call is answered")
}

/// Asks every instance for its status: each answers after the messages
/// before it, whose gauges it set by then.
async fn sync(instances: &[&TakeoverRef<Counter>]) {
    for i in instances {
        i.status(TIMEOUT).await.expect("a status");
    }
}

#[tokio::test]
async fn moves_pauses_bytes_and_buffered_calls_are_recorded() {
    init_tracing();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the first recorder of this binary");
    let mut seen = Seen::default();

    takeover(&snapshotter, &mut seen).await;
    drain(&snapshotter, &mut seen).await;
    failover_and_back(&snapshotter, &mut seen).await;
    quorum(&snapshotter, &mut seen).await;
    lease(&snapshotter, &mut seen).await;
    seen.take(&snapshotter);

    tracing::info!("--- one move per move, on its new holder, by reason");
    let moves = seen.counter(MOVES);
    let expected: BTreeMap<Vec<String>, u64> = [
        ("m-takeover", "b", "requested"),
        ("m-drain", "b", "drain"),
        ("m-failover", "b", "failover"),
        ("m-failover", "a", "placement"),
        ("m-quorum", "b", "failover"),
        ("m-quorum", "a", "conflict"),
    ]
    .iter()
    .map(|(name, node, reason)| {
        let l = labels(&[("name", name), ("node", node), ("reason", reason)]);
        (l, 1)
    })
    .collect();
    assert_eq!(moves, expected);
    let moved_events: u64 = of(&seen.counters, EVENTS)
        .filter(|(l, _)| l.contains(&"kind=moved".to_string()))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(moved_events, 6, "one `Moved` event per move");

    tracing::info!("--- one pause and one state size per takeover, on its new holder");
    let takeovers: Vec<Vec<String>> = [("m-takeover", "b"), ("m-drain", "b"), ("m-failover", "a")]
        .iter()
        .map(|(name, node)| labels(&[("name", name), ("node", node)]))
        .collect();
    let pauses = seen.samples(TAKEOVER_PAUSE);
    let bytes = seen.samples(STATE_BYTES);
    tracing::info!(?pauses, ?bytes, "samples");
    assert_eq!(pauses.keys().cloned().collect::<Vec<_>>(), {
        let mut t = takeovers.clone();
        t.sort();
        t
    });
    assert_eq!(
        bytes.keys().collect::<Vec<_>>(),
        pauses.keys().collect::<Vec<_>>()
    );
    for (at, xs) in &pauses {
        assert_eq!(xs.len(), 1, "one pause per takeover at {at:?}: {xs:?}");
        // Its unit (seconds) is checked in `src/metrics.rs`, on a pause of
        // known length: a measured one allows no bound but a timed one.
        assert!(xs[0] > 0.0, "a pause takes time: {at:?} {xs:?}");
    }
    for (at, xs) in &bytes {
        assert_eq!(xs.len(), 1, "one state size per takeover at {at:?}: {xs:?}");
        assert!(xs[0] > 0.0, "a moved state has bytes: {at:?} {xs:?}");
    }
    let done_events: u64 = of(&seen.counters, EVENTS)
        .filter(|(l, _)| l.contains(&"kind=handover_done".to_string()))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(done_events, 3, "one `HandoverDone` per takeover");

    tracing::info!(
        "--- nothing buffered at the end; one call held for want of a quorum, one of a lease"
    );
    let buffered: Vec<_> = of(&seen.gauges, CALLS_BUFFERED).collect();
    assert!(!buffered.is_empty());
    for (at, x) in buffered {
        assert_eq!(*x, 0.0, "calls still buffered at {at:?}");
    }
    let quorum = labels(&[("name", "m-quorum"), ("node", "a"), ("cause", "quorum")]);
    let lease = labels(&[("name", "m-lease"), ("node", "a"), ("cause", "lease")]);
    assert_eq!(
        seen.counter(CALLS_HELD),
        BTreeMap::from([(quorum, 1), (lease, 1)])
    );
}

/// A requested takeover while the old holder's state reply is held: the
/// calls that reach the new holder meanwhile wait in its buffer, and the
/// gauge shows them, then 0 once they are served.
async fn takeover(snapshotter: &Snapshotter, seen: &mut Seen) {
    const NAME: &str = "m-takeover";
    tracing::info!("--- {NAME}: a holds, b takes over while a's state reply is held");
    let cluster = FakeCluster::new(["a", "b", "client"]);
    let hub = EventHub::default();
    let config = TakeoverConfig::default().with_events(hub.clone());
    let mut events = Watcher::new(&hub);
    let a = spawn_named(&cluster, NAME, "a", &config).await;
    events.registered("a").await;
    let b = spawn_named(&cluster, NAME, "b", &config).await;
    events.standby("b").await;
    let client = GlobalClient::<Counter>::new(NAME, cluster.registry("client"));
    for _ in 0..5 {
        add(&client, 1).await;
    }

    // a's state reply waits on the held link until the gauge was read: the
    // calls below reach b while it pulls, however slow this machine is.
    cluster.hold("a", "b");
    let pull = tokio::spawn({
        let b = b.clone();
        async move { b.takeover(TIMEOUT).await }
    });
    wait_until("the client sees b's steal", || {
        let holders = cluster.holders(NAME);
        async move {
            holders.iter().any(|(n, h)| {
                n.as_str() == "client" && h.as_ref().is_some_and(|h| h.node.as_str() == "b")
            })
        }
    })
    .await;
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { add(&client, 1).await })
        })
        .collect();
    let on_b = labels(&[("name", NAME), ("node", "b")]);
    wait_until("b's buffer gauge shows the held calls", || {
        seen.take(snapshotter);
        let max = of(&seen.gauge_max, CALLS_BUFFERED)
            .find(|(l, _)| *l == on_b)
            .map(|(_, x)| *x);
        async move { max.is_some_and(|x| x >= 1.0) }
    })
    .await;
    cluster.release("a", "b");
    let report = pull
        .await
        .expect("the takeover task")
        .expect("the takeover");
    assert_eq!(report.start, StartType::Takeover { from: "a".into() });
    for call in calls {
        call.await.expect("the caller");
    }
    assert_eq!(add(&client, 0).await.total, 8, "every call counted once");
    events
        .wait_for("a retires", |e| {
            on(e, "a") && matches!(e.kind, EventKind::Retired { .. })
        })
        .await;
    sync(&[&a, &b]).await;
    seen.take(snapshotter);
}

/// A drain of the holder's node: the name moves to the next in priority.
async fn drain(snapshotter: &Snapshotter, seen: &mut Seen) {
    const NAME: &str = "m-drain";
    tracing::info!("--- {NAME}: a holds, drain a, the name moves to b");
    let cluster = FakeCluster::new(["a", "b", "c", "client"]);
    let hub = EventHub::default();
    let config = TakeoverConfig::default()
        .with_placement(
            Placement::parse("a > b > c")
                .with_standby_grace(Duration::from_millis(200))
                .with_retry_after(Duration::from_millis(100)),
        )
        .with_events(hub.clone());
    let mut events = Watcher::new(&hub);
    let a = spawn_named(&cluster, NAME, "a", &config).await;
    events.registered("a").await;
    let b = spawn_named(&cluster, NAME, "b", &config).await;
    let c = spawn_named(&cluster, NAME, "c", &config).await;
    events.standby("b").await;
    events.standby("c").await;
    let client = GlobalClient::<Counter>::new(NAME, cluster.registry("client"));
    for _ in 0..5 {
        add(&client, 1).await;
    }

    let report = cluster.drain("a", TIMEOUT).await.expect("the drain");
    assert_eq!(report.moved.len(), 1, "{report:?}");
    assert_eq!(report.moved[0].to.node.as_str(), "b");
    assert_eq!(add(&client, 0).await.total, 5, "the state moved along");
    sync(&[&a, &b, &c]).await;
    seen.take(snapshotter);
}

/// A crash of the holder (a failover to `b`, with the checkpoint it had),
/// then the preferred node back (a placement takeover to `a`). Before the
/// crash, the checkpoint lag: 7 calls with a checkpoint every 5.
async fn failover_and_back(snapshotter: &Snapshotter, seen: &mut Seen) {
    const NAME: &str = "m-failover";
    tracing::info!("--- {NAME}: a holds with checkpoints every 5 calls");
    let cluster = FakeCluster::new(["a", "b", "client"]);
    let hub = EventHub::default();
    let config = TakeoverConfig::default()
        .with_placement(
            Placement::parse("a > b")
                .with_failover_delay(Duration::from_millis(100))
                .with_standby_grace(Duration::from_millis(300)),
        )
        .with_checkpoints(CheckpointPolicy::every_calls(5))
        .with_events(hub.clone());
    let mut events = Watcher::new(&hub);
    let a = spawn_named(&cluster, NAME, "a", &config).await;
    events.registered("a").await;
    let b = spawn_named(&cluster, NAME, "b", &config).await;
    events.standby("b").await;
    let client = GlobalClient::<Counter>::new(NAME, cluster.registry("client"));
    for _ in 0..7 {
        add(&client, 1).await;
    }
    events
        .wait_for("b stores the checkpoint of 5 calls", |e| {
            on(e, "b") && matches!(e.kind, EventKind::CheckpointStored { .. })
        })
        .await;
    sync(&[&a, &b]).await;
    seen.take(snapshotter);
    let lag = |node: &str| {
        let at = labels(&[("name", NAME), ("node", node)]);
        of(&seen.gauges, CHECKPOINT_LAG)
            .find(|(l, _)| *l == at)
            .map(|(_, x)| *x)
    };
    assert_eq!(lag("a"), Some(2.0), "7 calls, the last checkpoint at 5");
    assert_eq!(lag("b"), Some(0.0), "a standby holds nothing to lose");

    tracing::info!("--- crash a: b fails over");
    cluster.crash("a");
    assert!(matches!(
        events.registered("b").await,
        StartType::Failover { .. }
    ));
    assert_eq!(add(&client, 0).await.total, 5, "from the checkpoint");

    tracing::info!("--- restart a: it takes the name back");
    cluster.restart("a");
    let a = spawn_named(&cluster, NAME, "a", &config).await;
    assert_eq!(
        events.registered("a").await,
        StartType::Takeover { from: "b".into() }
    );
    events
        .wait_for("b retires", |e| {
            on(e, "b") && matches!(e.kind, EventKind::Retired { .. })
        })
        .await;
    assert_eq!(add(&client, 0).await.total, 5);
    sync(&[&a, &b]).await;
    seen.take(snapshotter);
}

/// Quorum mode: the holder `a`, cut off from `b` and `c`, holds the one
/// call that reaches it while `b` fails over; at the heal `a` wins
/// (priority), merges `b`'s state and serves the held call.
async fn quorum(snapshotter: &Snapshotter, seen: &mut Seen) {
    const NAME: &str = "m-quorum";
    tracing::info!("--- {NAME}: a holds in quorum mode, then is cut off");
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let hub = EventHub::default();
    let config = TakeoverConfig::default()
        .with_placement(
            Placement::parse("a > b > c").with_standby_grace(Duration::from_millis(200)),
        )
        .with_conflict_grace(Duration::from_millis(200))
        .with_resolver(PriorityThenEpoch)
        .with_quorum(true)
        .with_events(hub.clone());
    let mut events = Watcher::new(&hub);
    let a = spawn_named(&cluster, NAME, "a", &config).await;
    events.registered("a").await;
    let b = spawn_named(&cluster, NAME, "b", &config).await;
    events.standby("b").await;
    let c = spawn_named(&cluster, NAME, "c", &config).await;
    events.standby("c").await;

    for other in ["b", "c"] {
        cluster.split("a", other);
    }
    let on_a = cluster.registry("a");
    wait_until("a sees only itself", || {
        let live = on_a.live_nodes();
        async move { live.len() == 1 }
    })
    .await;
    let held = tokio::spawn({
        let client = GlobalClient::<Counter>::new(NAME, cluster.registry("a"));
        async move { add(&client, 5).await }
    });
    events
        .wait_for("a loses quorum", |e| {
            on(e, "a") && matches!(e.kind, EventKind::QuorumLost { .. })
        })
        .await;
    events.registered("b").await;

    tracing::info!("--- heal: a wins and serves the held call");
    cluster.heal_all();
    events
        .wait_for("healed", |e| {
            on(e, "a") && matches!(e.kind, EventKind::SplitBrainHealed { .. })
        })
        .await;
    held.await.expect("the held call is served");
    sync(&[&a, &b, &c]).await;
    seen.take(snapshotter);
}

/// A holder whose node is paused has no lease (a peer may declare it down
/// any moment): a call made on its node is held, counted under
/// `cause=lease`, and served once the node resumes. The peers never see it
/// down (detection time of an hour), so nothing moves.
async fn lease(snapshotter: &Snapshotter, seen: &mut Seen) {
    const NAME: &str = "m-lease";
    tracing::info!("--- {NAME}: a holds, then its node is paused");
    let cluster = FakeCluster::new(["a", "b"]);
    cluster.set_detection_time(Duration::from_secs(3600));
    let hub = EventHub::default();
    let config = TakeoverConfig::default()
        .with_placement(Placement::parse("a > b"))
        .with_events(hub.clone());
    let mut events = Watcher::new(&hub);
    let a = spawn_named(&cluster, NAME, "a", &config).await;
    events.registered("a").await;
    let b = spawn_named(&cluster, NAME, "b", &config).await;
    events.standby("b").await;

    cluster.pause("a");
    let held = tokio::spawn({
        let client = GlobalClient::<Counter>::new(NAME, cluster.registry("a"));
        async move { add(&client, 5).await }
    });
    events
        .wait_for("a holds the call without a lease", |e| {
            on(e, "a") && matches!(e.kind, EventKind::LeaseLost)
        })
        .await;

    tracing::info!("--- resume: the lease is back and the held call is served");
    cluster.resume("a");
    events
        .wait_for("a has its lease again", |e| {
            on(e, "a") && matches!(e.kind, EventKind::LeaseRegained)
        })
        .await;
    let state = held.await.expect("the held call is served");
    assert_eq!((state.total, state.calls), (5, 1), "served once, by a");
    sync(&[&a, &b]).await;
    seen.take(snapshotter);
}
