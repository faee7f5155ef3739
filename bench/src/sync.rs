//! Synchronous standby's cost and its takeovers: `bench_sync` (sync
//! standby, refuse mode, the bench server's deltas) against `bench` (off),
//! the same server on the same nodes in the same run, both held by `a`
//! with `b` as standby.
//!
//! - `sync_rtt_ratio_{min,median,max}`: over `ROUNDS` rounds, the p50 of
//!   an `Incr` round trip with sync on over the p50 with it off, calls
//!   alternated one by one (the on/off round trips themselves beside);
//! - `sync_throughput_{1,8}_ratio_{min,median,max}`: calls/s of 1 and 8
//!   clients calling without pause, on over off, runs interleaved;
//! - `sync_takeover_pause_{1k,64m}_p50` / `_max`: the longest gap between
//!   replies of a client calling `bench_sync` without pause, over
//!   takeovers back and forth, with a state blob of that size, and
//!   `sync_pause_64m_over_1k` (goal: at most 2).

use super::*;
use crate::cluster::takeover_other_by;
use crate::pause::longest_gap;

/// Rounds of the ratios (min/median/max are over these).
fn rounds(opts: &Opts) -> usize {
    if opts.quick {
        3
    } else {
        5
    }
}

/// Min, median and max of `v`.
fn spread(v: &[f64]) -> (f64, f64, f64) {
    (pct(v, 0.0), pct(v, 0.5), pct(v, 1.0))
}

fn add_spread(figs: &mut Figures, name: &str, v: &[f64], note: &str) {
    let (lo, mid, hi) = spread(v);
    figs.add(&format!("{name}_min"), lo, "x", "", note);
    figs.add(&format!("{name}_median"), mid, "x", "", "");
    figs.add(&format!("{name}_max"), hi, "x", "", "");
}

/// Moves the name of `client` to `a` if `b` holds it.
async fn hold_on_a(client: &GlobalClient<Bench>, op: &str) -> Result<(), AnyErr> {
    wait_until("a holder", Duration::from_secs(30), || {
        client.whereis().is_some()
    })
    .await?;
    if client.whereis().is_some_and(|h| h.node.as_str() == "b") {
        takeover_other_by(client, op).await?;
    }
    wait_until("a holds", Duration::from_secs(30), || {
        client.whereis().is_some_and(|h| h.node.as_str() == "a")
    })
    .await
}

pub(crate) async fn sync_series(
    opts: &Opts,
    cluster: &mut Cluster,
    figs: &mut Figures,
    next_client: &mut u32,
    t0: Instant,
) -> Result<(), AnyErr> {
    let off = GlobalClient::<Bench>::new(NAME, cluster.me.registry());
    let on = GlobalClient::<Bench>::new(SYNC_NAME, cluster.me.registry());
    hold_on_a(&off, "takeover").await?;
    hold_on_a(&on, "takeover_sync").await?;
    // Small states for the cost figures.
    for c in [&off, &on] {
        c.call(BenchMsg::SetBlob { bytes: KIB }, CALL_TIMEOUT)
            .await?;
    }

    progress("sync: round trips, on vs off", t0);
    let (id_off, id_on) = (*next_client, *next_client + 1);
    *next_client += 2;
    let (seq_off, seq_on) = (AtomicU64::new(0), AtomicU64::new(0));
    let t = Duration::from_secs(10);
    let pairs = (opts.rtt_calls / rounds(opts)).max(100);
    let (mut ratios, mut on_p50, mut off_p50) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds(opts) {
        let (s_off, s_on) = alternate(
            pairs,
            || {
                let seq = seq_off.fetch_add(1, Ordering::Relaxed) + 1;
                off.call(
                    BenchMsg::Incr {
                        client: id_off,
                        seq,
                    },
                    t,
                )
            },
            || {
                let seq = seq_on.fetch_add(1, Ordering::Relaxed) + 1;
                on.call(BenchMsg::Incr { client: id_on, seq }, t)
            },
        )
        .await?;
        let (a, b) = (pct(&s_off, 0.5), pct(&s_on, 0.5));
        off_p50.push(a);
        on_p50.push(b);
        ratios.push(b / a);
    }
    figs.add(
        "sync_rtt_off_p50",
        pct(&off_p50, 0.5),
        "us",
        "",
        &format!(
            "median over {} rounds of the p50 of {pairs} Incr calls, sync standby off",
            rounds(opts)
        ),
    );
    figs.add(
        "sync_rtt_on_p50",
        pct(&on_p50, 0.5),
        "us",
        "",
        "the same, sync standby on (refuse), the call's delta stored on b before the answer",
    );
    add_spread(
        figs,
        "sync_rtt_ratio",
        &ratios,
        "per round: p50 on / p50 off, calls alternated",
    );

    for clients in [1u32, 8] {
        progress(
            &format!("sync: throughput, {clients} client(s), on vs off"),
            t0,
        );
        let mut ratios = Vec::new();
        let (mut r_off, mut r_on) = (Vec::new(), Vec::new());
        for _ in 0..rounds(opts) {
            let a = throughput(opts, &off, clients, false, next_client).await?;
            let b = throughput(opts, &on, clients, false, next_client).await?;
            for r in [&a, &b] {
                if r.lost + r.duplicated + r.errors > 0 {
                    return Err(format!(
                        "throughput run: lost {}, duplicated {}, errors {}",
                        r.lost, r.duplicated, r.errors
                    )
                    .into());
                }
            }
            let (ca, cb) = (a.calls as f64 / a.seconds, b.calls as f64 / b.seconds);
            r_off.push(ca);
            r_on.push(cb);
            ratios.push(cb / ca);
        }
        figs.add(
            &format!("sync_throughput_{clients}_off"),
            pct(&r_off, 0.5),
            "calls/s",
            "",
            &format!(
                "median of {} runs of {:.1} s, sync standby off",
                rounds(opts),
                opts.seconds
            ),
        );
        figs.add(
            &format!("sync_throughput_{clients}_on"),
            pct(&r_on, 0.5),
            "calls/s",
            "",
            "the same, sync standby on",
        );
        add_spread(
            figs,
            &format!("sync_throughput_{clients}_ratio"),
            &ratios,
            "per run pair: calls/s on / off, runs interleaved",
        );
        cluster.drain_lines();
    }

    let mut p50s = BTreeMap::new();
    for (label, bytes) in [("1k", KIB), ("64m", 64 * MIB)] {
        if !opts.sizes.iter().any(|s| s == label) {
            continue;
        }
        progress(&format!("sync: takeover pauses, state {label}"), t0);
        let p50 = pause(opts, &on, figs, label, bytes, next_client).await?;
        p50s.insert(label, p50);
        cluster.drain_lines();
    }
    if let (Some(small), Some(big)) = (p50s.get("1k"), p50s.get("64m")) {
        figs.add(
            "sync_pause_64m_over_1k",
            big / small,
            "x",
            "<= 2",
            "sync_takeover_pause_64m_p50 / sync_takeover_pause_1k_p50",
        );
    }
    Ok(())
}

