//! Driving the suite: one seed (generate, run on its own paused runtime,
//! check), many seeds on worker threads, and the reports.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ractor::ActorId;
use ractor_takeover::event::EventKind;

use crate::generator::{fault_name, Schedule};
use crate::harness::{install_panic_counter, run_schedule, Outcome};
use crate::invariants::{check, Stats, Violation};
use crate::known_gaps::KnownGap;
use crate::ledger::Entry;
use crate::NODES;

/// One seed's run and its verdict.
pub struct SeedRun {
    pub schedule: Schedule,
    pub outcome: Option<Outcome>,
    pub stats: Stats,
    pub violations: Vec<Violation>,
}

impl SeedRun {
    /// The known bugs whose signatures this run showed.
    pub fn known(&self) -> BTreeSet<KnownGap> {
        self.violations.iter().filter_map(|v| v.known).collect()
    }

    /// The violations that count: all of them when `strict`, else those that
    /// match no known bug.
    pub fn failing(&self, strict: bool) -> Vec<&Violation> {
        self.violations
            .iter()
            .filter(|v| strict || v.known.is_none())
            .collect()
    }

    /// The report of a failing run: seed, schedule, violations, replay.
    pub fn report(&self, strict: bool) -> Option<String> {
        let failing = self.failing(strict);
        if failing.is_empty() {
            return None;
        }
        let seed = self.schedule.seed;
        let mut report = self.schedule.describe();
        let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
        for x in &failing {
            let n = shown.entry(x.check).or_default();
            *n += 1;
            if *n <= 4 {
                let known = x
                    .known
                    .map(|k| format!(" (known bug {k})"))
                    .unwrap_or_default();
                let _ = writeln!(report, "  VIOLATION [{}] {}{known}", x.check, x.detail);
            }
        }
        for (check, n) in shown.into_iter().filter(|(_, n)| *n > 4) {
            let _ = writeln!(report, "  ... {n} violations of [{check}] in all");
        }
        let _ = writeln!(
            report,
            "replay: FAULT_SEED={seed} cargo test --all-features --test fault_schedules -- --nocapture"
        );
        Some(report)
    }
}

/// Runs one seed on its own paused current-thread runtime, and checks it.
pub fn run_seed(seed: u64) -> SeedRun {
    install_panic_counter();
    let schedule = Schedule::generate(seed);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(run_schedule(&schedule))
    }));
    drop(rt);
    match outcome {
        Ok(outcome) => {
            let (stats, violations) = check(&outcome);
            SeedRun {
                schedule,
                outcome: Some(outcome),
                stats,
                violations,
            }
        }
        Err(e) => {
            let why = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            SeedRun {
                schedule,
                outcome: None,
                stats: Stats::default(),
                violations: vec![Violation {
                    check: "4 nothing fails",
                    detail: format!("the harness panicked: {why}"),
                    known: None,
                }],
            }
        }
    }
}

/// The log and the events of a run, for a replay.
pub fn trace_of(o: &Outcome) -> String {
    let mut s = String::from("log:\n");
    let node_of = |id: &ActorId| o.insts.get(id).map(|(n, _)| NODES[*n]).unwrap_or("?");
    let full = std::env::var("FAULT_TRACE").is_ok_and(|v| v == "full");
    let mut skipped = 0;
    for e in &o.log {
        if !full && matches!(e, Entry::Apply { .. } | Entry::Read { .. }) {
            skipped += 1;
            continue;
        }
        if skipped > 0 {
            let _ = writeln!(s, "  ({skipped} calls handled)");
            skipped = 0;
        }
        let line = match e {
            Entry::Spawn { inst, node } => format!("spawn {inst} on {}", NODES[*node]),
            Entry::Go {
                inst,
                epoch,
                start,
                content,
            } => format!(
                "go {inst} on {} epoch {epoch:?} {start:?} with {} calls",
                node_of(inst),
                content.len()
            ),
            Entry::Apply {
                inst, epoch, call, ..
            } => format!(
                "apply {call:?} by {inst} on {} epoch {epoch:?}",
                node_of(inst)
            ),
            Entry::Read { inst, epoch } => format!("read by {inst} epoch {epoch:?}"),
            Entry::Merged {
                inst,
                epoch,
                loser,
                content,
            } => format!(
                "merge into {inst} on {} epoch {epoch:?} from {loser:?}: {} calls",
                node_of(inst),
                content.len()
            ),
            Entry::Crash { node, killed } => format!("crash {} killing {killed:?}", NODES[*node]),
            Entry::Stopped { inst } => format!("{inst} on {} stopped", node_of(inst)),
            Entry::Fault { at_ms, fault } => format!("@{at_ms} ms: {}", fault_name(fault)),
        };
        let _ = writeln!(s, "  {line}");
    }
    s.push_str("events:\n");
    for e in &o.events {
        let chatty = matches!(
            e.kind,
            EventKind::CheckpointSent { .. } | EventKind::CheckpointStored { .. }
        );
        if chatty && !full {
            continue;
        }
        let _ = writeln!(s, "  {} epoch {:?}: {:?}", e.node, e.epoch, e.kind);
    }
    match &o.final_state {
        Ok(st) if !full => {
            let content = st.content();
            let _ = writeln!(s, "final state: {} calls", content.len());
            // Acknowledged, and not in it (lost: reported by a failover,
            // or a violation): who answered each, to find where it went.
            for c in &o.calls {
                if let (Ok(r), false) = (&c.result, content.contains(&c.call)) {
                    let _ = writeln!(s, "  acknowledged, not kept: {:?} answered {r:?}", c.call);
                }
            }
        }
        other => {
            let _ = writeln!(s, "final state: {other:?}");
        }
    }
    let _ = writeln!(s, "quiet: {:?}", o.quiet);
    s
}

