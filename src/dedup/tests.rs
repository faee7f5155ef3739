use super::*;

fn key(client: u128, seq: u64, seen: u64) -> CallKey {
    CallKey {
        client,
        seq,
        seen,
        floor: 0,
    }
}

fn key_above(client: u128, seq: u64, floor: u64) -> CallKey {
    CallKey {
        client,
        seq,
        seen: 0,
        floor,
    }
}

/// Fault seeds 1818104176, 1818105932, 3495691198 (retries on): a try of
/// call 10 that nobody waited for any more (the client had its answer from
/// another lineage) was applied after the client's calls 11 to 15, in a
/// lineage without call 10. The later calls' floor says call 10 had ended.
#[test]
fn a_try_below_its_clients_floor_is_refused_unless_answered() {
    let mut w = Window::default();
    w.record(&key_above(1, 9, 9), b"nine".to_vec(), 8);
    for seq in 11..=15 {
        w.record(&key_above(1, seq, 11), vec![seq as u8], 8);
    }
    assert_eq!(w.check(&key_above(1, 10, 10)), Seen::Ended { applied: 6 });
    // Answered keys below the floor still get their reply.
    assert_eq!(
        w.check(&key_above(1, 9, 9)),
        Seen::Answered(b"nine".to_vec())
    );
    // At or above the floor, and other clients: new.
    assert_eq!(w.check(&key_above(1, 16, 11)), Seen::New);
    assert_eq!(w.check(&key_above(2, 10, 10)), Seen::New);
}

/// The floor moves with the window (seal and open, a merge, a delta) and
/// leaves with the client's last entry, so it stays bounded by the window.
#[test]
fn a_clients_floor_travels_with_the_window_and_leaves_with_it() {
    let mut w = Window::default();
    w.settle();
    w.record(&key_above(1, 5, 5), vec![5], 4);
    let sealed = seal(Vec::new(), &w).unwrap();
    let (_, opened) = open(&sealed).unwrap();
    assert_eq!(
        opened.check(&key_above(1, 4, 4)),
        Seen::Ended { applied: 1 }
    );

    let mut standby = Window::default();
    standby.apply_delta(&w.take_delta().unwrap()).unwrap();
    assert_eq!(
        standby.check(&key_above(1, 4, 4)),
        Seen::Ended { applied: 1 }
    );

    let mut winner = Window::default();
    winner.absorb(opened, 4);
    assert_eq!(
        winner.check(&key_above(1, 4, 4)),
        Seen::Ended { applied: 1 }
    );

    // Client 1's entry leaves: its floor with it (`seen` guards from then).
    for seq in 1..=4 {
        w.record(&key_above(2, seq, seq), vec![], 4);
    }
    let late = CallKey {
        client: 1,
        seq: 4,
        seen: w.applied(),
        floor: 4,
    };
    assert_eq!(w.check(&late), Seen::New);
}

/// A client's floor is its oldest call under way, whichever task made it.
#[test]
fn the_floor_is_the_oldest_call_under_way() {
    let keys = ClientKeys::new();
    let (a, pa) = keys.next();
    let (b, pb) = keys.next();
    assert_eq!((a.floor, b.floor), (a.seq, a.seq));
    drop(pa);
    assert_eq!(keys.floor(b.seq), b.seq, "a ended: b is the oldest");
    let (c, _pc) = keys.next();
    assert_eq!(c.floor, b.seq);
    drop(pb);
    assert_eq!(keys.floor(c.seq), c.seq);
}

#[test]
fn an_applied_key_gets_its_reply_and_a_new_one_is_new() {
    let mut w = Window::default();
    assert_eq!(w.check(&key(1, 1, 0)), Seen::New);
    w.record(&key(1, 1, 0), b"one".to_vec(), 4);
    assert_eq!(w.check(&key(1, 1, 0)), Seen::Answered(b"one".to_vec()));
    // The same seq from another client is another call.
    assert_eq!(w.check(&key(2, 1, 0)), Seen::New);
}

#[test]
fn past_the_bound_a_key_that_may_have_left_is_refused_not_new() {
    let mut w = Window::default();
    for seq in 1..=3 {
        w.record(&key(1, seq, 0), vec![seq as u8], 2);
    }
    assert_eq!(w.len(), 2);
    // (1, 1) left the window; a retry that saw nothing cannot be told apart.
    assert_eq!(w.check(&key(1, 1, 0)), Seen::PastWindow { applied: 3 });
    // Nor can a call never applied whose client saw nothing.
    assert_eq!(w.check(&key(9, 1, 0)), Seen::PastWindow { applied: 3 });
    // One whose client heard of ordinal 3 before sending is new if absent.
    assert_eq!(w.check(&key(9, 1, 3)), Seen::New);
    assert_eq!(w.check(&key(1, 3, 0)), Seen::Answered(vec![3]));
}

