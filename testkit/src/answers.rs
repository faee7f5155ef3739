//! The answers of the many-names client ([`crate::client`]), one line each,
//! and what they tell: calls lost or duplicated, names served by two
//! holders, and per-name times of a failover or a takeover.
//!
//! A line is `ANSWER t_ms=<unix ms> name=<i> ok node=<node> epoch=<e>
//! total=<t> dup=<d>` for an answer of the power monitor behind `svc-<i>`
//! (`total`: the reports its state counts; `dup`: reports it saw twice), or
//! `ANSWER t_ms=<unix ms> name=<i> err=<CallErr variant>`.
//!
//! The calls of one name are sequential (one worker makes them), so each
//! answer of a name counts exactly one more report than the one before, plus
//! the calls in between that failed but may have been handled. An answer that
//! counts no more than the one before is a state that lost acknowledged
//! calls: `before - after + 1` of them. The one exception is the failover
//! this test provoked: the first answer of a name from another node after
//! the SIGKILL of its holder starts from a fresh state by design (a failover
//! without warm standby loses the state, as in Erlang), and is counted apart
//! ([`Accounting::failover_resets`]).

use std::collections::{BTreeMap, BTreeSet};

/// The outcome of one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The power monitor answered.
    Ok {
        /// The node that answered.
        node: String,
        /// Its epoch.
        epoch: u64,
        /// Reports its state counts after this one.
        total: u64,
        /// Reports it saw twice.
        duplicates: u64,
    },
    /// The call failed: the `CallErr` variant's name.
    Err(String),
}

/// One call of the client and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// When the outcome came, in Unix milliseconds.
    pub t_ms: u128,
    /// The name's index (`svc-<name>`).
    pub name: usize,
    /// What came back.
    pub outcome: Outcome,
}

impl Answer {
    /// The line the client prints.
    pub fn line(&self) -> String {
        match &self.outcome {
            Outcome::Ok {
                node,
                epoch,
                total,
                duplicates,
            } => format!(
                "ANSWER t_ms={} name={} ok node={node} epoch={epoch} total={total} dup={duplicates}",
                self.t_ms, self.name
            ),
            Outcome::Err(kind) => {
                format!("ANSWER t_ms={} name={} err={kind}", self.t_ms, self.name)
            }
        }
    }

    /// The answer a line carries (`None` for any other line).
    pub fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("ANSWER ")?;
        let mut fields = BTreeMap::new();
        for word in rest.split_whitespace() {
            if let Some((k, v)) = word.split_once('=') {
                fields.insert(k, v);
            }
        }
        let t_ms = fields.get("t_ms")?.parse().ok()?;
        let name = fields.get("name")?.parse().ok()?;
        let outcome = match fields.get("err") {
            Some(kind) => Outcome::Err(kind.to_string()),
            None => Outcome::Ok {
                node: fields.get("node")?.to_string(),
                epoch: fields.get("epoch")?.parse().ok()?,
                total: fields.get("total")?.parse().ok()?,
                duplicates: fields.get("dup")?.parse().ok()?,
            },
        };
        Some(Self {
            t_ms,
            name,
            outcome,
        })
    }

    fn ok(&self) -> Option<(&str, u64, u64, u64)> {
        match &self.outcome {
            Outcome::Ok {
                node,
                epoch,
                total,
                duplicates,
            } => Some((node, *epoch, *total, *duplicates)),
            Outcome::Err(_) => None,
        }
    }
}

/// What the answers of a run add up to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accounting {
    /// Calls answered.
    pub answered: u64,
    /// Calls failed, by `CallErr` variant.
    pub errors: BTreeMap<String, u64>,
    /// Acknowledged calls whose effect a later answer no longer counts
    /// (failover resets apart).
    pub lost: u64,
    /// Reports the power monitors saw twice.
    pub duplicated: u64,
    /// Names whose state the provoked failover reset (by design).
    pub failover_resets: u64,
    /// Answers from a holder (node, epoch) the name had already left: two
    /// holders serving the same name at once.
    pub flip_backs: u64,
    /// Names with at least one flip back.
    pub names_flipping: u64,
    /// Names with at least one lost call.
    pub names_losing: u64,
}

/// The answers of a run, by name, in arrival order.
pub struct Ledger {
    per_name: Vec<Vec<Answer>>,
}

impl Ledger {
    /// Sorts `answers` of names `0..n` by name (names out of range are
    /// ignored).
    pub fn new(n: usize, answers: impl IntoIterator<Item = Answer>) -> Self {
        let mut per_name = vec![Vec::new(); n];
        for a in answers {
            if let Some(list) = per_name.get_mut(a.name) {
                list.push(a);
            }
        }
        Self { per_name }
    }

    /// How many names.
    pub fn names(&self) -> usize {
        self.per_name.len()
    }

    /// Adds it all up; `failover` is the node SIGKILLed and when (Unix ms),
    /// if the run provoked a failover.
    pub fn account(&self, failover: Option<(&str, u128)>) -> Accounting {
        let mut acc = Accounting::default();
        for answers in &self.per_name {
            let mut prev: Option<(&str, u64, u64, u64)> = None;
            let mut left: BTreeSet<(&str, u64)> = BTreeSet::new();
            let mut reset_done = false;
            let (mut flipped, mut lost_here) = (false, false);
            for a in answers {
                let Some(now) = a.ok() else {
                    if let Outcome::Err(kind) = &a.outcome {
                        *acc.errors.entry(kind.clone()).or_default() += 1;
                    }
                    continue;
                };
                acc.answered += 1;
                let (node, epoch, total, dup) = now;
                match prev {
                    None => acc.duplicated += dup,
                    Some((pnode, pepoch, ptotal, pdup)) => {
                        if (pnode, pepoch) != (node, epoch) {
                            if left.contains(&(node, epoch)) {
                                acc.flip_backs += 1;
                                flipped = true;
                            }
                            left.insert((pnode, pepoch));
                        }
                        if total > ptotal {
                            acc.duplicated += dup.saturating_sub(pdup);
                        } else {
                            let provoked = failover.is_some_and(|(killed, at)| {
                                !reset_done && pnode == killed && node != killed && a.t_ms >= at
                            });
                            if provoked {
                                reset_done = true;
                                acc.failover_resets += 1;
                            } else {
                                acc.lost += ptotal - total + 1;
                                lost_here = true;
                            }
                            acc.duplicated += dup;
                        }
                    }
                }
                prev = Some(now);
            }
            acc.names_flipping += u64::from(flipped);
            acc.names_losing += u64::from(lost_here);
        }
        acc
    }

