//! An accepted connection until it has authenticated: what a peer that
//! never proves the cookie may cost the node.
//!
//! What ractor_cluster (0.16.5) does with an accepted stream
//! (`net/session.rs`, `node/node_session.rs`): every frame is a big-endian
//! `u64` length and a protobuf body; a length above the inbound cap
//! (`ClusterConfig::max_frame_bytes`) closes the connection, and a body is
//! buffered as its bytes arrive, so a length alone allocates nothing. The
//! cap is the same before and after the cookie handshake, and the handshake
//! has no time limit: a peer that connects and says nothing, or stops
//! halfway through a frame, keeps its session (three actors and a socket)
//! forever, and one that sends a body just under the cap makes the node
//! hold the cap for it.
//!
//! What this crate adds, on every connection its own listener accepts
//! (`listener`):
//! - a time limit on the whole authentication, TLS handshake included,
//!   counted from the accept (`ClusterConfig::auth_timeout`): a connection
//!   that has not authenticated by then is closed;
//! - a frame budget before authentication ([`PRE_AUTH_FRAME_BYTES`]): the
//!   handshake's own frames are a few dozen bytes, so the body of a larger
//!   frame is not read on until the session has authenticated. A stranger
//!   costs its socket buffer, never a big frame's body, and its time limit
//!   closes it;
//! - at most [`MAX_UNAUTHENTICATED`] connections authenticating at once; one
//!   over that is closed at accept.
//!
//! The reader only watches frame lengths go by; it never changes a byte.
//! Why not a copy through a pipe: after authentication the stream is read
//! directly, as ractor_cluster would read it.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};

use ractor_cluster::node::{NodeEventSubscription, NodeServerSessionInformation};
use ractor_cluster::{BoxRead, BoxWrite, ClusterBidiStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// The largest frame a connection may send before it has authenticated
/// whose body is read at once. The cookie handshake's frames (a node name,
/// a challenge, a digest) are far below it.
pub(crate) const PRE_AUTH_FRAME_BYTES: u64 = 4 << 10;

/// Connections authenticating (TLS handshake or cookie handshake) at once,
/// at most.
pub(crate) const MAX_UNAUTHENTICATED: usize = 64;

/// The connections authenticating now, by the label each was handed to the
/// node server under (ractor_cluster reports it back as the session's
/// `peer_addr`).
pub(crate) struct Gates {
    open: Mutex<HashMap<String, Arc<Gate>>>,
    next: AtomicU64,
    slots: Arc<Semaphore>,
}

/// One connection's authentication.
pub(crate) struct Gate {
    authenticated: AtomicBool,
    /// The reader waiting for authentication to read a big frame's body.
    waker: Mutex<Option<Waker>>,
    /// The connection's place among [`MAX_UNAUTHENTICATED`].
    slot: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Gate {
    fn is_open(&self) -> bool {
        self.authenticated.load(Ordering::Acquire)
    }

    fn open(&self) {
        self.authenticated.store(true, Ordering::Release);
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            w.wake();
        }
    }
}

impl Gates {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            open: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            slots: Arc::new(Semaphore::new(MAX_UNAUTHENTICATED)),
        })
    }

    /// A gate for a connection from `peer`; `None` when
    /// [`MAX_UNAUTHENTICATED`] connections are authenticating already.
    pub(crate) fn admit(self: &Arc<Self>, peer: std::net::SocketAddr) -> Option<Admission> {
        let slot = self.slots.clone().try_acquire_owned().ok()?;
        let label = format!("{peer}#{}", self.next.fetch_add(1, Ordering::Relaxed));
        let gate = Arc::new(Gate {
            authenticated: AtomicBool::new(false),
            waker: Mutex::new(None),
            slot: Mutex::new(Some(slot)),
        });
        self.lock().insert(label.clone(), gate.clone());
        Some(Admission {
            label,
            gate,
            gates: self.clone(),
        })
    }

    /// The session handed over as `label` authenticated.
    fn authenticated(&self, label: &str) {
        if let Some(gate) = self.lock().remove(label) {
            gate.open();
        }
    }

    fn forget(&self, label: &str) {
        self.lock().remove(label);
    }

    /// How many connections are authenticating now.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Gate>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection's place at the gates, from its accept until it closes:
