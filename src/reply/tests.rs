//! The port's wire form and the rule that no port ends without an answer.

use std::time::Duration;

use ractor::concurrency::{oneshot, OneshotReceiver};
use serde::{Deserialize, Serialize};

use super::*;
use crate::message::wire::decode_answer;

#[derive(Debug, Serialize, Deserialize)]
enum Msg {
    Get(String, Reply<u64>),
    Two(Reply<u64>, Reply<u64>),
}

fn port(timeout: Duration) -> (Arc<Slot>, OneshotReceiver<Vec<u8>>) {
    let (tx, rx) = oneshot::<Vec<u8>>();
    (Slot::new((tx, timeout).into()), rx)
}

fn answer(rx: &mut OneshotReceiver<Vec<u8>>) -> Option<Result<u64, CallErr>> {
    rx.try_recv().ok().map(|b| decode_answer::<u64>(&b))
}

const T: Duration = Duration::from_secs(60);

/// A port is nothing on the wire: the call's own port answers.
#[tokio::test]
async fn a_port_encodes_as_nothing() {
    let bytes = postcard::to_allocvec(&Msg::Get("k".into(), Reply::detached())).unwrap();
    let without = postcard::to_allocvec(&(0u32, "k")).unwrap();
    assert_eq!(bytes, without, "variant index and key only");
}

/// Decoded as a call is, the port answers the call's byte port.
#[tokio::test]
async fn a_port_decoded_with_its_call_answers_it() {
    let (slot, mut rx) = port(T);
    let bytes = postcard::to_allocvec(&Msg::Get("k".into(), Reply::detached())).unwrap();
    let Msg::Get(key, reply) = decode_bound::<Msg>(&slot, &bytes).unwrap() else {
        panic!("decoded the wrong variant");
    };
    assert_eq!(key, "k");
    assert!(!reply.is_detached() && !reply.is_closed());
    assert_eq!(reply.timeout(), Some(T));
    drop(slot); // the runtime's side may go first: the port still answers
    assert_eq!(reply.send(7), Ok(()));
    assert_eq!(answer(&mut rx), Some(Ok(7)));
}

/// Decoded anywhere else (a state, a checkpoint), the port is detached and
/// the binding of one call does not leak into the next decode.
#[tokio::test]
async fn a_port_decoded_outside_a_call_is_detached() {
    let bytes = postcard::to_allocvec(&Msg::Get("k".into(), Reply::detached())).unwrap();
    let (slot, mut rx) = port(T);
    let Msg::Two(first, second) = decode_bound::<Msg>(
        &slot,
        &postcard::to_allocvec(&Msg::Two(Reply::detached(), Reply::detached())).unwrap(),
    )
    .unwrap() else {
        panic!("decoded the wrong variant");
    };
    assert!(!first.is_detached(), "the first port binds");
    assert!(
        second.is_detached(),
        "one port per call: the second is detached"
    );
    let Msg::Get(_, state_port) = postcard::from_bytes::<Msg>(&bytes).unwrap() else {
        panic!("decoded the wrong variant");
    };
    assert!(state_port.is_detached() && state_port.is_closed());
    assert_eq!(state_port.send(1), Err(ReplySendErr::Detached));
    assert_eq!(second.send(2), Err(ReplySendErr::Detached));
    assert_eq!(answer(&mut rx), None, "detached ports sent nothing");
    drop(first);
    assert_eq!(answer(&mut rx), Some(Err(CallErr::ReplyDropped)));
}

/// A port dropped unanswered answers `ReplyDropped`, once; an answered one
/// sends nothing more when dropped.
#[tokio::test]
async fn a_dropped_port_answers_an_error() {
    let (slot, mut rx) = port(T);
    drop(Reply::<u64>::bound(slot));
    assert_eq!(answer(&mut rx), Some(Err(CallErr::ReplyDropped)));

    let (slot, mut rx) = port(T);
    let reply = Reply::<u64>::bound(slot.clone());
    assert_eq!(reply.send(3), Ok(()));
    assert_eq!(answer(&mut rx), Some(Ok(3)));
    assert_eq!(
        slot.answer(&Err::<(), CallErr>(CallErr::Moved)),
        Err(ReplySendErr::CallerGone),
        "answered once only"
    );
}

/// An answer after the caller's deadline is not sent, and says so.
#[tokio::test(start_paused = true)]
async fn a_late_answer_is_not_sent() {
    let (slot, mut rx) = port(Duration::from_millis(100));
    let reply = Reply::<u64>::bound(slot);
    tokio::time::advance(Duration::from_millis(100)).await;
    assert!(reply.is_closed());
    assert_eq!(reply.send(1), Err(ReplySendErr::CallerGone));
    assert_eq!(answer(&mut rx), None);
}

/// A caller that went away closes its port.
#[tokio::test]
async fn a_gone_caller_closes_the_port() {
    let (slot, rx) = port(T);
    let reply = Reply::<u64>::bound(slot);
    drop(rx);
    assert!(reply.is_closed());
    assert_eq!(reply.send(1), Err(ReplySendErr::CallerGone));
}

/// A handover answers every port still held `Moved`, and only those: an
/// answered or dropped one is gone from the list.
#[tokio::test]
async fn held_ports_are_answered_moved() {
    let mut held = HeldPorts::default();
    let mut kept = Vec::new();
    let mut rxs = Vec::new();
    for _ in 0..40 {
        let (slot, rx) = port(T);
        kept.push(Reply::<u64>::bound(slot.clone()));
        held.keep(&slot);
        rxs.push(rx);
    }
    let (slot, mut answered_rx) = port(T);
    let answered = Reply::<u64>::bound(slot.clone());
    held.keep(&slot);
    drop(slot);
    assert_eq!(answered.send(9), Ok(()));
    // Not bound to a port in a message: the runtime answers it itself.
    let (unbound, _unbound_rx) = port(T);
    held.keep(&unbound);

    assert_eq!(held.answer_moved(), 40);
    for rx in &mut rxs {
        assert_eq!(answer(rx), Some(Err(CallErr::Moved)));
    }
    assert_eq!(answer(&mut answered_rx), Some(Ok(9)));
    for reply in kept {
        assert!(reply.is_closed());
        assert_eq!(reply.send(1), Err(ReplySendErr::CallerGone));
    }
    assert_eq!(held.answer_moved(), 0, "answered once");
}
