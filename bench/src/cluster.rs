//! The real node processes (three nodes and this client node), the
//! control calls, and the real figures' driver.

use super::*;

pub(crate) const NODES: [&str; 3] = ["a", "b", "c"];

pub(crate) struct Cluster {
    pub(crate) me: ClusterNode,
    pub(crate) ports: HashMap<String, u16>,
    pub(crate) procs: HashMap<String, NodeProc>,
    pub(crate) pids: HashMap<String, u32>,
    /// Nodes whose current process printed `READY`.
    pub(crate) ready: HashSet<String>,
    pub(crate) lines_tx: mpsc::UnboundedSender<(String, String)>,
    pub(crate) lines: mpsc::UnboundedReceiver<(String, String)>,
    pub(crate) heartbeat: (u64, u32),
    pub(crate) verbose: bool,
}

/// The inbound frame cap of the bench's nodes. Why above the default
/// (16 MiB): the baseline of the big takeovers is one plain call carrying
/// the whole state (64 MiB), which must fit in one frame; the takeover
/// itself moves its state in parts under any cap.
const FRAME_CAP: u64 = 128 << 20;

impl Cluster {
    pub(crate) async fn start(opts: &Opts) -> Result<Self, AnyErr> {
        let names = ["bench", "a", "b", "c"];
        let ports: HashMap<String, u16> = names
            .iter()
            .map(|n| n.to_string())
            .zip(free_ports(names.len()))
            .collect();
        let peers: Vec<PeerAddr> = NODES
            .iter()
            .map(|n| format!("{n}@127.0.0.1:{}", ports[*n]).parse())
            .collect::<Result<_, _>>()?;
        let me = ClusterNode::start(
            ClusterConfig::new("bench", ports["bench"], COOKIE)
                .with_peers(peers)
                .with_heartbeat(Duration::from_millis(opts.heartbeat_ms), opts.misses)
                .with_max_frame_bytes(FRAME_CAP),
        )
        .await?;
        let (lines_tx, lines) = mpsc::unbounded_channel();
        let mut cluster = Self {
            me,
            ports,
            procs: HashMap::new(),
            pids: HashMap::new(),
            ready: HashSet::new(),
            lines_tx,
            lines,
            heartbeat: (opts.heartbeat_ms, opts.misses),
            verbose: opts.verbose,
        };
        // `a` first, so that it registers both names; then `b` and `c`.
        cluster.spawn("a")?;
        cluster.wait_ready("a").await?;
        cluster.spawn("b")?;
        cluster.spawn("c")?;
        cluster.wait_ready("b").await?;
        cluster.wait_ready("c").await?;
        Ok(cluster)
    }

    pub(crate) fn spawn(&mut self, name: &str) -> Result<(), AnyErr> {
        let peers: Vec<String> = ["bench", "a", "b", "c"]
            .iter()
            .filter(|n| **n != name)
            .map(|n| format!("{n}@127.0.0.1:{}", self.ports[*n]))
            .collect();
        let (bench, fo) = match name {
            "a" => ("true", FO_PLACEMENT),
            "b" => ("true", ""),
            _ => ("false", FO_PLACEMENT),
        };
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["node", "--name", name])
            .args(["--port", &self.ports[name].to_string()])
            .args(["--peers", &peers.join(","), "--cookie", COOKIE])
            .args(["--bench", bench, "--fo-placement", fo])
            .args(["--heartbeat-ms", &self.heartbeat.0.to_string()])
            .args(["--misses", &self.heartbeat.1.to_string()])
            .args(["--max-frame-bytes", &FRAME_CAP.to_string()])
            .args(["--exit-on-stdin-eof", "true"]);
        let tx = self.lines_tx.clone();
        let node = NodeProc::spawn(name, cmd, move |node, line| {
            let _ = tx.send((node.to_string(), line));
        })?;
        self.pids.insert(name.to_string(), node.pid());
        self.procs.insert(name.to_string(), node);
        Ok(())
    }

    pub(crate) async fn wait_ready(&mut self, name: &str) -> Result<(), AnyErr> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.ready.contains(name) {
            let (node, line) = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .map_err(|_| format!("node {name} not ready within 60 s"))?
                .ok_or("node output closed")?;
            self.saw(node, line);
        }
        Ok(())
    }

    pub(crate) fn saw(&mut self, node: String, line: String) {
        if self.verbose || line.starts_with("READY") {
            eprintln!("    {node}: {line}");
        }
        if line.starts_with("READY") {
            self.ready.insert(node);
        }
    }

    /// Reads what the nodes printed meanwhile (echoed with `--verbose`).
    pub(crate) fn drain_lines(&mut self) {
        while let Ok((node, line)) = self.lines.try_recv() {
            self.saw(node, line);
        }
    }

    pub(crate) fn kill(&mut self, name: &str) -> Result<(), AnyErr> {
        self.drain_lines();
        self.ready.remove(name);
        if let Some(node) = self.procs.remove(name) {
            node.kill(); // SIGKILL, by its PID
        }
        Ok(())
    }

    pub(crate) fn stop_all(&mut self) {
        for (_, node) in self.procs.drain() {
            node.kill();
        }
        self.me.shutdown();
    }

    pub(crate) fn pid(&self, name: &str) -> String {
        self.pids
            .get(name)
            .map(|p| p.to_string())
            .unwrap_or_default()
    }
}

