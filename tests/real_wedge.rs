//! A holder whose tokio runtime is wedged (every worker thread blocked by
//! a task that never yields, as a deadlock or a blocking call on the
//! runtime does) while a client calls without pause. Its failure detector
//! runs on a thread of its own, so before it would have answered heartbeats
//! for the wedged node forever: no standby took over, the name was dead.
//! Now the detector falls silent once the runtime has run no task for
//! `ClusterConfig::runtime_timeout` (5 s by default), peers declare the
//! node down by their usual rule, and a standby takes over.
//!
//! This test process is the client node; `a` (the holder), `b` and `c`
//! are processes. One scenario per test binary: `ractor::pg` is a process
//! static.
//!
//! Fake cluster: a wedged holder answers nothing, as a paused one does;
//! the fake's pause fault covers the same case in
//! `src/fake/tests/faults.rs`, `a_resumed_hung_holder_does_not_answer_after_its_failover`
//! (a queued call is not answered under the old epoch after the failover).

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor_takeover::cluster::{ClusterConfig, ClusterNode, PeerAddr};
use ractor_takeover::registry::Registry;
use ractor_takeover::{CallErr, GlobalClient};
use ractor_takeover_testkit::power_monitor::{PowerMonitor, PowerMsg, PowerReply, NAME};
use ractor_takeover_testkit::procs::{free_ports, mesh_peers, wait_for, Log, NodeProc};
use tokio::time::Instant;

const COOKIE: &str = "real-wedge-test";
/// As `real_hang`: callers with a short deadline move on to the successor;
/// those with a long one still wait when the wedge ends, so they see
/// whatever the old holder answers then.
const CALLERS: [Duration; 6] = [
    Duration::from_secs(1),
    Duration::from_secs(1),
    Duration::from_secs(1),
    Duration::from_secs(1),
    Duration::from_secs(20),
    Duration::from_secs(20),
];
/// The wedge's own bound, should the test die before it lets `a` go.
const WEDGE_MAX_MS: u64 = 60_000;

type Record = (Instant, Result<PowerReply, CallErr>);

/// The `t_ms=` field of a node's line.
fn t_ms(line: &str) -> Option<u128> {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("t_ms="))
        .and_then(|t| t.parse().ok())
}

/// The first line of `node` that has every one of `needles`.
fn line_of(log: &Log, node: &str, needles: &[&str]) -> Option<String> {
    log.lines()
        .into_iter()
        .find(|(n, l)| n == node && needles.iter().all(|x| l.contains(x)))
        .map(|(_, l)| l)
}

