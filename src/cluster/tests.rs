use std::time::Duration;

use super::*;
use crate::{ConfigErr, RegistryErr, TakeoverConfig};

/// The defaults work; a margin that leaves no lease, a zero dial timeout,
/// and state parts that do not fit in a frame are refused with typed errors.
#[test]
fn settings_that_cannot_work_are_refused() {
    let config = ClusterConfig::new("a", 4000, "c");
    assert_eq!(config.validate(), Ok(()));
    assert_eq!(config.effective_lease_margin(), Duration::from_millis(250));
    assert_eq!(config.lease_duration(), Some(Duration::from_millis(750)));
    assert_eq!(config.check_takeover(&TakeoverConfig::default()), Ok(()));

    let no_lease = config.clone().with_lease_margin(Duration::from_secs(1));
    assert_eq!(
        no_lease.validate(),
        Err(ConfigErr::NoLease {
            detection: Duration::from_secs(1),
            margin: Duration::from_secs(1),
        })
    );
    let no_dial = config.clone().with_handshake_timeout(Duration::ZERO);
    assert_eq!(
        no_dial.validate(),
        Err(ConfigErr::ZeroTimeout("handshake_timeout"))
    );
    let small_frames = config.clone().with_max_frame_bytes(1 << 20);
    let big_parts = TakeoverConfig::default().with_state_part_bytes(1 << 20);
    assert_eq!(
        small_frames.check_takeover(&big_parts),
        Err(ConfigErr::PartOverFrame {
            part_bytes: 1 << 20,
            max_frame_bytes: 1 << 20,
        })
    );
    let fitting = TakeoverConfig::default().with_state_part_bytes(512 << 10);
    assert_eq!(small_frames.check_takeover(&fitting), Ok(()));
}

/// A lease no longer than one heartbeat interval runs out before the next
/// heartbeat can renew it: refused; one just longer passes.
#[test]
fn a_lease_no_longer_than_the_interval_is_refused() {
    // 200 ms x 5 = 1 s detection; a 800 ms margin leaves a 200 ms lease.
    let config = ClusterConfig::new("a", 4000, "c");
    let at_interval = config.clone().with_lease_margin(Duration::from_millis(800));
    assert_eq!(
        at_interval.validate(),
        Err(ConfigErr::LeaseBelowInterval {
            lease: Duration::from_millis(200),
            interval: Duration::from_millis(200),
        })
    );
    let above = config.with_lease_margin(Duration::from_millis(799));
    assert_eq!(above.validate(), Ok(()));
}

/// A server's `whereis_timeout` must cover the node's start-up wait for its
/// peers (`startup_timeout`), the detection time and one interval: a
/// shorter one fails a start while a peer is still connecting.
#[test]
fn a_whereis_timeout_below_the_settle_time_is_refused() {
    let config = ClusterConfig::new("a", 4000, "c");
    assert_eq!(config.settle_time(), Duration::from_millis(7_200));
    let short = TakeoverConfig::default().with_whereis_timeout(Duration::from_secs(5));
    assert_eq!(
        config.check_takeover(&short),
        Err(ConfigErr::WhereisBelowSettle {
            whereis: Duration::from_secs(5),
            settle: Duration::from_millis(7_200),
        })
    );
    let quick = config.with_startup_timeout(Duration::from_secs(1));
    assert_eq!(quick.settle_time(), Duration::from_millis(3_200));
    assert_eq!(quick.check_takeover(&short), Ok(()));
}

/// A node refuses to start with settings that cannot work.
#[tokio::test]
async fn start_refuses_a_margin_that_leaves_no_lease() {
    let config = ClusterConfig::new("a", 0, "c")
        .with_heartbeat(Duration::from_millis(100), 2)
        .with_lease_margin(Duration::from_millis(300));
    match ClusterNode::start(config).await {
        Err(ClusterErr::Config(ConfigErr::NoLease { .. })) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("started with no lease"),
    }
}

