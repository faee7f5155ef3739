//! The links between fake nodes: what is queued on them, and what arrives.

use std::sync::Arc;

use ractor::concurrency::oneshot;
use ractor::message::SerializedMessage;
use ractor::RpcReplyPort;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{pair, FakeCluster, FakeNode, Item, ItemKind, Link, Op, World};
use crate::message::routing;
use crate::{NodeName, Registration, Registry};

impl FakeCluster {
    /// Queues `kind` on the link `from -> to`. Caller holds the lock.
    pub(super) fn enqueue(&self, w: &mut World, from: &NodeName, to: &NodeName, kind: ItemKind) {
        let (Some(f), Some(t)) = (w.nodes.get(from), w.nodes.get(to)) else {
            return;
        };
        if !t.up {
            return;
        }
        let session = w.session.get(&pair(from, to)).copied().unwrap_or(0);
        let item = Item {
            session,
            due: Instant::now()
                + w.delay
                    .get(&(from.clone(), to.clone()))
                    .copied()
                    .unwrap_or_default(),
            from_incarnation: f.incarnation,
            to_incarnation: t.incarnation,
            kind,
        };
        if matches!(item.kind, ItemKind::Op(_)) {
            if let Some(t) = w.nodes.get_mut(to) {
                t.in_flight += 1;
                t.changed();
            }
        }
        let link = (from.clone(), to.clone());
        *w.queued.entry(link.clone()).or_default() += 1;
        let sender = match w.links.get(&link) {
            Some(s) => s.clone(),
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                let held = w.hold_switch(&link).subscribe();
                tokio::spawn(run_link(self.clone(), link.clone(), rx, held));
                w.links.insert(link, tx.clone());
                tx
            }
        };
        let _ = sender.send(item);
    }

    /// An item reached the end of its link: apply or deliver it, unless a
    /// fault dropped it on the way.
    pub(super) fn arrive(&self, link: &Link, item: Item) {
        let (from, to) = link;
        let mut w = self.world();
        if let Some(n) = w.queued.get_mut(link) {
            *n -= 1;
        }
        let cut = w.cut.contains(&pair(from, to))
            || w.dialing.contains_key(&pair(from, to))
            || w.session.get(&pair(from, to)).copied().unwrap_or(0) != item.session;
        if cut {
            // Lost with its link: a held reply port closes at once.
        } else if let Some(size) = item.frame_size() {
            let limit = w.frame_limit.get(link).copied().into_iter();
            if limit.chain(w.frame_cap).any(|max| size > max) {
                self.close_session(&mut w, from, to, size);
                return;
            }
        }
        let from_ok = matches!(item.kind, ItemKind::Op(Op::NodeDown(_)))
            || w.nodes
                .get(from)
                .is_some_and(|f| f.up && f.incarnation == item.from_incarnation);
        let Some(dest) = w.nodes.get_mut(to) else {
            return;
        };
        let same_dest = dest.up && dest.incarnation == item.to_incarnation;
        let deliverable = same_dest && from_ok && !cut;
        match item.kind {
            ItemKind::Op(op) => {
                if same_dest {
                    dest.in_flight -= 1;
                    if deliverable {
                        dest.apply(op);
                    } else {
                        dest.changed();
                    }
                }
            }
            ItemKind::Wire { to: reg, msg } => {
                let entry_delay = crate::drain::is_standby_entry(reg.name())
                    .then_some(w.entry_delay)
                    .filter(|d| !d.is_zero());
                drop(w);
                if deliverable {
                    let msg = self.answer_over_link(msg, to, from);
                    let dest: Arc<dyn Registry> = Arc::new(FakeNode {
                        cluster: self.clone(),
                        id: to.clone(),
                    });
                    match entry_delay {
                        Some(d) => self.relay(
                            to,
                            Relayed {
                                due: Instant::now() + d,
                                dest,
                                reg,
                                msg,
                            },
                        ),
                        None => routing::send_wire(&dest, &reg, msg),
                    }
                }
            }
            ItemKind::Answer(port, bytes) => {
                drop(w);
                if deliverable {
                    let _ = port.send(bytes);
                }
            }
        }
    }

    /// Gives a call that reached `here` from `caller` a fresh reply port
    /// whose answer travels back over the link `here -> caller`, as
    /// ractor_cluster's session does (it also waits for the answer in a task
    /// of its own). An instance that drops the port without answering drops
    /// the caller's at once.
    pub(super) fn answer_over_link(
        &self,
        msg: SerializedMessage,
        here: &NodeName,
        caller: &NodeName,
    ) -> SerializedMessage {
        let SerializedMessage::Call {
            variant,
            args,
            reply,
            metadata,
        } = msg
        else {
            return msg;
        };
        let (tx, rx) = oneshot::<Vec<u8>>();
        let port: RpcReplyPort<Vec<u8>> = match reply.get_timeout() {
            Some(t) => (tx, t).into(),
            None => tx.into(),
        };
        let cluster = self.clone();
        let (here, caller) = (here.clone(), caller.clone());
        tokio::spawn(async move {
            if let Ok(bytes) = rx.await {
                let mut w = cluster.world();
                if w.nodes.get(&here).is_some_and(|n| n.up) {
                    cluster.enqueue(&mut w, &here, &caller, ItemKind::Answer(reply, bytes));
                }
            }
        });
        SerializedMessage::Call {
            variant,
            args,
            reply: port,
            metadata,
        }
    }
}

/// A message to a standby entry, on its way through the node's relay.
pub(super) struct Relayed {
    due: Instant,
    dest: Arc<dyn Registry>,
    reg: Registration,
    msg: SerializedMessage,
}

impl FakeCluster {
    /// Hands `item` to `node`'s relay of standby-entry messages (started
    /// on first use), which delivers each at its time, in order.
    fn relay(&self, node: &NodeName, item: Relayed) {
        let mut w = self.world();
        let tx = w
            .entry_relays
            .entry(node.clone())
            .or_insert_with(|| {
                let (tx, mut rx) = mpsc::unbounded_channel::<Relayed>();
                tokio::spawn(async move {
                    while let Some(r) = rx.recv().await {
                        if r.due > Instant::now() {
                            tokio::time::sleep_until(r.due).await;
                        }
                        routing::send_wire(&r.dest, &r.reg, r.msg);
                    }
                });
                tx
            })
            .clone();
        drop(w);
        let _ = tx.send(item);
    }
}

pub(super) async fn run_link(
    cluster: FakeCluster,
    link: Link,
    mut items: mpsc::UnboundedReceiver<Item>,
    mut held: watch::Receiver<bool>,
) {
    while let Some(item) = items.recv().await {
        loop {
            while *held.borrow_and_update() {
                if held.changed().await.is_err() {
                    return;
                }
            }
            // No timer without a delay: a sleep, even a past one, waits for
            // the timer wheel's next tick (about a millisecond).
            if item.due > Instant::now() {
                tokio::time::sleep_until(item.due).await;
            }
            // Held (or paused) while it was on its way: it waits on.
            if !*held.borrow() {
                break;
            }
        }
        cluster.arrive(&link, item);
    }
}
