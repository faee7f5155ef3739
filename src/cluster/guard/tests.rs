//! The gate on its own, over an in-memory pipe, with tokio's paused clock.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn peer() -> std::net::SocketAddr {
    "127.0.0.1:9".parse().expect("an address")
}

/// A guarded reader over one end of a pipe, the other end to write to, and
/// the gates it was admitted at.
fn guarded(auth: Duration) -> (BoxRead, tokio::io::DuplexStream, Arc<Gates>, String) {
    let gates = Gates::new();
    let admission = gates.admit(peer()).expect("admitted");
    let label = admission.label.clone();
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let (r, w) = tokio::io::split(ours);
    let stream = GuardedStream::new((r, w), admission, Instant::now() + auth);
    let (reader, _writer) = Box::new(stream).split();
    (reader, theirs, gates, label)
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u64).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// Frames within the budget pass byte for byte before authentication.
#[tokio::test(start_paused = true)]
async fn small_frames_pass_unchanged_before_authentication() {
    let (mut reader, mut peer, _gates, _) = guarded(Duration::from_secs(5));
    let mut sent = frame(b"hello");
    sent.extend(frame(&[7u8; PRE_AUTH_FRAME_BYTES as usize]));
    sent.extend(frame(b""));
    peer.write_all(&sent).await.expect("written");
    let mut got = vec![0u8; sent.len()];
    reader.read_exact(&mut got).await.expect("read");
    assert_eq!(got, sent);
}

/// A frame above the budget: its length passes, its body waits until the
/// session authenticates, then everything passes.
#[tokio::test(start_paused = true)]
async fn a_big_frames_body_waits_for_authentication() {
    let (mut reader, mut peer, gates, label) = guarded(Duration::from_secs(5));
    let body = vec![1u8; PRE_AUTH_FRAME_BYTES as usize + 1];
    let sent = frame(&body);
    peer.write_all(&sent).await.expect("written");
    let mut header = [0u8; 8];
    reader.read_exact(&mut header).await.expect("the length");
    let mut one = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_secs(1), reader.read(&mut one)).await;
    assert!(early.is_err(), "a body byte passed before authentication");
    assert_eq!(gates.pending(), 1);
    gates.authenticated(&label);
    assert_eq!(gates.pending(), 0);
    let mut rest = vec![0u8; body.len()];
    reader.read_exact(&mut rest).await.expect("the body");
    assert_eq!(rest, body);
}

/// A peer that says nothing, or stops inside a frame, is closed at the
/// deadline; one that authenticated is not.
#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_closed_at_the_deadline() {
    let (mut reader, _peer, _gates, _) = guarded(Duration::from_secs(5));
    let mut buf = [0u8; 8];
    let err = reader.read(&mut buf).await.expect_err("closed");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);

    let (mut reader, mut peer, _gates, _) = guarded(Duration::from_secs(5));
    peer.write_all(&[0, 0, 0]).await.expect("half a length");
    let mut got = [0u8; 3];
    reader.read_exact(&mut got).await.expect("what came");
    let err = reader.read(&mut buf).await.expect_err("closed");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);

    let (mut reader, mut peer, gates, label) = guarded(Duration::from_secs(5));
    gates.authenticated(&label);
    tokio::time::sleep(Duration::from_secs(10)).await;
    peer.write_all(b"late").await.expect("written");
    let mut late = [0u8; 4];
    reader
        .read_exact(&mut late)
        .await
        .expect("no deadline once in");
    assert_eq!(&late, b"late");
}

/// At most [`MAX_UNAUTHENTICATED`] connections authenticate at once; one
/// that closes, or authenticates, frees its place.
#[tokio::test]
async fn at_most_so_many_authenticate_at_once() {
    let gates = Gates::new();
    let mut held: Vec<Admission> = (0..MAX_UNAUTHENTICATED)
        .map(|_| gates.admit(peer()).expect("a place"))
        .collect();
    assert!(gates.admit(peer()).is_none(), "one over the limit");
    drop(held.pop());
    let again = gates.admit(peer()).expect("a place freed by a close");
    gates.authenticated(&held[0].label);
    let _third = gates
        .admit(peer())
        .expect("a place freed by authentication");
    assert!(gates.admit(peer()).is_none());
    drop(again);
    assert_eq!(gates.pending(), MAX_UNAUTHENTICATED - 1);
}
