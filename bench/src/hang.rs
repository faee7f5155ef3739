//! Failover time after a hung holder: SIGSTOP of the holder's process to
//! the first answer from the new holder, beside `failover_time` (SIGKILL).
//! A stopped process keeps its sessions open, so its peers see it down only
//! after the detection time (no closed session tells them at once). After
//! each round the holder is resumed (SIGCONT): its lease is void after the
//! stall, it sees the new holder and does not serve, and placement (`a > c`)
//! gives it the name back before the next round.

use super::*;

/// Sends `sig` to the node's process, by its PID.
fn signal(cluster: &Cluster, name: &str, sig: &str) -> Result<(), AnyErr> {
    let pid = cluster.pid(name);
    if pid.is_empty() {
        return Err(format!("no process for node {name}").into());
    }
    let pid: u32 = pid.parse()?;
    ractor_takeover_testkit::procs::signal_pid(pid, sig)?;
    Ok(())
}

pub(crate) async fn hang_failover(
    opts: &Opts,
    cluster: &mut Cluster,
    figs: &mut Figures,
    t0: Instant,
) -> Result<(), AnyErr> {
    // The SIGKILL series may have left `a` dead.
    if !cluster.procs.contains_key("a") {
        cluster.spawn("a")?;
        cluster.wait_ready("a").await?;
    }
    let client = GlobalClient::<Bench>::new(FO_NAME, cluster.me.registry());
    let mut times = Vec::new();
    let mut behind_total = 0usize;
    for k in 0..opts.failovers {
        wait_until("a to hold bench_fo", Duration::from_secs(60), || {
            client.whereis().is_some_and(|h| h.node.as_str() == "a")
        })
        .await?;
        // Calls without pause, each answer tagged with who answered, at
        // which epoch.
        let answers: Arc<Mutex<Vec<(Instant, String, u64)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let caller = tokio::spawn({
            let (client, answers, stop) = (client.clone(), answers.clone(), stop.clone());
            async move {
                let until = Instant::now() + Duration::from_secs(120);
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    seq += 1;
                    let call = BenchMsg::Incr {
                        client: 7000 + k as u32,
                        seq,
                    };
                    match client.call(call, Duration::from_millis(500)).await {
                        Ok(BenchReply::Count { node, epoch, .. }) => answers
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((Instant::now(), node, epoch)),
                        Ok(_) => {}
                        Err(CallErr::Timeout) => {}
                        Err(_) => tokio::time::sleep(Duration::from_micros(200)).await,
                    }
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stopped = Instant::now();
        signal(cluster, "a", "STOP")?;
        let found = wait_until("an answer from c", Duration::from_secs(60), || {
            answers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|(at, n, _)| *at > stopped && n == "c")
        })
        .await;
        signal(cluster, "a", "CONT")?;
        // Let the resumed holder's queued calls come out (or not) before
        // counting what it answered after c.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        stop.store(true, Ordering::Relaxed);
        caller.await?;
        found?;
        let answers = answers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let first = answers
            .iter()
            .find(|(at, n, _)| *at > stopped && n == "c")
            .map(|(at, _, _)| *at - stopped)
            .ok_or("no answer from c")?;
        let mut newest = 0;
        let mut behind = 0;
        for (_, _, epoch) in &answers {
            if *epoch < newest {
                behind += 1;
            }
            newest = newest.max(*epoch);
        }
        behind_total += behind;
        progress(
            &format!(
                "hang {}: first answer from c {:.1} ms after the SIGSTOP of a; {behind} OKs from an older epoch after a newer one",
                k + 1,
                ms(first)
            ),
            t0,
        );
        times.push(ms(first));
    }
    let (hb, misses) = cluster.heartbeat;
    figs.add(
        "failover_time_hung",
        pct(&times, 0.5),
        "ms",
        "<= 1500",
        &format!(
            "p50 of {}: SIGSTOP of the holder -> first answer from the new holder; heartbeat {hb} ms x {misses} misses (detection {} ms), failover_delay 0",
            times.len(),
            hb * misses as u64
        ),
    );
    figs.add(
        "failover_time_hung_max",
        pct(&times, 1.0),
        "ms",
        "",
        &format!("max of {}", times.len()),
    );
    figs.add(
        "hung_holder_stale_oks",
        behind_total as f64,
        "calls",
        "0",
        "OKs from an older epoch after a newer one, over every hang round",
    );
    Ok(())
}
