//! Exactly-once calls with synchronous standby on real node processes:
//! the scenario of `tests/real_exactly_once.rs` (keyed callers without
//! pause, each call under a name of its own, a SIGKILL of the holder, a
//! manual takeover and placement taking the name back), with synchronous
//! standby (refuse mode) instead of a checkpoint after every call. The
//! standby in sync stores each call's effect and its entry in the window
//! of answered calls before the holder answers, so after the failover no
//! call ran twice, every reply is its call's single run's, and, unlike
//! warm standby, no acknowledged call was lost. The fake-cluster case is
//! `a_retry_after_a_failover_to_the_sync_standby_*` in
//! `tests/sync_standby.rs`.
//!
//! One scenario per test binary: `ractor::pg` is a process static.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor_takeover::{CallErr, GlobalClient};
use ractor_takeover_testkit::node::TAKEOVER;
use ractor_takeover_testkit::power_monitor::{PowerMonitor, PowerMsg, PowerReply, NAME};
use ractor_takeover_testkit::procs::{wait_for, Log, Mesh, NodeProc};
use tokio::time::Instant;

const COOKIE: &str = "real-sync-exactly-once-test";
const CALLERS: usize = 6;
const CONTROL: usize = 2;
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// One call: its key, what its caller got, and when.
type Made = (String, Result<PowerReply, CallErr>, Instant);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sync_standby_under_a_sigkill_no_call_runs_twice_and_none_acknowledged_is_lost() {
    support::init_tracing();
    let mesh = Mesh::new(&["client", "a", "b", "c"], COOKIE);
    let flags = |me: &str| {
        mesh.flags(
            me,
            &[("placement", "a > b > c"), ("sync-standby", "refuse")],
        )
    };
    let me = mesh.client_node().await;
    let client = GlobalClient::<PowerMonitor>::new(NAME, me.registry());
    let log = Log::default();

    let a = NodeProc::start("a", &flags("a"), &log);
    log.wait("a", &["Registered", "Normal"]).await;
    let _b = NodeProc::start("b", &flags("b"), &log);
    log.wait("b", &["Standby"]).await;
    let mut c = NodeProc::start("c", &flags("c"), &log);
    log.wait("c", &["Standby"]).await;
    wait_for("the client sees a as holder", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "a")
    })
    .await;

    let made: Arc<Mutex<Vec<Made>>> = Arc::default();
    // Callers with retries off, beside them: what they get shows how many
    // calls of this run had an unknown outcome, which the others retried.
    let control: Arc<Mutex<Vec<Made>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..CALLERS + CONTROL)
        .map(|caller| {
            let (client, made, stop) = if caller < CALLERS {
                (client.clone(), made.clone(), stop.clone())
            } else {
                (
                    client.clone().with_retries(false),
                    control.clone(),
                    stop.clone(),
                )
            };
            tokio::spawn(async move {
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let key = format!("caller{caller}-{seq}");
                    let got = client
                        .call(PowerMsg::Once { key: key.clone() }, CALL_TIMEOUT)
                        .await;
                    made.lock().unwrap().push((key, got, Instant::now()));
                }
            })
        })
        .collect();
    let count = || made.lock().unwrap().len();
    wait_for("300 calls answered", || count() >= 300).await;

    tracing::info!("--- SIGKILL the holder a");
    a.kill();
    log.wait("b", &["Registered", "Failover"]).await;
    let failed_over = Instant::now();
    let n = count();
    wait_for("300 more calls after the failover", || count() >= n + 300).await;

    tracing::info!("--- c takes the name over; then placement takes it back to b");
    c.send_line(TAKEOVER).expect("write to c");
    log.wait("c", &["TAKEOVER", "Ok("]).await;
    wait_for("b took the name back", || {
        log.count("b", &["Registered", "Takeover"]) >= 1
    })
    .await;
    let n = count();
    wait_for("300 more calls after the takeovers", || count() >= n + 300).await;
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }

    let made = made.lock().unwrap().clone();
    let (mut lost, mut from_dead_a, mut refused, mut errors) = (0, 0, 0, Vec::new());
    for (key, got, at) in &made {
        let ran = client
            .call(PowerMsg::Applied { key: key.clone() }, CALL_TIMEOUT)
            .await
            .expect("the final holder answers");
        assert!(ran.total <= 1, "{key} ran {} times", ran.total);
        match got {
            Ok(reply) if ran.total == 1 => {
                let first = PowerReply {
                    total: reply.total,
                    ..ran.clone()
                };
                assert_eq!(*reply, first, "{key}: the reply is its single run's");
                if reply.node == "a" && *at > failed_over {
                    // Run by a before it died, answered after b failed over:
                    // from the window that travelled in b's replica.
                    from_dead_a += 1;
                }
            }
            // Acknowledged, yet not in the final state: what synchronous
            // standby must never do.
            Ok(_) => lost += 1,
            // Refuse mode while the new holder had no standby yet: not
            // applied by this try, nor by an earlier one the window knew.
            Err(CallErr::NoStandby) if ran.total == 0 => refused += 1,
            Err(e) => errors.push((key.clone(), e.clone())),
        }
    }
    let unknown = control
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, got, _)| {
            matches!(
                got,
                Err(CallErr::NoReply | CallErr::HolderDown { .. } | CallErr::Moved)
            )
        })
        .count();
    let end = client
        .call(PowerMsg::Count, CALL_TIMEOUT)
        .await
        .expect("the final holder answers");
    println!(
        "exactly-once under load: {} calls from {CALLERS} callers, 1 SIGKILL of the holder, 2 takeovers; \
         ran twice: {}; errors: {}; replies of a's runs delivered after its death: {from_dead_a}; \
         acknowledged but lost in the crash: {lost}; refused NoStandby (not applied): {refused}; \
         calls of the {CONTROL} callers with retries off that ended with an unknown outcome: {unknown}",
        made.len(),
        end.duplicates,
        errors.len(),
    );
    assert_eq!(end.duplicates, 0, "no call ran twice");
    assert_eq!(lost, 0, "no acknowledged call was lost");
    assert!(errors.is_empty(), "calls that failed: {errors:?}");
    me.shutdown();
}
