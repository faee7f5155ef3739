//! Load: throughput, loss and duplicates, with and without takeovers.

use super::*;

#[derive(Default)]
pub(crate) struct LoadTotals {
    pub(crate) acked: u64,
    pub(crate) errors: u64,
    pub(crate) lost: u64,
    pub(crate) duplicated: u64,
    pub(crate) takeovers: usize,
}

impl LoadTotals {
    pub(crate) fn add(&mut self, r: &LoadResult) {
        self.acked += r.calls;
        self.errors += r.errors;
        self.lost += r.lost;
        self.duplicated += r.duplicated;
        self.takeovers += r.takeovers;
    }
}

pub(crate) struct LoadResult {
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    pub(crate) seconds: f64,
    pub(crate) lost: u64,
    pub(crate) duplicated: u64,
    pub(crate) takeovers: usize,
}

/// A client that calls `Incr` without pause until `stop` (or `until`),
/// numbering its calls; `on_reply` sees each answer's arrival.
pub(crate) async fn incr_loop(
    client: GlobalClient<Bench>,
    id: u32,
    stop: Arc<AtomicBool>,
    until: Instant,
    on_reply: impl Fn(Instant) + Send + 'static,
) -> (u64, u64) {
    let (mut acked, mut errors) = (0u64, 0u64);
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until && seq < 100_000_000 {
        seq += 1;
        match client
            .call(BenchMsg::Incr { client: id, seq }, CALL_TIMEOUT)
            .await
        {
            Ok(_) => {
                acked += 1;
                on_reply(Instant::now());
            }
            Err(e) => {
                errors += 1;
                if errors <= 5 {
                    eprintln!("  client {id}: call {seq} failed: {e}");
                }
            }
        }
    }
    (acked, errors)
}

/// Compares what the clients saw acknowledged with what the state recorded.
pub(crate) async fn check_clients(
    client: &GlobalClient<Bench>,
    acked: &[(u32, u64)],
) -> Result<(u64, u64), AnyErr> {
    let BenchReply::State { clients, .. } = client.call(BenchMsg::Get, CALL_TIMEOUT).await? else {
        return Err("Get answered something else".into());
    };
    let recs: HashMap<u32, ClientRec> = clients.into_iter().collect();
    let (mut lost, mut dups) = (0, 0);
    for (id, n) in acked {
        let rec = recs.get(id).copied().unwrap_or_default();
        let distinct = rec.handled - rec.dups;
        lost += n.saturating_sub(distinct);
        dups += rec.dups;
    }
    Ok((lost, dups))
}

pub(crate) async fn throughput(
    opts: &Opts,
    client: &GlobalClient<Bench>,
    clients: u32,
    moving: bool,
    next_client: &mut u32,
) -> Result<LoadResult, AnyErr> {
    let stop = Arc::new(AtomicBool::new(false));
    let duration = Duration::from_secs_f64(opts.seconds);
    let start = Instant::now();
    let until = start + duration + Duration::from_secs(60);
    let ids: Vec<u32> = (0..clients).map(|i| *next_client + i).collect();
    *next_client += clients;
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| tokio::spawn(incr_loop(client.clone(), *id, stop.clone(), until, |_| {})))
        .collect();
    let mut takeovers = 0;
    if moving {
        // At 0.5 s, 1.5 s, ...: one takeover per second of the run.
        for i in 0..(opts.seconds.round() as u64).max(1) {
            tokio::time::sleep_until(start + Duration::from_millis(500 + 1000 * i)).await;
            if start.elapsed() >= duration {
                break;
            }
            takeover_other(client).await?;
            takeovers += 1;
        }
    }
    tokio::time::sleep_until(start + duration).await;
    stop.store(true, Ordering::Relaxed);
    let (mut calls, mut errors, mut acked) = (0, 0, Vec::new());
    for (id, task) in ids.iter().zip(tasks) {
        let (a, e) = task.await?;
        calls += a;
        errors += e;
        acked.push((*id, a));
    }
    // Until the last call in flight at the stop was answered.
    let seconds = start.elapsed().as_secs_f64();
    let (lost, duplicated) = check_clients(client, &acked).await?;
    Ok(LoadResult {
        calls,
        errors,
        seconds,
        lost,
        duplicated,
        takeovers,
    })
}
