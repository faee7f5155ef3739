//! Failover time after SIGKILL of the holder.

use super::*;

pub(crate) async fn failover(
    opts: &Opts,
    cluster: &mut Cluster,
    figs: &mut Figures,
    t0: Instant,
) -> Result<(), AnyErr> {
    let client = GlobalClient::<Bench>::new(FO_NAME, cluster.me.registry());
    let mut times = Vec::new();
    for k in 0..opts.failovers {
        wait_until("a to hold bench_fo", Duration::from_secs(60), || {
            client.whereis().is_some_and(|h| h.node.as_str() == "a")
        })
        .await?;
        // Calls without pause, each answer tagged with who answered.
        let answers: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let caller = tokio::spawn({
            let (client, answers, stop) = (client.clone(), answers.clone(), stop.clone());
            async move {
                let until = Instant::now() + Duration::from_secs(120);
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    seq += 1;
                    let call = BenchMsg::Incr {
                        client: 5000 + k as u32,
                        seq,
                    };
                    match client.call(call, Duration::from_secs(2)).await {
                        Ok(BenchReply::Count { node, .. }) => answers
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((Instant::now(), node)),
                        Ok(_) => {}
                        Err(CallErr::Timeout) => {}
                        Err(_) => tokio::time::sleep(Duration::from_micros(200)).await,
                    }
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let killed = Instant::now();
        cluster.kill("a")?;
        let found = wait_until("an answer from c", Duration::from_secs(60), || {
            answers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|(at, n)| *at > killed && n == "c")
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        caller.await?;
        found?;
        let first = answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(at, n)| *at > killed && n == "c")
            .map(|(at, _)| *at - killed)
            .ok_or("no answer from c")?;
        progress(
            &format!(
                "failover {}: first answer from c {:.1} ms after the SIGKILL of a",
                k + 1,
                ms(first)
            ),
            t0,
        );
        times.push(ms(first));
        if k + 1 < opts.failovers {
            // a comes back and takes the name back (placement a > c).
            cluster.spawn("a")?;
            cluster.wait_ready("a").await?;
        }
    }
    let (hb, misses) = cluster.heartbeat;
    let settings = format!(
        "heartbeat {hb} ms x {misses} misses (detection {} ms), failover_delay 0; a closed session marks the peer down at once",
        hb * misses as u64
    );
    figs.add(
        "failover_time",
        pct(&times, 0.5),
        "ms",
        "",
        &format!(
            "p50 of {}: SIGKILL of the holder -> first answer from the new holder; {settings}",
            times.len()
        ),
    );
    figs.add(
        "failover_time_max",
        pct(&times, 1.0),
        "ms",
        "",
        &format!("max of {}", times.len()),
    );
    figs.add("heartbeat_interval", hb as f64, "ms", "", "");
    figs.add("heartbeat_misses", misses as f64, "count", "", "");
    Ok(())
}