/// Placement `a > b > c`. `a` wedges every worker of its runtime and stays
/// wedged until told. Then: `b` fails over (polled, within the test's
/// deadline), calls go on being answered (50 by `b` while `a` is still
/// wedged), `a` is let go, and after the client's first OK from a newer
/// epoch, `a` answers nothing under the epoch it held. One holder at the
/// end. Prints the failover time (the wedge, all workers held, to `b`'s
/// registration), for `docs/benchmarks.md`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_holder_loses_its_name_and_never_answers_after_its_successor() {
    support::init_tracing();
    let ports = free_ports(4);
    let names = ["client", "a", "b", "c"];
    let flags = |me: &str, i: usize| {
        vec![
            ("port", ports[i].to_string()),
            ("peers", mesh_peers(&names, &ports, me)),
            ("cookie", COOKIE.to_string()),
            ("placement", "a > b > c".to_string()),
        ]
    };
    let client_peers: Vec<PeerAddr> = mesh_peers(&names, &ports, "client")
        .split(',')
        .map(|p| p.parse().unwrap())
        .collect();
    let me =
        ClusterNode::start(ClusterConfig::new("client", ports[0], COOKIE).with_peers(client_peers))
            .await
            .expect("client node");
    let client = GlobalClient::<PowerMonitor>::new(NAME, me.registry());
    let log = Log::default();

    let mut a = NodeProc::start("a", &flags("a", 1), &log);
    log.wait("a", &["Registered", "Normal"]).await;
    let _b = NodeProc::start("b", &flags("b", 2), &log);
    log.wait("b", &["Standby"]).await;
    let _c = NodeProc::start("c", &flags("c", 3), &log);
    log.wait("c", &["Standby"]).await;
    wait_for("the client sees a as holder", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "a")
    })
    .await;

    tracing::info!("--- {} callers report without pause", CALLERS.len());
    let records: Arc<Mutex<Vec<Record>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = CALLERS
        .iter()
        .enumerate()
        .map(|(caller, &deadline)| {
            let (client, records, stop) = (client.clone(), records.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let report = PowerMsg::Report {
                        building: format!("caller{caller}"),
                        seq,
                    };
                    let result = client.call(report, deadline).await;
                    records.lock().unwrap().push((Instant::now(), result));
                }
            })
        })
        .collect();
    let answered_by = |node: &str| {
        records
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, r)| r.as_ref().is_ok_and(|r| r.node == node))
            .count()
    };
    wait_for("200 reports answered by a", || answered_by("a") >= 200).await;

    tracing::info!("--- wedge every worker of a's runtime");
    a.send_line(&format!("wedge {WEDGE_MAX_MS}"))
        .expect("a takes the wedge");
    log.wait("a", &["WEDGED"]).await;
    let wedged = Instant::now();
    log.wait("b", &["Registered", "Failover", "from: \"a\""])
        .await;
    wait_for("b answered 50 reports while a is wedged", || {
        answered_by("b") >= 50
    })
    .await;
    assert!(
        !log.any("a", &["UNWEDGED"]),
        "a was still wedged when b took over and served"
    );
    let wedged_ms = t_ms(&line_of(&log, "a", &["WEDGED"]).unwrap()).unwrap();
    let failover_ms = t_ms(&line_of(&log, "b", &["Registered", "Failover"]).unwrap()).unwrap();
    println!(
        "failover after a wedge: {} ms (a's workers all held to b's registration)",
        failover_ms.saturating_sub(wedged_ms)
    );

    tracing::info!("--- let a's runtime go");
    a.send_line("unwedge").expect("a takes the release");
    log.wait("a", &["UNWEDGED"]).await;
    let released = Instant::now();
    wait_for("the client's view has one registration", || {
        me.members(NAME).len() == 1 && released.elapsed() >= Duration::from_secs(2)
    })
    .await;
    let answered_at_end = records.lock().unwrap().len();
    wait_for("100 more answers", || {
        records.lock().unwrap().len() >= answered_at_end + 100
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }

    let holders = me.members(NAME).len();
    let records = records.lock().unwrap().clone();
    let wedged_epoch = records
        .iter()
        .filter(|(at, _)| *at < wedged)
        .filter_map(|(_, r)| r.as_ref().ok())
        .filter(|r| r.node == "a")
        .map(|r| r.epoch)
        .max()
        .expect("a answered before it was wedged");
    let mut by_holder: BTreeMap<(String, u64), usize> = BTreeMap::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for (_, result) in &records {
        match result {
            Ok(r) => *by_holder.entry((r.node.clone(), r.epoch)).or_default() += 1,
            Err(e) => *errors.entry(format!("{e:?}")).or_default() += 1,
        }
    }
    println!("answers by (node, epoch): {by_holder:?}; errors: {errors:?}");
    me.shutdown();

    assert_eq!(holders, 1, "one holder at the end: {by_holder:?}");
    let first_newer = records
        .iter()
        .position(|(_, r)| r.as_ref().is_ok_and(|r| r.epoch > wedged_epoch))
        .expect("an OK from the successor");
    let stale: Vec<_> = records[first_newer..]
        .iter()
        .filter_map(|(at, r)| r.as_ref().ok().map(|r| (at.duration_since(wedged), r)))
        .filter(|(_, r)| r.node == "a" && r.epoch == wedged_epoch)
        .collect();
    println!(
        "OKs from the wedged holder's epoch {wedged_epoch} after the first OK from a newer one: {}",
        stale.len()
    );
    assert!(
        stale.is_empty(),
        "{} OKs from the wedged holder's epoch {wedged_epoch} after an OK from a newer one (first, with the time since the wedge: {:?}); answers by (node, epoch): {by_holder:?}",
        stale.len(),
        stale.first(),
    );
}