    /// The names whose last answer at or before `t_ms` came from `node`.
    pub fn held_by_at(&self, node: &str, t_ms: u128) -> Vec<usize> {
        (0..self.per_name.len())
            .filter(|&i| {
                self.per_name[i]
                    .iter()
                    .rev()
                    .filter(|a| a.t_ms <= t_ms)
                    .find_map(Answer::ok)
                    .is_some_and(|(n, ..)| n == node)
            })
            .collect()
    }

    /// For each of `names`: milliseconds from `t_ms` to its first answer
    /// after `t_ms` from a node for which `from` holds (`None`: none came).
    pub fn first_answer_after(
        &self,
        names: &[usize],
        t_ms: u128,
        from: impl Fn(&str) -> bool,
    ) -> Vec<Option<u128>> {
        names
            .iter()
            .map(|&i| {
                self.per_name[i]
                    .iter()
                    .filter(|a| a.t_ms >= t_ms)
                    .find(|a| a.ok().is_some_and(|(n, ..)| from(n)))
                    .map(|a| a.t_ms - t_ms)
            })
            .collect()
    }

    /// For each of `names`: the client's pause when the name moved to `to`
    /// after `t_ms`, the time between its last answer from another node and
    /// its first answer from `to` (`None`: it did not move to `to`).
    pub fn switch_gaps(&self, names: &[usize], t_ms: u128, to: &str) -> Vec<Option<u128>> {
        names
            .iter()
            .map(|&i| {
                let oks: Vec<(u128, &str)> = self.per_name[i]
                    .iter()
                    .filter_map(|a| a.ok().map(|(n, ..)| (a.t_ms, n)))
                    .collect();
                oks.windows(2)
                    .find(|w| w[1].0 >= t_ms && w[1].1 == to && w[0].1 != to)
                    .map(|w| w[1].0 - w[0].0)
            })
            .collect()
    }

    /// Every gap between consecutive answers of a name, both within
    /// `[from_ms, to_ms]`: the steady-state period of the client's calls
    /// to compare the pauses with.
    pub fn gaps_within(&self, from_ms: u128, to_ms: u128) -> Vec<u128> {
        let mut gaps = Vec::new();
        for answers in &self.per_name {
            let ts: Vec<u128> = answers
                .iter()
                .filter(|a| a.ok().is_some() && a.t_ms >= from_ms && a.t_ms <= to_ms)
                .map(|a| a.t_ms)
                .collect();
            gaps.extend(ts.windows(2).map(|w| w[1] - w[0]));
        }
        gaps
    }
}

/// Nearest-rank percentile (`p` in 0..=1) of unsorted samples; NaN when
/// there are none.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(t_ms: u128, name: usize, node: &str, epoch: u64, total: u64) -> Answer {
        Answer {
            t_ms,
            name,
            outcome: Outcome::Ok {
                node: node.into(),
                epoch,
                total,
                duplicates: 0,
            },
        }
    }

    #[test]
    fn a_line_reads_back_as_the_answer_it_prints() {
        let a = ok(17, 3, "b", 5, 42);
        assert_eq!(Answer::parse(&a.line()), Some(a));
        let e = Answer {
            t_ms: 18,
            name: 4,
            outcome: Outcome::Err("NoReply".into()),
        };
        assert_eq!(Answer::parse(&e.line()), Some(e));
        assert_eq!(Answer::parse("EVENT t_ms=1"), None);
    }

    /// The provoked failover's reset is apart; a reset at the takeover back
    /// and a holder that answers again after another took over are not.
    #[test]
    fn resets_and_flip_backs_are_counted() {
        let answers = vec![
            ok(1, 0, "a", 1, 1),
            ok(2, 0, "a", 1, 2),
            ok(10, 0, "b", 2, 1), // the failover after a's kill at 5
            ok(11, 0, "b", 2, 2),
            ok(20, 0, "a", 4, 3), // the takeover back moved the state
            ok(21, 0, "a", 4, 1), // ...and a second holder answers: 3 lost
            ok(1, 1, "a", 1, 1),
            ok(12, 1, "b", 2, 1),
            ok(13, 1, "a", 1, 2), // a's old epoch again: a flip back
        ];
        let ledger = Ledger::new(2, answers);
        let acc = ledger.account(Some(("a", 5)));
        assert_eq!(acc.failover_resets, 2);
        assert_eq!(acc.lost, 3);
        assert_eq!(acc.names_losing, 1);
        assert_eq!(acc.flip_backs, 1);
        assert_eq!(acc.names_flipping, 1);
        assert_eq!(ledger.held_by_at("a", 5), vec![0, 1]);
        assert_eq!(
            ledger.first_answer_after(&[0, 1], 5, |n| n != "a"),
            vec![Some(5), Some(7)]
        );
        assert_eq!(ledger.switch_gaps(&[0], 15, "a"), vec![Some(9)]);
    }
}
