//! The default codec and a codec of the user's own: a serde state uses
//! postcard; a state that is not serde moves with the codec it implements.

use std::time::Duration;

use ractor::ActorProcessingErr;

use super::{decode_postcard, encode_postcard, StateCodec};
use crate::fake::FakeCluster;
use crate::{GlobalClient, StartType, StateCodecErr, TakeoverActor, TakeoverCtx, TakeoverServer};

/// Generous: it catches hangs, it does not measure speed.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A state that is not serde: it encodes itself as its decimal digits, so
/// the size of a transfer tells which codec ran (postcard would write 300
/// in two bytes, this codec in three).
struct Tally {
    n: u64,
}

impl StateCodec for Tally {
    fn encode(&self) -> Result<Vec<u8>, StateCodecErr> {
        Ok(self.n.to_string().into_bytes())
    }

    fn decode(bytes: &[u8]) -> Result<Self, StateCodecErr> {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(|n| Tally { n })
            .ok_or_else(|| StateCodecErr::Decode("not a decimal number".into()))
    }
}

/// Adds to a [`Tally`]; writes no `encode_state` or `decode_state`.
struct Adder;

impl TakeoverActor for Adder {
    type Msg = u64;
    type Reply = u64;
    type State = Tally;
    type Arguments = ();
    type Info = ();

    async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<Tally, ActorProcessingErr> {
        Ok(Tally { n: 0 })
    }

    async fn handle(
        &self,
        _: &TakeoverCtx<Self>,
        add: u64,
        state: &mut Tally,
    ) -> Result<u64, ActorProcessingErr> {
        state.n += add;
        Ok(state.n)
    }
}

/// A takeover moves a non-serde state through its own codec: the state
/// arrives whole, and the transfer has the codec's size.
#[tokio::test]
async fn a_non_serde_state_moves_with_its_own_codec() {
    let cluster = FakeCluster::new(["a", "b"]);
    let spawn = |node| {
        TakeoverServer::new("adder", Adder, cluster.registry(node), Default::default()).spawn(())
    };
    let (a, _) = spawn("a").await.expect("spawn a");
    let (b, _) = spawn("b").await.expect("spawn b");
    // Without a key, so that the window of answered calls that travels
    // with the state stays empty, of a known size.
    let client = GlobalClient::<Adder>::new("adder", cluster.registry("b")).with_retries(false);
    assert_eq!(client.call(300, TIMEOUT).await, Ok(300));

    let report = b.takeover(TIMEOUT).await.expect("the takeover completes");
    assert_eq!(report.start, StartType::Takeover { from: "a".into() });
    let sealed = crate::dedup::seal(b"300".to_vec(), &Default::default()).unwrap();
    assert_eq!(
        report.state_bytes,
        sealed.len(),
        "the state's own codec ran"
    );
    assert_eq!(
        client.call(1, TIMEOUT).await,
        Ok(301),
        "the state came along"
    );
    a.stop(None);
    b.stop(None);
}

/// A codec of the user's own that refuses bad bytes gives the typed error.
#[test]
fn a_state_that_does_not_decode_is_a_typed_error() {
    assert!(matches!(
        Tally::decode(b"x1"),
        Err(StateCodecErr::Decode(_))
    ));
}

/// A serde state's codec is postcard, both ways.
#[test]
fn a_serde_state_uses_postcard() {
    let state = (300_u64, String::from("kept"));
    let bytes = StateCodec::encode(&state).expect("encodes");
    assert_eq!(bytes, encode_postcard(&state).expect("encodes"));
    let back: (u64, String) = StateCodec::decode(&bytes).expect("decodes");
    assert_eq!(back, state);
    assert_eq!(
        decode_postcard::<(u64, String)>(&bytes).expect("decodes"),
        state
    );
    assert!(matches!(
        <(u64, String) as StateCodec>::decode(&[0xff]),
        Err(StateCodecErr::Decode(_))
    ));
}