/// The defaults are the ones each field's rustdoc states (keep them in step).
#[test]
fn defaults_are_the_documented_ones() {
    let c = ClusterConfig::new("a", 4000, "c");
    assert_eq!(c.hostname, "127.0.0.1");
    assert!(c.peers.is_empty());
    assert_eq!(c.heartbeat_interval, Duration::from_millis(200));
    assert_eq!(c.heartbeat_misses, 5);
    assert_eq!(c.max_frame_bytes, DEFAULT_MAX_FRAME_BYTES);
    assert_eq!(DEFAULT_MAX_FRAME_BYTES, 16 << 20);
    assert_eq!(c.token_linger, Duration::from_secs(30));
    assert!(c.tls.is_none());
    assert_eq!(c.state_dir, None);
    assert_eq!(c.startup_timeout, Duration::from_secs(5));
    assert_eq!(c.handshake_timeout, Duration::from_secs(2));
    assert_eq!(c.lease_margin, None);
    assert_eq!(c.auth_timeout, Duration::from_secs(5));
    assert_eq!(c.phi_threshold, Some(8.0));
    assert_eq!(c.max_detection, None);
    assert_eq!(c.effective_max_detection(), Duration::from_secs(2));
    assert!(!c.client_only);
    assert_eq!(c.runtime_timeout, Duration::from_secs(5));
    assert_eq!(c.runtime_timeout, DEFAULT_RUNTIME_TIMEOUT);
    assert_eq!(c.runtime_tick(), Duration::from_millis(200));
}

/// A runtime timeout of zero, or shorter than the heartbeat interval, is
/// refused; one interval is the least that works, and the runtime then
/// ticks four times within it.
#[test]
fn runtime_timeouts_that_cannot_work_are_refused() {
    let config = ClusterConfig::new("a", 4000, "c");
    assert_eq!(
        config
            .clone()
            .with_runtime_timeout(Duration::ZERO)
            .validate(),
        Err(ConfigErr::ZeroTimeout("runtime_timeout"))
    );
    assert_eq!(
        config
            .clone()
            .with_runtime_timeout(Duration::from_millis(199))
            .validate(),
        Err(ConfigErr::RuntimeTimeoutBelowInterval {
            runtime_timeout: Duration::from_millis(199),
            interval: Duration::from_millis(200),
        })
    );
    let least = config.with_runtime_timeout(Duration::from_millis(200));
    assert_eq!(least.validate(), Ok(()));
    assert_eq!(least.runtime_tick(), Duration::from_millis(50));
}

/// A phi threshold that is not a finite number above zero, and a ceiling
/// below the floor the lease counts from, are refused; the fixed detector
/// needs neither.
#[test]
fn detector_settings_that_cannot_work_are_refused() {
    let config = ClusterConfig::new("a", 4000, "c");
    for phi in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let bad = config.clone().with_phi_accrual(phi, Duration::from_secs(2));
        assert!(
            matches!(bad.validate(), Err(ConfigErr::BadPhiThreshold(_))),
            "phi {phi} passed"
        );
    }
    let low = config
        .clone()
        .with_phi_accrual(8.0, Duration::from_millis(999));
    assert_eq!(
        low.validate(),
        Err(ConfigErr::MaxDetectionBelowFloor {
            max_detection: Duration::from_millis(999),
            detection: Duration::from_secs(1),
        })
    );
    let at_floor = config.clone().with_phi_accrual(8.0, Duration::from_secs(1));
    assert_eq!(at_floor.validate(), Ok(()));
    let fixed = config.with_fixed_detector();
    assert_eq!(fixed.validate(), Ok(()));
    assert_eq!(fixed.effective_max_detection(), Duration::from_secs(1));
}

fn shared() -> Shared {
    let started = Instant::now();
    Shared {
        started,
        runtime: super::liveness::RuntimeClock::new(started),
        incarnation: 1,
        state: Mutex::new(SharedState::default()),
        events: broadcast::channel(16).0,
        watchers: Watchers::default(),
        changed: watch::channel(0).0,
    }
}

/// A pong on the beacon's path from a peer that declared us down since
/// it last synced with us on the session gives no lease evidence (a
/// standby of its may hold a name of ours, and its registration reaches
/// us only on the session); a pong on the session, which comes after that
/// registration, counts and covers its downs; a restarted peer (another
/// incarnation) starts from none covered.
#[test]
fn a_peer_that_declared_us_down_counts_again_only_after_a_session_pong() {
    let shared = shared();
    let b = NodeName::new("b");
    let config = ClusterConfig::new("a", 4000, "c");
    {
        let mut s = shared.lock();
        s.alive.insert(b.clone());
        s.sessions.insert(b.clone());
    }
    let evidence = |shared: &Shared| shared.lock().answered.get(&b).copied();
    let r1 = heartbeat::next_round(&shared, &config);
    heartbeat::answered(&shared, &b, r1, 7, 0, false);
    let first = evidence(&shared).expect("no downs: the pong counts");

    let r2 = heartbeat::next_round(&shared, &config);
    heartbeat::answered(&shared, &b, r2, 7, 1, false);
    assert_eq!(
        evidence(&shared),
        Some(first),
        "b declared us down: no evidence"
    );
    heartbeat::answered(&shared, &b, r2, 7, 1, true);
    let second = evidence(&shared).expect("the session pong counts");
    assert!(second >= first);
    let r3 = heartbeat::next_round(&shared, &config);
    heartbeat::answered(&shared, &b, r3, 7, 1, false);
    assert!(
        evidence(&shared).unwrap() >= second,
        "covered: counts again"
    );

    let r4 = heartbeat::next_round(&shared, &config);
    let before = evidence(&shared);
    heartbeat::answered(&shared, &b, r4, 8, 1, false);
    assert_eq!(
        evidence(&shared),
        before,
        "a new incarnation's downs are not covered"
    );
}