/// Takeovers back and forth of `bench_sync` with a blob of `bytes`, a
/// client calling without pause; returns the p50 of the longest gaps.
async fn pause(
    opts: &Opts,
    client: &GlobalClient<Bench>,
    figs: &mut Figures,
    label: &str,
    bytes: u64,
    next_client: &mut u32,
) -> Result<f64, AnyErr> {
    match client
        .call(BenchMsg::SetBlob { bytes }, CALL_TIMEOUT)
        .await?
    {
        BenchReply::Blob { len } if len == bytes => {}
        other => return Err(format!("SetBlob answered {other:?}").into()),
    }
    let count = if bytes >= 64 * MIB {
        opts.takeovers_64m
    } else {
        opts.takeovers
    };
    let replies: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let id = *next_client;
    *next_client += 1;
    let last_reply = Arc::new(AtomicU64::new(0));
    let base = Instant::now();
    let caller = tokio::spawn(incr_loop(
        client.clone(),
        id,
        stop.clone(),
        base + Duration::from_secs(1200),
        {
            let (replies, last_reply) = (replies.clone(), last_reply.clone());
            move |at| {
                replies.lock().unwrap_or_else(|e| e.into_inner()).push(at);
                last_reply.store((at - base).as_nanos() as u64, Ordering::Release);
            }
        },
    ));
    // The standby in sync before the first takeover: a call answered.
    let start = last_reply.load(Ordering::Acquire);
    wait_until(
        "a reply before the takeovers",
        Duration::from_secs(60),
        || last_reply.load(Ordering::Acquire) > start,
    )
    .await?;
    let (mut gaps, mut moved) = (Vec::new(), Vec::new());
    for _ in 0..count {
        let from = Instant::now();
        let (_, outcome) = takeover_other_by(client, "takeover_sync").await?;
        let to = Instant::now();
        let after = (to - base).as_nanos() as u64;
        wait_until(
            "a reply after the takeover",
            Duration::from_secs(60),
            || last_reply.load(Ordering::Acquire) > after,
        )
        .await?;
        let gap = {
            let r = replies.lock().unwrap_or_else(|e| e.into_inner());
            longest_gap(&r, from + Duration::from_micros(outcome.waited_us), to)
        };
        gaps.push(ms(gap));
        moved.push(outcome.state_bytes as f64);
        // Settle: the old holder back as a standby, caught up.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (acked, errors) = caller.await?;
    let (lost, duplicated) = check_clients(client, &[(id, acked)]).await?;
    let p50 = pct(&gaps, 0.5);
    figs.add(
        &format!("sync_takeover_pause_{label}_p50"),
        p50,
        "ms",
        "",
        &format!(
            "{} takeovers of bench_sync, state {label}: longest gap between replies; state moved p50 {} B; errors {errors}, lost {lost}, duplicated {duplicated}",
            gaps.len(),
            pct(&moved, 0.5)
        ),
    );
    figs.add(
        &format!("sync_takeover_pause_{label}_max"),
        pct(&gaps, 1.0),
        "ms",
        "",
        "",
    );
    Ok(p50)
}
