//! Takeover pauses per state size, against their baselines.

use super::*;

/// The longest gap between consecutive replies that overlaps `[from, to]`.
pub(crate) fn longest_gap(replies: &[Instant], from: Instant, to: Instant) -> Duration {
    // First pair whose second reply is at or after `from`.
    let first = replies.partition_point(|r| *r < from).max(1);
    let mut best = Duration::ZERO;
    for j in first..replies.len() {
        if replies[j - 1] > to {
            break;
        }
        best = best.max(replies[j] - replies[j - 1]);
    }
    best
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn pause_series(
    opts: &Opts,
    cluster: &mut Cluster,
    client: &GlobalClient<Bench>,
    figs: &mut Figures,
    label: &str,
    bytes: u64,
    next_client: &mut u32,
    checks: &mut LoadTotals,
    t0: Instant,
) -> Result<(), AnyErr> {
    let big = bytes >= 64 * MIB;
    let count = if big {
        opts.takeovers_64m
    } else {
        opts.takeovers
    };
    let budget = if big {
        opts.budget_64m
    } else {
        Duration::from_secs(120)
    };
    progress(
        &format!("state blob {label}: {count} takeovers back and forth"),
        t0,
    );
    match client
        .call(BenchMsg::SetBlob { bytes }, CALL_TIMEOUT)
        .await?
    {
        BenchReply::Blob { len } if len == bytes => {}
        other => return Err(format!("SetBlob answered {other:?}").into()),
    }

    // The same bytes in one plain call, node to node (c's Control to a's
    // Echo). From c, which takes no part in the takeovers: ractor_cluster's
    // session writer keeps the buffer of the largest frame it wrote, so a
    // 64 MiB call from b would leave 64 MiB resident in b that the peak RSS
    // below would then count against the takeover.
    if label != "1k" {
        let reps: u32 = match (big, opts.quick) {
            (true, true) => 2,
            (true, false) => 5,
            (false, true) => 5,
            (false, false) => 20,
        };
        let times: Vec<u64> = ctl(
            "c",
            "raw",
            &("a".to_string(), bytes, reps),
            CALL_TIMEOUT * (reps + 1),
        )
        .await?;
        let samples: Vec<f64> = times.iter().map(|t| *t as f64 / 1e3).collect();
        figs.add(
            &format!("raw_transfer_{label}"),
            pct(&samples, 0.5),
            "ms",
            "",
            &format!("p50 of {reps}: one plain call c -> Echo on a carrying {label} (8 B reply)"),
        );
    }

    if big {
        // Peaks from here on only.
        for n in ["a", "b"] {
            ctl::<Mem>(n, "stats", &true, Duration::from_secs(10)).await?;
        }
    }

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
        base + budget + Duration::from_secs(600),
        {
            let (replies, last_reply) = (replies.clone(), last_reply.clone());
            move |at| {
                replies.lock().unwrap_or_else(|e| e.into_inner()).push(at);
                last_reply.store((at - base).as_nanos() as u64, Ordering::Release);
            }
        },
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let settle = Duration::from_millis(if big { 300 } else { 100 });
    let (mut gaps, mut server_pauses, mut totals) = (Vec::new(), Vec::new(), Vec::new());
    let mut first_mem: Option<(String, Mem, String, Mem)> = None;
    let series_start = Instant::now();
    for i in 0..count {
        if series_start.elapsed() > budget {
            eprintln!("  {label}: time budget of {budget:?} reached after {i} takeovers");
            break;
        }
        let from = Instant::now();
        let (target, outcome) = takeover_other(client).await?;
        let to = Instant::now();
        // The first reply after the takeover closes the gap.
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
        server_pauses.push(outcome.pause_us as f64 / 1e3);
        totals.push(outcome.total_us as f64 / 1e3);
        if big && i == 0 {
            let source = if target == "a" { "b" } else { "a" };
            let m_to: Mem = ctl(&target, "stats", &false, Duration::from_secs(10)).await?;
            let m_from: Mem = ctl(source, "stats", &false, Duration::from_secs(10)).await?;
            first_mem = Some((source.to_string(), m_from, target.clone(), m_to));
        }
        tokio::time::sleep(settle).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (acked, errors) = caller.await?;
    let (lost, duplicated) = check_clients(client, &[(id, acked)]).await?;
    checks.acked += acked;
    checks.errors += errors;
    checks.lost += lost;
    checks.duplicated += duplicated;
    let done = gaps.len();
    let count_note = if done < count {
        format!(" (only {done} of {count}: time budget)")
    } else {
        String::new()
    };
    figs.add(
        &format!("takeover_pause_{label}_p50"),
        pct(&gaps, 0.5),
        "ms",
        "",
        &format!(
            "{done} takeovers{count_note}: longest gap between replies of a client calling without pause"
        ),
    );
    figs.add(
        &format!("takeover_pause_{label}_p99"),
        pct(&gaps, 0.99),
        "ms",
        "",
        &if done < 100 {
            format!("nearest rank over {done}: the max of the series")
        } else {
            format!("nearest rank over {done}")
        },
    );
    figs.add(
        &format!("takeover_count_{label}"),
        done as f64,
        "count",
        if big { "" } else { ">= 20" },
        &format!("client errors {errors}, lost {lost}, duplicated {duplicated}"),
    );
    figs.add(
        &format!("takeover_server_pause_{label}_p50"),
        pct(&server_pauses, 0.5),
        "ms",
        "",
        "HandoverReport.pause: steal until the buffered calls were served",
    );
    figs.add(
        &format!("takeover_call_{label}_p50"),
        pct(&totals, 0.5),
        "ms",
        "",
        "the whole takeover() on the new node, until it returned",
    );
    let p50 = pct(&gaps, 0.5);
    if label == "1k" {
        let rtt = figs.get("call_rtt_direct") / 1e3;
        figs.add(
            "pause_1k_rtt_multiple",
            p50 / rtt,
            "x",
            "<= 3",
            "takeover_pause_1k_p50 / call_rtt_direct",
        );
    } else {
        let raw = figs.get(&format!("raw_transfer_{label}"));
        figs.add(
            &format!("pause_{label}_raw_multiple"),
            p50 / raw,
            "x",
            "<= 1.5",
            &format!("takeover_pause_{label}_p50 / raw_transfer_{label}"),
        );
    }
    if big {
        let state_mib = bytes as f64 / MIB as f64;
        let mib = |kb: u64| kb as f64 / 1024.0;
        if let Some((from, m_from, to, m_to)) = first_mem {
            figs.add(
                "peak_rss_64m_sender",
                mib(m_from.hwm_kb),
                "MiB",
                "",
                &format!(
                    "VmHWM of {from} (old holder) over the first takeover; pid {}",
                    cluster.pid(&from)
                ),
            );
            figs.add(
                "peak_rss_64m_receiver",
                mib(m_to.hwm_kb),
                "MiB",
                "",
                &format!(
                    "VmHWM of {to} (new holder) over the first takeover; pid {}",
                    cluster.pid(&to)
                ),
            );
        }
        let a: Mem = ctl("a", "stats", &false, Duration::from_secs(10)).await?;
        let b: Mem = ctl("b", "stats", &false, Duration::from_secs(10)).await?;
        let peak = mib(a.hwm_kb.max(b.hwm_kb));
        figs.add(
            "peak_rss_64m",
            peak,
            "MiB",
            "",
            &format!(
                "max VmHWM of a, b over all {done} takeovers (a {:.0}, b {:.0}; now a {:.0}, b {:.0})",
                mib(a.hwm_kb),
                mib(b.hwm_kb),
                mib(a.rss_kb),
                mib(b.rss_kb)
            ),
        );
        figs.add(
            "peak_rss_64m_ratio",
            peak / state_mib,
            "x",
            "< 3",
            "peak_rss_64m / 64 MiB (whole process, runtime included)",
        );
        // Back to a small state for what follows.
        client
            .call(BenchMsg::SetBlob { bytes: KIB }, CALL_TIMEOUT)
            .await?;
    }
    Ok(())
}