/// Calls node `node`'s Control; its answer is `Result<T, String>`.
pub(crate) async fn ctl<T: DeserializeOwned>(
    node: &str,
    op: &str,
    args: &impl Serialize,
    timeout: Duration,
) -> Result<T, AnyErr> {
    let control = find_member(&format!("control|{node}"), Duration::from_secs(10)).await?;
    let bytes = envelope_call(&control, op, postcard::to_allocvec(args)?, timeout).await?;
    let answer: Result<T, String> = postcard::from_bytes(&bytes)?;
    answer.map_err(|e| format!("{op} on {node}: {e}").into())
}

/// Takes `bench` over on the node that does not hold it (a <-> b).
pub(crate) async fn takeover_other(
    client: &GlobalClient<Bench>,
) -> Result<(String, TakeoverOutcome), AnyErr> {
    takeover_other_by(client, "takeover").await
}

/// Takes the name of `client` over on the node that does not hold it,
/// with Control's `op` (`takeover` for `bench`, `takeover_sync` for
/// `bench_sync`).
pub(crate) async fn takeover_other_by(
    client: &GlobalClient<Bench>,
    op: &str,
) -> Result<(String, TakeoverOutcome), AnyErr> {
    let holder = client
        .whereis()
        .map(|h| h.node.to_string())
        .ok_or("nobody holds bench")?;
    let target = if holder == "a" { "b" } else { "a" };
    let outcome = ctl::<TakeoverOutcome>(
        target,
        op,
        &(CALL_TIMEOUT.as_millis() as u64),
        CALL_TIMEOUT + Duration::from_secs(35),
    )
    .await?;
    Ok((target.to_string(), outcome))
}

