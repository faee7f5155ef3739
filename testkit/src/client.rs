//! The client role of the test node (`test-node client`): a client node that
//! calls every name of a many-names cluster (`svc-0..`, see
//! [`crate::node::svc_name`]) without pause and prints every outcome as one
//! [`Answer`] line, so that the parent can count lost acknowledged calls,
//! duplicates and names served by two holders ([`crate::answers`]).
//!
//! `--callers C` workers share the names (worker `w` calls the names `i`
//! with `i % C == w`, one after the other, each call waiting for its answer),
//! so the calls of one name are sequential: each answer of a name must count
//! exactly one more report than the one before, unless a failover lost the
//! state. On its stdin it takes `pause` (the workers finish their call in
//! flight and park; it prints `PAUSED` when all have) and `resume`; it exits
//! when its stdin closes.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use ractor_takeover::cluster::ClusterNode;
use ractor_takeover::GlobalClient;

use crate::answers::{Answer, Outcome};
use crate::node::{on_stdin_lines, svc_name, unix_ms, AnyErr, ClusterArgs};
use crate::power_monitor::{PowerMonitor, PowerMsg};

/// The client role's flags.
#[derive(Args, Clone, Debug)]
pub struct ClientArgs {
    /// This client node's name.
    #[arg(long, default_value = "client")]
    pub name: String,
    /// How it joins the cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Call the names `svc-0..svc-<N-1>`.
    #[arg(long, default_value_t = 1)]
    pub names: usize,
    /// Workers calling at once (each takes every C-th name); 0: one per name
    /// up to 64.
    #[arg(long, default_value_t = 0)]
    pub callers: usize,
    /// The deadline of each call.
    #[arg(long, default_value_t = 2000)]
    pub call_timeout_ms: u64,
}

/// Runs the client until its stdin closes (or it is killed). Prints
/// `READY node=<name> names=<N> callers=<C>`, then [`Answer`] lines.
pub async fn run_client(args: ClientArgs) -> Result<(), AnyErr> {
    let node = ClusterNode::start(args.cluster.config(&args.name)?).await?;
    let n = args.names.max(1);
    let callers = match args.callers {
        0 => n.min(64),
        c => c.min(n),
    };
    let timeout = Duration::from_millis(args.call_timeout_ms);
    let clients: Vec<GlobalClient<PowerMonitor>> = (0..n)
        .map(|i| GlobalClient::new(svc_name(i), node.registry()))
        .collect();

    // One printing thread: the workers never wait on a pipe the parent reads
    // in bursts, and lines go out in batches.
    let (lines, printed) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        while let Ok(line) = printed.recv() {
            let _ = writeln!(out, "{line}");
            while let Ok(more) = printed.try_recv() {
                let _ = writeln!(out, "{more}");
            }
            let _ = out.flush();
        }
    });

    let (pause, paused) = tokio::sync::watch::channel(false);
    let parked = Arc::new(AtomicUsize::new(0));
    on_stdin_lines(move |line| match line.as_str() {
        "pause" => {
            let _ = pause.send(true);
        }
        "resume" => {
            let _ = pause.send(false);
        }
        _ => {}
    });
    let _ = lines.send(format!(
        "READY node={} names={n} callers={callers}",
        args.name
    ));

    let mut workers = Vec::with_capacity(callers);
    for w in 0..callers {
        let mine: Vec<(usize, GlobalClient<PowerMonitor>)> = (w..n)
            .step_by(callers)
            .map(|i| (i, clients[i].clone()))
            .collect();
        let (lines, mut paused, parked) = (lines.clone(), paused.clone(), parked.clone());
        workers.push(tokio::spawn(async move {
            let mut seq = vec![0u64; mine.len()];
            loop {
                for (k, (i, client)) in mine.iter().enumerate() {
                    if *paused.borrow() {
                        if parked.fetch_add(1, Ordering::AcqRel) + 1 == callers {
                            let _ = lines.send("PAUSED".to_string());
                        }
                        if paused.wait_for(|p| !*p).await.is_err() {
                            return;
                        }
                        parked.fetch_sub(1, Ordering::AcqRel);
                    }
                    seq[k] += 1;
                    let report = PowerMsg::Report {
                        building: String::new(),
                        seq: seq[k],
                    };
                    let outcome = match client.call(report, timeout).await {
                        Ok(r) => Outcome::Ok {
                            node: r.node,
                            epoch: r.epoch,
                            total: r.total,
                            duplicates: r.duplicates,
                        },
                        Err(e) => Outcome::Err(error_kind(&e)),
                    };
                    let answer = Answer {
                        t_ms: unix_ms(),
                        name: *i,
                        outcome,
                    };
                    if lines.send(answer.line()).is_err() {
                        return;
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    node.shutdown();
    Ok(())
}

/// A call error's kind, one word (its variant), for the answer line.
fn error_kind(e: &ractor_takeover::CallErr) -> String {
    let debug = format!("{e:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("Unknown")
        .to_string()
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::ClientArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        client: ClientArgs,
    }

    /// clap's own checks, and the flags as `many::ManyNames` passes them.
    #[test]
    fn the_client_flags_parse_as_the_driver_writes_them() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "client",
            "--name",
            "client",
            "--port",
            "4000",
            "--peers",
            "a@127.0.0.1:4001",
            "--names",
            "500",
            "--callers",
            "0",
            "--call-timeout-ms",
            "2000",
        ])
        .expect("the flags parse");
        assert_eq!(cli.client.names, 500);
        assert_eq!(cli.client.callers, 0);
        assert_eq!(cli.client.call_timeout_ms, 2000);
    }
}
