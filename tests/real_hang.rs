//! A holder that hangs (SIGSTOP, what a GC pause, a swap storm or a VM
//! migration does) and resumes (SIGCONT) while a client calls without pause.
//! This test process is the client node; the scenario is in
//! `real_hang/scenario.rs`.

#[path = "real_hang/scenario.rs"]
mod scenario;
mod support;

/// The hung holder `a` must not answer, under the epoch it held when it
/// was stopped, after the client got an OK from a newer epoch (its
/// successor `b`'s): the calls that queued towards it while it was stopped
/// wait for its lease, and by the time it is back `a` sees `b`'s
/// registration. One holder at the end.
///
/// What happens after that (the conflict: `b`, whose state descends from
/// its failover, wins against `a`, and placement then moves the name back
/// to `a` by a takeover, with `b`'s state) is checked by
/// `tests/real_hang_epochs.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_holder_never_answers_after_its_successor() {
    support::init_tracing();
    let out = scenario::run().await;
    assert_eq!(
        out.holders,
        1,
        "one holder at the end: {out:?}",
        out = out.by_holder
    );
    let first_newer = out
        .records
        .iter()
        .position(|(_, r)| r.as_ref().is_ok_and(|r| r.epoch > out.hung_epoch))
        .expect("an OK from the successor");
    let stale: Vec<_> = out.records[first_newer..]
        .iter()
        .filter_map(|(at, r)| r.as_ref().ok().map(|r| (at.duration_since(out.stopped), r)))
        .filter(|(_, r)| r.node == "a" && r.epoch == out.hung_epoch)
        .collect();
    println!(
        "OKs from the hung holder's epoch {} after the first OK from a newer one: {}; errors: {:?}",
        out.hung_epoch,
        stale.len(),
        out.errors
    );
    assert!(
        stale.is_empty(),
        "{} OKs from the hung holder's epoch {} after an OK from a newer one (first, with the time since SIGSTOP: {:?}); answers by (node, epoch): {:?}",
        stale.len(),
        out.hung_epoch,
        stale.first(),
        out.by_holder
    );
}