#[test]
fn the_window_survives_seal_and_open_with_the_users_bytes() {
    let mut w = Window::default();
    for seq in 1..=5 {
        w.record(&key(7, seq, 0), vec![seq as u8; 3], 3);
    }
    let sealed = seal(b"user state".to_vec(), &w).unwrap();
    let (user, back) = open(&sealed).unwrap();
    assert_eq!(user, b"user state");
    assert_eq!(back.applied(), 5);
    assert_eq!(back.check(&key(7, 5, 0)), Seen::Answered(vec![5; 3]));
    assert_eq!(back.check(&key(7, 2, 0)), Seen::PastWindow { applied: 5 });
}

#[test]
fn damaged_bytes_fail_to_open_without_a_panic() {
    assert!(open(&[]).is_err());
    assert!(open(&[1, 2, 3]).is_err());
    assert!(open(&[0xff, 0xff, 0xff, 0x7f]).is_err());
    let sealed = seal(vec![1, 2], &Window::default()).unwrap();
    let mut cut = sealed.clone();
    cut.remove(0);
    let (user, _) = open(&cut).unwrap();
    assert_eq!(user, [2], "the user's bytes are cut, the window is intact");
}

#[test]
fn a_merge_keeps_both_sides_keys_and_stays_safe_for_old_seens() {
    let mut ours = Window::default();
    ours.record(&key(1, 1, 0), vec![1], 4);
    let mut theirs = Window::default();
    for seq in 1..=3 {
        theirs.record(&key(2, seq, 0), vec![seq as u8], 2);
    }
    ours.absorb(theirs, 4);
    assert_eq!(ours.check(&key(1, 1, 0)), Seen::Answered(vec![1]));
    assert_eq!(ours.check(&key(2, 3, 0)), Seen::Answered(vec![3]));
    // (2, 1) left the loser's window: still not applied again here.
    assert_eq!(ours.check(&key(2, 1, 0)), Seen::PastWindow { applied: 4 });
}

#[test]
fn client_keys_are_distinct_and_carry_what_was_heard() {
    let a = ClientKeys::new();
    let b = ClientKeys::new();
    assert_ne!(a.next().0.client, b.next().0.client);
    let (k1, k2) = (a.next().0, a.next().0);
    assert_eq!(k2.seq, k1.seq + 1);
    a.heard(40);
    a.heard(30);
    assert_eq!(a.next().0.seen, 40);
}

/// Synchronous standby: a standby that applies each replica's window
/// delta ends with the holder's window (same answers, same ordinals, same
/// evictions), a delta that does not follow is refused and changes
/// nothing, and after a merge no delta describes the window.
#[test]
fn window_deltas_keep_a_standby_equal_to_its_holder() {
    let mut holder = Window::default();
    holder.record(&key(1, 1, 0), vec![1], 3);
    // The whole window went with the first replica (sealed); deltas follow.
    let (_, mut standby) = open(&seal(Vec::new(), &holder).unwrap()).unwrap();
    holder.settle();
    let mut skipped = None;
    for seq in 2..=6 {
        holder.record(&key(1, seq, 0), vec![seq as u8], 3);
        let d = holder.take_delta().expect("only recorded since");
        if seq == 4 {
            skipped = Some(d.clone());
        }
        standby.apply_delta(&d).expect("follows");
        assert_eq!(standby.applied(), holder.applied());
        assert_eq!(standby.len(), holder.len());
    }
    for seq in 1..=6 {
        assert_eq!(
            standby.check(&key(1, seq, 0)),
            holder.check(&key(1, seq, 0))
        );
        assert_eq!(
            standby.ordinal(&key(1, seq, 0)),
            holder.ordinal(&key(1, seq, 0))
        );
    }
    let before = (standby.applied(), standby.len());
    assert!(
        standby.apply_delta(&skipped.unwrap()).is_err(),
        "an old delta does not follow"
    );
    assert_eq!((standby.applied(), standby.len()), before, "refused whole");
    holder.absorb(Window::default(), 3);
    assert_eq!(holder.take_delta(), None, "a merge: a whole state next");
    holder.record(&key(2, 1, 0), vec![9], 3);
    assert!(holder.take_delta().is_some(), "deltas again after it");
}
