//! The hung-holder scenario shared by `tests/real_hang.rs` and
//! `tests/real_hang_epochs.rs` (one scenario per test binary: `ractor::pg`
//! is a process static, so a process can be only one node).
//!
//! Placement `a > b > c`, six callers without pause (four with a 1 s
//! deadline, two with 10 s). The holder `a` is stopped for 3 s, then
//! resumed; the scenario runs until the client's view has one registration
//! and 100 more answers came.
// Each test reads the fields it checks.
#![allow(dead_code)]

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

use super::support;

const COOKIE: &str = "real-hang-test";
/// Callers with a short deadline move on from the hung holder and reach
/// its successor; those with a long one (longer than the hang) still wait
/// when the old holder resumes, so they see whatever it answers then.
const CALLERS: [Duration; 6] = [
    Duration::from_secs(1),
    Duration::from_secs(1),
    Duration::from_secs(1),
    Duration::from_secs(1),
    Duration::from_secs(10),
    Duration::from_secs(10),
];
/// How long the holder stays stopped (at least).
const HANG: Duration = Duration::from_secs(3);

/// One answer, in the order the client received them.
pub type Record = (Instant, Result<PowerReply, CallErr>);

/// What the client saw.
pub struct Outcome {
    /// Every answer, in the order the client received them.
    pub records: Vec<Record>,
    /// Which caller (an index into `CALLERS`) got each of `records`: a
    /// caller sends its next report only after the answer to the last.
    pub caller_of: Vec<usize>,
    /// When `a` was stopped.
    pub stopped: Instant,
    /// The epoch `a` answered under before it was stopped.
    pub hung_epoch: u64,
    /// The registrations of the name in the client's view at the end.
    pub holders: usize,
    /// OKs per (node, epoch), and errors per kind.
    pub by_holder: BTreeMap<(String, u64), usize>,
    pub errors: BTreeMap<String, usize>,
}

/// Runs the scenario (see the module docs).
pub async fn run() -> Outcome {
    support::init_tracing();
    let ports = free_ports(4);
    let names = ["client", "a", "b", "c"];
    let peers_of = |me: &str| mesh_peers(&names, &ports, me);
    let flags = |me: &str, i: usize| {
        vec![
            ("port", ports[i].to_string()),
            ("peers", peers_of(me)),
            ("cookie", COOKIE.to_string()),
            ("placement", "a > b > c".to_string()),
        ]
    };
    let client_peers: Vec<PeerAddr> = peers_of("client")
        .split(',')
        .map(|p| p.parse().unwrap())
        .collect();
    let me =
        ClusterNode::start(ClusterConfig::new("client", ports[0], COOKIE).with_peers(client_peers))
            .await
            .expect("client node");
    let client = GlobalClient::<PowerMonitor>::new(NAME, me.registry());
    let log = Log::default();

    let a = NodeProc::start("a", &flags("a", 1), &log);
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
    let records: Arc<Mutex<Vec<(Record, usize)>>> = Arc::default();
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
                    records
                        .lock()
                        .unwrap()
                        .push(((Instant::now(), result), caller));
                }
            })
        })
        .collect();
    let answered_by = |node: &str| {
        records
            .lock()
            .unwrap()
            .iter()
            .filter(|((_, r), _)| r.as_ref().is_ok_and(|r| r.node == node))
            .count()
    };
    wait_for("200 reports answered by a", || answered_by("a") >= 200).await;

    a.signal("STOP");
    let stopped = Instant::now();
    log.wait("b", &["Registered", "Failover", "from: \"a\""])
        .await;
    // The hang lasts at least HANG, and b has served meanwhile: the case
    // where the resumed holder's queued answers would overlap b's.
    wait_for("b answered 50 reports and the hang lasted 3 s", || {
        answered_by("b") >= 50 && stopped.elapsed() >= HANG
    })
    .await;
    a.signal("CONT");
    let resumed = Instant::now();

    tracing::info!("--- wait for one holder");
    wait_for("the client's view has one registration", || {
        me.members(NAME).len() == 1 && resumed.elapsed() >= Duration::from_secs(2)
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
    let (records, caller_of): (Vec<Record>, Vec<usize>) =
        records.lock().unwrap().iter().cloned().unzip();
    let hung_epoch = records
        .iter()
        .filter(|(at, _)| *at < stopped)
        .filter_map(|(_, r)| r.as_ref().ok())
        .filter(|r| r.node == "a")
        .map(|r| r.epoch)
        .max()
        .expect("a answered before it was stopped");
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
    Outcome {
        records,
        caller_of,
        stopped,
        hung_epoch,
        holders,
        by_holder,
        errors,
    }
}