/// dropped (a failed TLS handshake, a closed session), it frees its slot.
pub(crate) struct Admission {
    label: String,
    gate: Arc<Gate>,
    gates: Arc<Gates>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.gates.forget(&self.label);
        self.gate
            .slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

/// The node server's session events, for the gates: an authenticated
/// session opens its gate.
pub(crate) struct GateEvents(pub(crate) Arc<Gates>);

impl NodeEventSubscription for GateEvents {
    fn node_session_opened(&self, _: NodeServerSessionInformation) {}

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        self.0.forget(&ses.peer_addr);
    }

    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        self.0.authenticated(&ses.peer_addr);
    }
}

/// An accepted stream (TCP, or TLS over TCP), handed to the node server
/// as an external transport so that its reads pass the gate.
pub(crate) struct GuardedStream<R, W> {
    reader: R,
    writer: W,
    admission: Admission,
    deadline: Instant,
}

impl<R, W> GuardedStream<R, W> {
    /// `(reader, writer)` of a connection admitted as `admission`, which
    /// must authenticate by `deadline`.
    pub(crate) fn new((reader, writer): (R, W), admission: Admission, deadline: Instant) -> Self {
        Self {
            reader,
            writer,
            admission,
            deadline,
        }
    }
}

impl<R, W> ClusterBidiStream for GuardedStream<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    fn split(self: Box<Self>) -> (BoxRead, BoxWrite) {
        let me = *self;
        let reader = GuardedRead {
            inner: me.reader,
            admission: me.admission,
            deadline: Box::pin(tokio::time::sleep_until(me.deadline)),
            frame: Frame::Header {
                got: 0,
                len: [0; 8],
            },
        };
        (Box::new(reader), Box::new(me.writer))
    }

    fn peer_label(&self) -> Option<String> {
        Some(self.admission.label.clone())
    }
}

/// Where the reader is in the frame stream, before authentication.
enum Frame {
    /// `got` bytes of the next frame's length are in.
    Header { got: usize, len: [u8; 8] },
    /// `left` bytes of a body to go; `big`: above the pre-auth budget.
    Body { left: u64, big: bool },
}

/// The read half, watching frame lengths until the session authenticated.
pub(crate) struct GuardedRead<R> {
    inner: R,
    admission: Admission,
    deadline: Pin<Box<Sleep>>,
    frame: Frame,
}

impl<R: AsyncRead + Unpin> AsyncRead for GuardedRead<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.admission.gate.is_open() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            tracing::warn!(peer = %this.admission.label, "not authenticated in time: connection closed");
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer did not authenticate in time",
            )));
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        match &mut this.frame {
            Frame::Header { got, len } => {
                let want = (8 - *got).min(buf.remaining());
                let mut tmp = [0u8; 8];
                let mut part = ReadBuf::new(&mut tmp[..want]);
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut part))?;
                let n = part.filled().len();
                len[*got..*got + n].copy_from_slice(part.filled());
                buf.put_slice(part.filled());
                *got += n;
                if *got == 8 {
                    let length = u64::from_be_bytes(*len);
                    let big = length > PRE_AUTH_FRAME_BYTES;
                    if big {
                        tracing::debug!(peer = %this.admission.label, length, "a big frame before authentication: its body waits");
                    }
                    this.frame = if length == 0 {
                        Frame::Header {
                            got: 0,
                            len: [0; 8],
                        }
                    } else {
                        Frame::Body { left: length, big }
                    };
                }
                Poll::Ready(Ok(()))
            }
            Frame::Body { big: true, .. } => {
                *this
                    .admission
                    .gate
                    .waker
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
                // Authenticated meanwhile (no wake-up lost): read on.
                if this.admission.gate.is_open() {
                    return Pin::new(&mut this.inner).poll_read(cx, buf);
                }
                Poll::Pending
            }
            Frame::Body { left, big: false } => {
                let mut tmp = [0u8; PRE_AUTH_FRAME_BYTES as usize];
                let want = (*left).min(buf.remaining() as u64) as usize;
                let mut part = ReadBuf::new(&mut tmp[..want]);
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut part))?;
                let n = part.filled().len();
                buf.put_slice(part.filled());
                *left -= n as u64;
                if *left == 0 {
                    this.frame = Frame::Header {
                        got: 0,
                        len: [0; 8],
                    };
                }
                Poll::Ready(Ok(()))
            }
        }
    }
}

#[cfg(test)]
mod tests;