/// A client-only peer counts neither for the lease nor as a peer a
/// holder must hear from; a server peer does.
#[test]
fn client_only_peers_do_not_count_for_the_lease() {
    let shared = shared();
    let config = ClusterConfig::new("a", 4000, "c");
    let (b, k) = (NodeName::new("b"), NodeName::new("k"));
    shared.lock().sessions.extend([b.clone(), k.clone()]);
    heartbeat::heard(&shared, &config, &b, true, false);
    heartbeat::heard(&shared, &config, &k, true, true);
    let r = heartbeat::next_round(&shared, &config);
    heartbeat::answered(&shared, &b, r, 1, 0, false);
    let lease = config.lease_duration().unwrap();
    let s = shared.lock();
    assert_eq!(s.alive.len(), 2);
    let holders: BTreeSet<NodeName> = s.alive.difference(&s.clients).cloned().collect();
    assert!(
        lease::lease_until(&holders, &s.answered, s.fence, lease, Instant::now()).is_some(),
        "k never answered, and does not need to"
    );
    assert!(lease::lease_until(&s.alive, &s.answered, s.fence, lease, Instant::now()).is_none());
}

/// A client-only node refuses to register or steal a name, with a typed error.
#[tokio::test]
async fn a_client_only_node_holds_no_name() {
    let node = ClusterNode::start(ClusterConfig::new("k", 0, "c").client_only())
        .await
        .expect("the node starts");
    let (cell, _) = Actor::spawn(None, watcher::Watcher, Arc::new(shared()))
        .await
        .expect("an actor to register");
    let registry = node.registry();
    let k = NodeName::new("k");
    assert_eq!(
        registry.register("count", cell.get_cell()).await.err(),
        Some(RegistryErr::ClientOnly(k.clone()))
    );
    assert_eq!(
        registry.steal("count", cell.get_cell()).await.err(),
        Some(RegistryErr::ClientOnly(k))
    );
    cell.stop(None);
    node.shutdown();
}

/// The smallest behaviour: a counter.
struct Count;

impl crate::TakeoverActor for Count {
    type Msg = u64;
    type Reply = u64;
    type State = u64;
    type Arguments = ();
    type Info = ();

    async fn init(
        &self,
        _: &crate::TakeoverCtx<Self>,
        _: (),
    ) -> Result<u64, ractor::ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: &crate::TakeoverCtx<Self>,
        add: u64,
        total: &mut u64,
    ) -> Result<u64, ractor::ActorProcessingErr> {
        *total += add;
        Ok(*total)
    }
}

/// On a real node, a server whose `whereis_timeout` is below the node's
/// settle time fails its spawn with that typed error, before its start-up
/// lookup could time out while a peer is still connecting (the flake seen
/// in `tests/real_cookie.rs`); the default passes.
#[tokio::test]
async fn a_server_refuses_a_whereis_timeout_below_the_nodes_settle_time() {
    let node = ClusterNode::start(ClusterConfig::new("a", 0, "c"))
        .await
        .expect("the node starts");
    let short = TakeoverConfig::default().with_whereis_timeout(Duration::from_secs(5));
    let err = crate::TakeoverServer::new("count", Count, node.registry(), short)
        .spawn(())
        .await
        .expect_err("the spawn is refused");
    let ractor::SpawnErr::StartupFailed(inner) = &err else {
        panic!("not a startup failure: {err}");
    };
    assert_eq!(
        inner.downcast_ref::<ConfigErr>(),
        Some(&ConfigErr::WhereisBelowSettle {
            whereis: Duration::from_secs(5),
            settle: Duration::from_millis(7_200),
        }),
        "{err}"
    );
    let (ok, handle) =
        crate::TakeoverServer::new("count", Count, node.registry(), TakeoverConfig::default())
            .spawn(())
            .await
            .expect("the default spawns");
    ok.stop(None);
    let _ = handle.await;
    node.shutdown();
}
