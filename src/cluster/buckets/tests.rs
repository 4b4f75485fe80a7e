//! Unit tests of the bucket tree: the reference token vectors, borrowing, the dequeue order
//! and tree edits. No runtime, no clock.

use super::*;
use crate::config::BucketConfig;

pub(super) fn b(name: &str, rate: f64, ceil: f64, children: Vec<BucketConfig>) -> BucketConfig {
    BucketConfig {
        name: name.into(),
        rate,
        ceil,
        rule: None,
        children,
    }
}

/// The reference tree: vip 0.1/0.3, main 0.5/0.7 with upload 0.5/0.5 under main.
fn reference(capacity: u32) -> BucketTree<u32> {
    let mut t = BucketTree::default();
    t.rebuild(&[
        b("vip", 0.1, 0.3, vec![]),
        b("main", 0.5, 0.7, vec![b("upload", 0.5, 0.5, vec![])]),
    ]);
    t.resize(Some(capacity));
    t
}

fn tokens(t: &BucketTree<u32>, name: &str) -> (Option<u32>, Option<u32>) {
    let n = t.get(t.by_name(name).expect("bucket"));
    (n.assured, n.ceiling)
}

#[test]
fn reference_token_vectors() {
    let t = reference(10);
    assert_eq!(tokens(&t, "root"), (Some(10), Some(10)));
    assert_eq!(tokens(&t, "vip"), (Some(1), Some(3)));
    assert_eq!(tokens(&t, "main"), (Some(5), Some(7)));
    assert_eq!(tokens(&t, "upload"), (Some(2), Some(3)));
    let t = reference(100);
    assert_eq!(tokens(&t, "vip"), (Some(10), Some(30)));
    assert_eq!(tokens(&t, "main"), (Some(50), Some(70)));
    assert_eq!(tokens(&t, "upload"), (Some(25), Some(35)));
}

#[test]
fn over_rate_vip_borrows_up_to_its_ceil() {
    let mut t = reference(10);
    let vip = t.by_name("vip").expect("vip");
    for expected_borrowed in [0, 1, 2] {
        assert!(t.can_take(vip));
        t.take(vip);
        assert_eq!(t.get(vip).borrowed(), expected_borrowed);
    }
    assert!(!t.can_take(vip), "the 4th waits: vip is at its ceil of 3");
    assert_eq!(t.get(0).used, 3);
}

#[test]
fn nested_ceilings_and_the_cluster_capacity_bound_everything() {
    let mut t = reference(10);
    let (upload, main) = (t.by_name("upload").expect("u"), t.by_name("main").expect("m"));
    for _ in 0..3 {
        t.take(upload);
    }
    assert!(!t.can_take(upload), "upload ceil 3");
    for _ in 0..4 {
        t.take(main);
    }
    assert!(!t.can_take(main), "main ceil 7 counts upload's tokens");
    let vip = t.by_name("vip").expect("vip");
    t.take(vip);
    t.take(vip);
    t.take(vip);
    assert!(!t.can_take(0), "root at capacity 10");
    assert_eq!(t.get(0).used, 10);
}

#[test]
fn freed_tokens_go_to_buckets_below_their_assured_share_first() {
    let mut t: BucketTree<u32> = BucketTree::default();
    t.rebuild(&[b("vip", 0.2, 0.4, vec![]), b("main", 0.8, 1.0, vec![])]);
    t.resize(Some(10));
    let (vip, main) = (t.by_name("vip").expect("v"), t.by_name("main").expect("m"));
    // main borrows everything while vip is idle.
    for _ in 0..10 {
        assert!(t.can_take(main));
        t.take(main);
    }
    for w in 0..5 {
        t.enqueue(main, w);
    }
    t.enqueue(vip, 100);
    t.enqueue(vip, 101);
    t.enqueue(vip, 102);
    let mut order = Vec::new();
    for _ in 0..5 {
        t.put(main);
        let i = t.next_waiting().expect("a waiter may take the freed token");
        order.push(t.dequeue(i).expect("waiter"));
        t.take(i);
    }
    // vip gets the first two freed tokens (below its assured 2) although main queued first;
    // then main is below its assured 8 and gets the rest before vip may borrow.
    assert_eq!(order, [100, 101, 0, 1, 2]);
    assert_eq!((t.get(vip).used, t.get(main).used, t.get(0).used), (2, 8, 10));
}

#[test]
fn a_parents_own_queue_is_owed_its_unreserved_share() {
    // Capacity 2: child `a` is assured 1 (0.5), the root's own requests the other 1.
    let mut t: BucketTree<u32> = BucketTree::default();
    t.rebuild(&[b("a", 0.5, 1.0, vec![])]);
    t.resize(Some(2));
    let a = t.by_name("a").expect("a");
    t.take(a);
    t.take(a); // `a` borrows the root's share
    t.enqueue(0, 1);
    t.enqueue(a, 2);
    t.put(a);
    let i = t.next_waiting().expect("next");
    assert_eq!(
        (i, t.dequeue(i)),
        (0, Some(1)),
        "the root's own queue is owed 1, `a` holds its 1"
    );
    t.take(i);
    t.put(a);
    let i = t.next_waiting().expect("next");
    assert_eq!((i, t.dequeue(i)), (a, Some(2)));
}

#[test]
fn rebuild_keeps_tokens_and_hands_a_deleted_buckets_queue_to_its_parent() {
    let mut t = reference(10);
    let upload = t.by_name("upload").expect("u");
    let key = t.get(upload).key;
    t.take(upload);
    t.take(upload);
    t.enqueue(upload, 7);
    t.rebuild(&[b("vip", 0.1, 0.3, vec![]), b("main", 0.5, 0.7, vec![])]);
    let main = t.by_name("main").expect("main");
    assert_eq!(
        t.index_of(key),
        Some(main),
        "the deleted bucket's key now means its parent"
    );
    assert_eq!(t.get(main).used, 2);
    assert_eq!(t.get(0).used, 2);
    assert_eq!(t.queue_len(main), 1);
    assert_eq!(t.queued(), 1);
    t.put(t.index_of(key).expect("heir"));
    t.put(t.index_of(key).expect("heir"));
    assert_eq!((t.get(main).used, t.get(0).used), (0, 0));
}

#[test]
fn an_unlimited_cluster_makes_every_bucket_unlimited() {
    let mut t = reference(10);
    t.resize(None);
    let vip = t.by_name("vip").expect("vip");
    for _ in 0..1000 {
        assert!(t.can_take(vip));
        t.take(vip);
    }
    assert_eq!(tokens(&t, "upload"), (None, None));
}

#[test]
fn validation_names_the_bucket() {
    assert!(validate_tree(&[b("vip", 0.2, 0.4, vec![]), b("main", 0.8, 1.0, vec![])]).is_ok());
    let errs = validate_tree(&[
        b("vip", 0.5, 0.4, vec![]),
        b("main", 0.8, 1.0, vec![b("vip", 0.1, 0.1, vec![])]),
        b("root", 0.0, 0.0, vec![]),
    ])
    .expect_err("invalid");
    let text = errs.join("\n");
    assert!(
        text.contains("bucket `vip`: need 0 <= rate <= ceil <= 1"),
        "{text}"
    );
    assert!(text.contains("bucket `vip` exists twice"), "{text}");
    assert!(text.contains("children of bucket `root` sum to 1.3"), "{text}");
    assert!(text.contains("`root` is reserved"), "{text}");
}
