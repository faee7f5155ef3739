//! The hung-holder scenario of `tests/real_hang.rs` (`real_hang/scenario.rs`),
//! with the stronger check: answers never go back in epoch at all.

#[path = "real_hang/scenario.rs"]
mod scenario;
mod support;

/// Once the client has an OK from an epoch, no OK from an older epoch
/// follows. The hung holder's own stale answers are gone (see
/// `tests/real_hang.rs`); what is left is the conflict after it resumes:
/// placement (`a > b > c`) makes `a` win, it re-registers above `b` and
/// serves, and `b` serves on under its older epoch until it sees that
/// registration (seen: 4 such OKs in 1 of 5 runs). W2-conflict's work (the
/// fault suite's invariant "no OK from an epoch after an OK from a newer
/// one", and the conflict path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "known gap (W2-conflict): a conflict's loser serves under its older epoch until it sees the winner's re-registration"]
async fn answers_never_go_back_in_epoch_after_a_hang() {
    support::init_tracing();
    let out = scenario::run().await;
    assert_eq!(out.holders, 1, "one holder at the end: {:?}", out.by_holder);
    let mut newest = 0;
    let mut behind = Vec::new();
    for (at, result) in &out.records {
        if let Ok(r) = result {
            if r.epoch < newest {
                behind.push((at.duration_since(out.stopped), r.clone()));
            }
            newest = newest.max(r.epoch);
        }
    }
    println!(
        "OKs from an older epoch after a newer one: {}",
        behind.len()
    );
    assert!(
        behind.is_empty(),
        "{} OKs from an older epoch after an OK from a newer one (first, with the time since SIGSTOP: {:?}); answers by (node, epoch): {:?}",
        behind.len(),
        behind.first(),
        out.by_holder
    );
}