pub(crate) async fn wait_until(
    what: &str,
    wait: Duration,
    mut cond: impl FnMut() -> bool,
) -> Result<(), AnyErr> {
    let deadline = Instant::now() + wait;
    while !cond() {
        if Instant::now() >= deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

pub(crate) async fn real_benchmarks(
    opts: &Opts,
    cluster: &mut Cluster,
    figs: &mut Figures,
    t0: Instant,
) -> Result<(), AnyErr> {
    let client = GlobalClient::<Bench>::new(NAME, cluster.me.registry());
    wait_until(
        "the client to see a holding bench",
        Duration::from_secs(30),
        || client.whereis().is_some_and(|h| h.node.as_str() == "a"),
    )
    .await?;
    for n in ["a", "b"] {
        find_member(&format!("echo|{n}"), Duration::from_secs(30)).await?;
        find_member(&format!("control|{n}"), Duration::from_secs(30)).await?;
    }
    cluster.drain_lines();

    if opts.runs("rtt") {
        progress(
            "remote round trips: Echo on a vs GlobalClient to bench on a",
            t0,
        );
        remote_rtt(opts, &client, figs).await?;
    }

    let mut next_client = 100u32;
    if opts.runs("throughput") {
        progress("throughput through the handle", t0);
        let mut load = LoadTotals::default();
        for (clients, moving) in [(1, false), (8, false), (1, true), (8, true)] {
            let r = throughput(opts, &client, clients, moving, &mut next_client).await?;
            let name = format!(
                "throughput_{clients}{}",
                if moving { "_takeover" } else { "" }
            );
            let note = if moving {
                format!(
                    "{clients} client(s), {:.1} s, a takeover every second ({} done)",
                    r.seconds, r.takeovers
                )
            } else {
                format!("{clients} client(s), {:.1} s, steady state", r.seconds)
            };
            figs.add(&name, r.calls as f64 / r.seconds, "calls/s", "", &note);
            if moving {
                load.add(&r);
            }
            cluster.drain_lines();
        }
        figs.add(
            "lost",
            load.lost as f64,
            "calls",
            "0",
            &format!(
                "under load with takeovers: {} calls acknowledged, {} takeovers",
                load.acked, load.takeovers
            ),
        );
        figs.add(
            "duplicated",
            load.duplicated as f64,
            "calls",
            "0",
            "under load with takeovers: a seq handled again or out of order",
        );
        figs.add(
            "call_errors",
            load.errors as f64,
            "calls",
            "0",
            "under load with takeovers: calls that got an error",
        );
    }

    if opts.runs("pause") {
        progress("takeover pauses", t0);
        let mut pause_checks = LoadTotals::default();
        for (label, bytes) in SIZES {
            if !opts.sizes.iter().any(|s| s == label) {
                continue;
            }
            pause_series(
                opts,
                cluster,
                &client,
                figs,
                label,
                bytes,
                &mut next_client,
                &mut pause_checks,
                t0,
            )
            .await?;
            cluster.drain_lines();
        }
        figs.add(
            "pause_runs_lost",
            pause_checks.lost as f64,
            "calls",
            "0",
            "over every takeover_pause series",
        );
        figs.add(
            "pause_runs_duplicated",
            pause_checks.duplicated as f64,
            "calls",
            "0",
            "over every takeover_pause series",
        );
    }

    if opts.runs("sync") {
        progress(
            "synchronous standby: bench_sync (on) against bench (off), both a holding, b standby",
            t0,
        );
        sync::sync_series(opts, cluster, figs, &mut next_client, t0).await?;
    }

    if opts.runs("failover") {
        progress(
            "failover: SIGKILL the holder of bench_fo (placement a > c)",
            t0,
        );
        failover(opts, cluster, figs, t0).await?;
    }
    if opts.runs("hang") {
        progress(
            "hang: SIGSTOP the holder of bench_fo (placement a > c), then SIGCONT",
            t0,
        );
        hang_failover(opts, cluster, figs, t0).await?;
    }
    Ok(())
}

pub(crate) async fn remote_rtt(
    opts: &Opts,
    client: &GlobalClient<Bench>,
    figs: &mut Figures,
) -> Result<(), AnyErr> {
    let echo = find_member("echo|a", Duration::from_secs(10)).await?;
    let t = Duration::from_secs(10);
    let payload = vec![7u8; SMALL];
    let ping = || BenchMsg::Ping {
        payload: payload.clone(),
    };
    let (direct, handle) = alternate(
        opts.rtt_calls,
        || envelope_call(&echo, "echo", payload.clone(), t),
        || client.call(ping(), t),
    )
    .await?;
    let (d, h) = (pct(&direct, 0.5), pct(&handle, 0.5));
    figs.add(
        "call_rtt_direct",
        d,
        "us",
        "",
        &format!(
            "p50 of {}: ActorRef::call to Echo on node a, {SMALL} B payload",
            direct.len()
        ),
    );
    figs.add("call_rtt_direct_p99", pct(&direct, 0.99), "us", "", "");
    figs.add(
        "call_rtt_handle",
        h,
        "us",
        "",
        &format!(
            "p50 of {}: GlobalClient::call(Ping) to bench on node a, {SMALL} B payload",
            handle.len()
        ),
    );
    figs.add("call_rtt_handle_p99", pct(&handle, 0.99), "us", "", "");
    figs.add(
        "handle_overhead_ratio",
        h / d,
        "x",
        "<= 1.10",
        "call_rtt_handle / call_rtt_direct (calls alternated)",
    );
    // What a call's key costs (exactly-once retries, on by default): the
    // key in the call's metadata, the window's look-up and insert, and the
    // reply's copy kept on the holder.
    let plain = client.clone().with_retries(false);
    let (keyed, unkeyed) = alternate(
        opts.rtt_calls,
        || client.call(ping(), t),
        || plain.call(ping(), t),
    )
    .await?;
    let (k, u) = (pct(&keyed, 0.5), pct(&unkeyed, 0.5));
    figs.add(
        "call_rtt_keyed",
        k,
        "us",
        "",
        &format!(
            "p50 of {}: GlobalClient::call with retries on (a key per call)",
            keyed.len()
        ),
    );
    figs.add(
        "call_rtt_unkeyed",
        u,
        "us",
        "",
        &format!(
            "p50 of {}: the same with_retries(false) (no key)",
            unkeyed.len()
        ),
    );
    figs.add(
        "keyed_rtt_ratio",
        k / u,
        "x",
        "<= 1.05",
        "call_rtt_keyed / call_rtt_unkeyed (calls alternated)",
    );
    Ok(())
}