/// What many schedules found.
#[derive(Default)]
pub struct Summary {
    pub stats: Stats,
    pub failed: Vec<(u64, String)>,
    /// Known bug -> the seeds that showed it.
    pub known: BTreeMap<KnownGap, Vec<u64>>,
    /// Known bug -> how many of those seeds ran in quorum mode.
    pub known_in_quorum: BTreeMap<KnownGap, usize>,
    /// Known bug -> how many of those seeds ran with durable nodes.
    pub known_durable: BTreeMap<KnownGap, usize>,
    /// Schedules with synchronous standby, and the acknowledged calls a
    /// crash lost in them (reported by a failover, so no violation).
    pub sync_schedules: usize,
    pub sync_lost_reported: usize,
    /// The same, for the schedules in refuse mode only (no answer without
    /// a standby that stored the call; the rest fall back to asynchronous).
    pub refuse_schedules: usize,
    pub refuse_lost_reported: usize,
    /// The same, in refuse mode with quorum mode on (no split brain on a
    /// detected partition), and the seeds that lost a call there.
    pub refuse_quorum_schedules: usize,
    pub refuse_quorum_lost_reported: usize,
    pub refuse_quorum_lossy: Vec<u64>,
    /// Refuse mode with one crash in the whole schedule: a loss there is
    /// no double fault (the holder and the standby that stored the call
    /// both crashed), so it is a bug to find. Lost calls, and the seeds.
    pub refuse_one_crash_lost: usize,
    pub refuse_one_crash_lossy: Vec<u64>,
    /// Known bug -> how many of those seeds ran with synchronous standby.
    pub known_in_sync: BTreeMap<KnownGap, usize>,
}

/// Runs `count` seeds from `base` on `threads` threads.
pub fn run_many(base: u64, count: u64, threads: usize) -> Summary {
    let next = AtomicU64::new(0);
    let summary = Mutex::new(Summary::default());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= count {
                    return;
                }
                let seed = base.wrapping_add(i);
                let run = run_seed(seed);
                let mut sum = summary.lock().unwrap_or_else(|e| e.into_inner());
                sum.stats.add(&run.stats);
                if run.schedule.sync.is_some() {
                    sum.sync_schedules += 1;
                    sum.sync_lost_reported += run.stats.lost_reported;
                }
                let refuse = run.schedule.sync.as_ref().is_some_and(|s| {
                    matches!(s.on_no_standby, ractor_takeover::config::NoStandby::Refuse)
                });
                if refuse {
                    sum.refuse_schedules += 1;
                    sum.refuse_lost_reported += run.stats.lost_reported;
                }
                if refuse && run.stats.crashes == 1 && run.stats.lost_reported > 0 {
                    sum.refuse_one_crash_lost += run.stats.lost_reported;
                    sum.refuse_one_crash_lossy.push(seed);
                }
                if refuse && run.schedule.quorum {
                    sum.refuse_quorum_schedules += 1;
                    sum.refuse_quorum_lost_reported += run.stats.lost_reported;
                    if run.stats.lost_reported > 0 {
                        sum.refuse_quorum_lossy.push(seed);
                    }
                }
                for k in run.known() {
                    if run.schedule.sync.is_some() {
                        *sum.known_in_sync.entry(k).or_default() += 1;
                    }
                    sum.known.entry(k).or_default().push(seed);
                    if run.schedule.quorum {
                        *sum.known_in_quorum.entry(k).or_default() += 1;
                    }
                    if run.schedule.durable {
                        *sum.known_durable.entry(k).or_default() += 1;
                    }
                }
                if let Some(report) = run.report(false) {
                    eprintln!("FAILED {report}");
                    sum.failed.push((seed, report));
                }
            });
        }
    });
    let mut summary = summary.into_inner().unwrap_or_else(|e| e.into_inner());
    summary.failed.sort_by_key(|f| f.0);
    for seeds in summary.known.values_mut() {
        seeds.sort_unstable();
    }
    summary
}
