//! Run with: cargo run --example fake_takeover --features test-util
//!
//! A power monitor (the classic Erlang takeover example) on a fake
//! three-node cluster in one process: "power_monitor" starts on `a`, a
//! client on `c` reports power failures without pause, and the server is
//! taken over to `b`, then back to the same instance on `a`, which waited
//! as a standby meanwhile. You will see each step with the events it
//! caused (who holds the name, the state's size, the pause, the calls
//! buffered), then a summary. The exit status is non-zero if a call was
//! lost or counted twice.

use std::error::Error;
use std::time::Duration;

use ractor::ActorProcessingErr;
use ractor_takeover::event::{EventKind, TakeoverEvent};
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::status::Phase;
use ractor_takeover::*;
use tokio::sync::{broadcast, watch};

const NAME: &str = "power_monitor";
/// Generous: it catches hangs, it does not measure speed.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A power failure in a building; the reply is the total so far. The state
/// is the total: without the takeover's state transfer, technicians would
/// see it restart from zero every time the server moves.
struct PowerMonitor;

impl TakeoverActor for PowerMonitor {
    type Msg = String;
    type Reply = u64;
    type State = u64;
    type Arguments = ();
    type Info = ();

    async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: &TakeoverCtx<Self>,
        _building: String,
        total: &mut u64,
    ) -> Result<u64, ActorProcessingErr> {
        *total += 1;
        Ok(*total)
    }
}

/// Prints the events that came since the last step.
fn print_events(events: &mut broadcast::Receiver<TakeoverEvent>) {
    while let Ok(e) = events.try_recv() {
        let what = match &e.kind {
            EventKind::Registered { start } => format!("holds the name, start {start:?}"),
            EventKind::Standby { .. } => "waits as a standby".to_string(),
            EventKind::TakeoverStarted { from } => format!("stole the name from {}", from.node),
            EventKind::StateTransferred {
                bytes, duration, ..
            } => {
                format!("installed {bytes} state bytes, {duration:.1?} after the steal")
            }
            EventKind::Moved { from, reason } => format!("moved here from {from:?}: {reason}"),
            EventKind::StateSent { to, bytes } => {
                format!("sent {bytes} state bytes to {}", to.node)
            }
            EventKind::HandoverDone {
                pause, buffered, ..
            } => {
                format!("serves: pause {pause:.1?}, {buffered} call(s) buffered meanwhile")
            }
            EventKind::Retired { forwarded, .. } => {
                format!("retired, forwarded {forwarded} call(s)")
            }
            other => format!("{other:?}"),
        };
        let epoch = e.epoch.map_or("-".to_string(), |n| n.to_string());
        println!("    [{} epoch {epoch}] {what}", e.node);
    }
}

/// Waits until `instance` is in `phase`, within a deadline. Why poll a
/// status: `spawn` and `takeover` return before the other side has settled.
async fn wait_phase(
    instance: &TakeoverRef<PowerMonitor>,
    phase: Phase,
) -> Result<(), Box<dyn Error>> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while instance.status(TIMEOUT).await.ok().map(|s| s.phase) != Some(phase) {
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("the instance never reached {phase:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let cluster = FakeCluster::new(["a", "b", "c"]);
    // Real links are not instant: delay every link a little. (Every message
    // between fake nodes travels in its wire form, as between real ones.)
    for (x, y) in [("a", "b"), ("a", "c"), ("b", "c")] {
        cluster.set_delay(x, y, Duration::from_millis(1));
        cluster.set_delay(y, x, Duration::from_millis(1));
    }
    // One config, so one event hub, for every instance.
    let config = TakeoverConfig::default();
    let mut events = config.events.subscribe();
    let server =
        |node| TakeoverServer::new(NAME, PowerMonitor, cluster.registry(node), config.clone());

    println!("--- start an instance on a, then one on b");
    let (on_a, _) = server("a").spawn(()).await?;
    wait_phase(&on_a, Phase::Holder).await?;
    let (on_b, _) = server("b").spawn(()).await?;
    wait_phase(&on_b, Phase::Standby).await?;
    print_events(&mut events);

    println!("--- a client on c reports power failures without pause");
    let client = GlobalClient::<PowerMonitor>::new(NAME, cluster.registry("c"));
    let (answered_tx, mut answered) = watch::channel(0u64);
    let (stop, stopped) = watch::channel(false);
    let reporter = tokio::spawn({
        let client = client.clone();
        async move {
            let (mut sent, mut total, mut errors) = (0u64, 0, Vec::new());
            while !*stopped.borrow() {
                sent += 1;
                match client
                    .call(
                        ["north", "south", "lab"][sent as usize % 3].to_string(),
                        TIMEOUT,
                    )
                    .await
                {
                    Ok(now) => {
                        total = now; // the server's count after this report
                        answered_tx.send_modify(|n| *n += 1);
                    }
                    Err(e) => errors.push(e),
                }
            }
            (sent, total, errors)
        }
    });
    // Each move happens while calls flow, with state to move: 50 calls
    // before the first, 50 more before the second, and 50 after.
    for (step, to, from) in [
        ("b takes the name and the state from a", &on_b, &on_a),
        ("the same instance on a takes it back from b", &on_a, &on_b),
    ] {
        let seen = *answered.borrow();
        answered.wait_for(|n| *n >= seen + 50).await?;
        println!("--- takeover: {step}");
        to.takeover(TIMEOUT).await?;
        wait_phase(from, Phase::Standby).await?; // the old holder is a standby again
        print_events(&mut events);
    }
    let seen = *answered.borrow();
    answered.wait_for(|n| *n >= seen + 50).await?;
    stop.send(true)?;
    let (sent, count, errors) = reporter.await?;
    let answered = *answered.borrow();
    print_events(&mut events);

    println!(
        "\ncalls sent {sent}, answered {answered}, errors {}, final count {count}",
        errors.len()
    );
    for e in errors.iter().take(5) {
        println!("  {e}");
    }
    // Each answered report counted once, in the state that moved twice: a
    // lost call shows as an error or a count below the answers, a call
    // served twice (or a state that restarted) as a count that differs.
    if !errors.is_empty() || answered != sent || count != answered {
        eprintln!("FAILED: a call was lost, or the count differs from the calls answered");
        std::process::exit(1);
    }
    println!("OK: the count equals the calls answered; no call lost or served twice");
    Ok(())
}
