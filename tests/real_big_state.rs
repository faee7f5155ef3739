//! States above the frame cap between real node processes on loopback:
//! three `test-node` processes and this test process as the client node,
//! every one with the default inbound frame cap
//! ([`ractor_takeover::cluster::DEFAULT_MAX_FRAME_BYTES`], 16 MiB). A state
//! sent whole above it would close the session (the peer seen down, the
//! same frame sent again and again); in parts it moves.
//!
//! One scenario per test binary: `ractor::pg` is a process static, so this
//! process can be only one node.

mod support;

use std::time::Duration;

use ractor_takeover::cluster::DEFAULT_MAX_FRAME_BYTES;
use ractor_takeover::GlobalClient;
use ractor_takeover_testkit::power_monitor::{PowerMonitor, PowerMsg, NAME};
use ractor_takeover_testkit::procs::{wait_for, Log, Mesh, NodeProc};

const COOKIE: &str = "real-big-state-test";
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// A state a quarter above the frame cap.
const BIG: usize = (DEFAULT_MAX_FRAME_BYTES as usize) * 5 / 4;

/// The `bytes: N` of the first line of `node` in `log` with all `needles`.
fn bytes_in(log: &Log, node: &str, needles: &[&str]) -> usize {
    let line = log
        .lines()
        .into_iter()
        .find(|(n, l)| n == node && needles.iter().all(|x| l.contains(x)))
        .unwrap_or_else(|| panic!("{node} logged {needles:?}"))
        .1;
    line.split("bytes: ")
        .nth(1)
        .and_then(|s| s.split([',', ' ', '}']).next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("bytes in {line}"))
}

/// Placement `a > b > c`, all with the default 16 MiB frame cap:
/// - `b` holds first and grows a state above the cap; `a` starts and takes
///   the name over automatically: the state moves whole (its size in the
///   `StateTransferred` event) and `a` serves it;
/// - `a` hangs (SIGSTOP): `b` fails over and grows a state above the cap of
///   its own; `a` resumes (SIGCONT): two holders, and the loser's offer, above
///   the cap, reaches the winner (`SplitBrainHealed` with its size, read);
///   one holder is left and answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_and_a_merge_of_a_state_above_the_frame_cap_complete() {
    support::init_tracing();
    let mesh = Mesh::new(&["client", "a", "b", "c"], COOKIE);
    let flags = |me: &str| {
        mesh.flags(
            me,
            &[("placement", "a > b > c"), ("pull-timeout-ms", "60000")],
        )
    };
    let me = mesh.client_node().await;
    let client = GlobalClient::<PowerMonitor>::new(NAME, me.registry());
    let log = Log::default();

    let _b = NodeProc::start("b", &flags("b"), &log);
    log.wait("b", &["Registered", "Normal"]).await;
    let _c = NodeProc::start("c", &flags("c"), &log);
    log.wait("c", &["Standby"]).await;
    wait_for("the client sees b as holder", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "b")
    })
    .await;
    let grown = client
        .call(PowerMsg::Ballast { bytes: BIG }, CALL_TIMEOUT)
        .await
        .expect("ballast on b");
    assert_eq!(grown.node, "b");

    tracing::info!("--- a starts and takes over a state above the frame cap");
    let a = NodeProc::start("a", &flags("a"), &log);
    log.wait("a", &["HandoverDone"]).await;
    assert!(log.any("a", &["Registered", "Takeover", "from: \"b\""]));
    let moved = bytes_in(&log, "a", &["StateTransferred"]);
    assert!(moved > BIG, "the whole state moved ({moved} bytes)");
    wait_for("the client sees a as holder", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "a")
    })
    .await;
    let on_a = client
        .call(PowerMsg::Count, CALL_TIMEOUT)
        .await
        .expect("a serves");
    assert_eq!(on_a.node, "a");
    assert_eq!(on_a.total, grown.total, "a serves the state it took over");

    tracing::info!("--- a hangs: b fails over and grows a big state of its own");
    a.signal("STOP");
    wait_for("the client sees b as holder", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "b")
    })
    .await;
    let on_b = client
        .call(PowerMsg::Ballast { bytes: BIG }, CALL_TIMEOUT)
        .await
        .expect("ballast on b after the failover");
    assert_eq!(on_b.node, "b");

    tracing::info!("--- a resumes: two holders, the loser offers its state");
    let retired_before = |n: &str| log.count(n, &["Retired"]);
    let before = [("a", retired_before("a")), ("b", retired_before("b"))];
    a.signal("CONT");
    wait_for("a holder merged the loser's offer", || {
        log.lines()
            .iter()
            .any(|(_, l)| l.contains("SplitBrainHealed"))
    })
    .await;
    let winner = log
        .lines()
        .into_iter()
        .find(|(_, l)| l.contains("SplitBrainHealed"))
        .map(|(n, l)| {
            assert!(
                l.contains("outcome: Some("),
                "the winner read the offer: {l}"
            );
            n
        })
        .expect("a heal");
    let offered = bytes_in(&log, &winner, &["SplitBrainHealed"]);
    assert!(offered > BIG, "the whole offer came ({offered} bytes)");
    let (loser, retired) = before
        .into_iter()
        .find(|(n, _)| *n != winner)
        .expect("a loser");
    wait_for("the loser retires", || {
        log.count(loser, &["Retired"]) > retired
    })
    .await;
    wait_for("one holder answers", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "a")
    })
    .await;
    let last = client
        .call(PowerMsg::Count, CALL_TIMEOUT)
        .await
        .expect("the holder answers");
    assert_eq!(last.node, "a");
    me.shutdown();
}
