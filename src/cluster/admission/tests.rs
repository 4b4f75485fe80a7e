//! Unit tests of the admission state: capacity, FIFO token passing, roles, draining, and a
//! property test: random walks of requests and control-plane changes checked against a model
//! after every step (proptest, fixed seed; a failure shrinks to a short walk).
use proptest::prelude::*;
use proptest::sample::Index;

use super::*;
use crate::config::parse_backend_url;
use crate::test_util::proptest_runs;

fn backend(name: &str) -> Arc<Backend> {
    Backend::new(
        "c",
        name,
        parse_backend_url("http://127.0.0.1:1").unwrap(),
        None,
        None,
    )
}

fn spec(backend: &Arc<Backend>, role: Role, capacity: u32, usable: bool) -> SlotSpec {
    SlotSpec {
        backend: backend.clone(),
        role,
        capacity,
        usable,
        healthy: usable,
    }
}

fn active(b: &Arc<Backend>, capacity: u32) -> SlotSpec {
    spec(b, Role::Active, capacity, true)
}

fn standby(b: &Arc<Backend>, capacity: u32) -> SlotSpec {
    spec(b, Role::Standby, capacity, true)
}

fn backup(b: &Arc<Backend>, capacity: u32) -> SlotSpec {
    spec(b, Role::Backup, capacity, true)
}

/// The same slot, not usable (disabled or unhealthy).
fn down(mut spec: SlotSpec) -> SlotSpec {
    spec.usable = false;
    spec
}

fn admission(scheduler: SchedulerKind, queue_limit: usize, enqueue_on_unavailable: bool) -> Arc<Admission> {
    Admission::new(AdmissionSettings {
        scheduler,
        queue_limit,
        enqueue_on_unavailable,
    })
}

fn rr() -> Arc<Admission> {
    admission(SchedulerKind::RoundRobin, 16, false)
}

fn outcome(admit: &Admit) -> &'static str {
    match admit {
        Admit::Granted(_) => "Granted",
        Admit::Queued(_) => "Queued",
        Admit::Unavailable => "Unavailable",
        Admit::QueueFull => "QueueFull",
    }
}

fn grant(admit: Admit) -> Grant {
    match admit {
        Admit::Granted(g) => g,
        other => panic!("expected Granted, got {}", outcome(&other)),
    }
}

fn ticket(admit: Admit) -> Ticket {
    match admit {
        Admit::Queued(t) => t,
        other => panic!("expected Queued, got {}", outcome(&other)),
    }
}

/// `n` grants, each of which must be granted at once.
fn take(a: &Arc<Admission>, n: usize) -> Vec<Grant> {
    (0..n).map(|_| grant(a.acquire(ROOT))).collect()
}

/// The grant handed to a queued ticket, if any (no runtime needed).
fn served(t: &mut Ticket) -> Option<Grant> {
    let g = t.rx.as_mut()?.try_recv().ok()?;
    t.rx = None;
    Some(g)
}

fn in_flight(b: &Backend) -> u64 {
    b.stats.in_flight.current()
}

/// Cluster in-flight gauge, root tokens in use, queued gauge and queue length.
#[track_caller]
fn assert_totals(a: &Admission, in_flight: u64, queued: u64) {
    assert_eq!(a.stats.in_flight.current(), in_flight, "cluster in flight");
    assert_eq!(u64::from(a.capacity().1), in_flight, "root tokens in use");
    assert_eq!(a.stats.queued.current(), queued, "queued gauge");
    assert_eq!(a.state.lock().buckets.queued() as u64, queued, "queue length");
}

/// [`assert_totals`] for a cluster of one backend, whose in-flight count is checked too.
#[track_caller]
fn assert_one(a: &Admission, b: &Backend, in_flight: u64, queued: u64) {
    assert_eq!(b.stats.in_flight.current(), in_flight, "backend in flight");
    assert_totals(a, in_flight, queued);
}

fn ids(grants: &[Grant]) -> Vec<BackendId> {
    grants.iter().map(|g| g.backend().id).collect()
}

#[test]
fn capacity_is_exact_and_a_freed_slot_passes_to_the_queue() {
    let a = rr();
    let b = backend("b");
    a.set_backends(vec![active(&b, 2)]);
    assert_eq!(a.capacity(), (Some(2), 0));
    let g1 = grant(a.acquire(ROOT));
    assert_eq!((g1.backend().id, g1.bucket), (b.id, ROOT));
    assert_one(&a, &b, 1, 0);
    let g2 = grant(a.acquire(ROOT));
    assert_one(&a, &b, 2, 0);
    let mut t3 = ticket(a.acquire(ROOT));
    assert!(served(&mut t3).is_none());
    assert_one(&a, &b, 2, 1);
    drop(g1);
    let g3 = served(&mut t3).expect("the freed slot goes to the queued ticket");
    assert_eq!(g3.backend().id, b.id);
    assert_one(&a, &b, 2, 0);
    drop((t3, g2));
    assert_one(&a, &b, 1, 0);
    drop(g3);
    assert_one(&a, &b, 0, 0);
    assert_eq!(a.capacity(), (Some(2), 0));
}

#[test]
fn queue_is_fifo_and_newcomers_never_overtake() {
    let a = rr();
    let b = backend("b");
    a.set_backends(vec![active(&b, 1)]);
    let g = grant(a.acquire(ROOT));
    let mut w: Vec<Ticket> = (0..3).map(|_| ticket(a.acquire(ROOT))).collect();
    assert_totals(&a, 1, 3);
    drop(g);
    let g1 = served(&mut w[0]).expect("W1 first");
    assert!(served(&mut w[1]).is_none() && served(&mut w[2]).is_none());
    // A request arriving right after a release queues behind W2 and W3.
    let mut w4 = ticket(a.acquire(ROOT));
    assert_totals(&a, 1, 3);
    drop(g1);
    let g2 = served(&mut w[1]).expect("W2 second");
    assert!(served(&mut w[2]).is_none() && served(&mut w4).is_none());
    drop(g2);
    let g3 = served(&mut w[2]).expect("W3 third");
    assert!(served(&mut w4).is_none());
    drop(g3);
    let g4 = served(&mut w4).expect("the newcomer last");
    assert_totals(&a, 1, 0);
    drop(g4);
    assert_one(&a, &b, 0, 0);
}

#[test]
fn queue_limit_and_unavailable() {
    let a = admission(SchedulerKind::RoundRobin, 2, false);
    let (b, b2) = (backend("b"), backend("b2"));
    a.set_backends(vec![active(&b, 1)]);
    let g = grant(a.acquire(ROOT));
    let (t1, t2) = (ticket(a.acquire(ROOT)), ticket(a.acquire(ROOT)));
    assert!(matches!(a.acquire(ROOT), Admit::QueueFull));
    assert_totals(&a, 1, 2);
    drop(t1);
    let t3 = ticket(a.acquire(ROOT));
    assert_totals(&a, 1, 2);
    drop((t2, t3, g));
    assert_totals(&a, 0, 0);
    for enqueue in [false, true] {
        // queue_limit 0: full, unless nothing is usable and the cluster does not queue then.
        let a = admission(SchedulerKind::RoundRobin, 0, enqueue);
        a.set_backends(vec![active(&b, 1)]);
        let g = grant(a.acquire(ROOT));
        assert!(matches!(a.acquire(ROOT), Admit::QueueFull));
        drop(g);
        a.set_backends(vec![down(active(&b, 1))]);
        let want = if enqueue { "QueueFull" } else { "Unavailable" };
        assert_eq!(outcome(&a.acquire(ROOT)), want);
        // Nothing usable (no backends, or only unusable ones).
        let a = admission(SchedulerKind::RoundRobin, 4, enqueue);
        let want = if enqueue { "Queued" } else { "Unavailable" };
        assert_eq!(outcome(&a.acquire(ROOT)), want);
        a.set_backends(vec![down(active(&b, 3)), down(backup(&b2, 3))]);
        assert_eq!(outcome(&a.acquire(ROOT)), want);
        assert_totals(&a, 0, 0);
    }
}

#[test]
fn standby_only_when_every_active_is_full() {
    let a = rr();
    let (a1, a2, s, k) = (backend("a1"), backend("a2"), backend("s"), backend("k"));
    let specs = vec![active(&a1, 1), active(&a2, 1), standby(&s, 2), backup(&k, 5)];
    a.set_backends(specs);
    assert_eq!(a.capacity(), (Some(4), 0), "backups not counted");
    let mut gs = take(&a, 4);
    assert_eq!(ids(&gs), [a1.id, a2.id, s.id, s.id]);
    // The backup stays idle: the others are merely full.
    let mut t = ticket(a.acquire(ROOT));
    assert_eq!(in_flight(&k), 0);
    drop(gs.remove(1));
    assert_eq!(served(&mut t).expect("served").backend().id, a2.id);
    drop(gs);
    assert_totals(&a, 0, 0);
}

#[test]
fn backup_only_when_no_active_or_standby_is_usable() {
    let a = rr();
    let (x, s, k) = (backend("x"), backend("s"), backend("k"));
    a.set_backends(vec![down(active(&x, 1)), standby(&s, 1), backup(&k, 3)]);
    assert_eq!(a.capacity(), (Some(1), 0));
    let g = grant(a.acquire(ROOT));
    assert_eq!(g.backend().id, s.id);
    let mut t = ticket(a.acquire(ROOT));
    assert_eq!(in_flight(&k), 0, "standby merely full: no failover");
    drop(g);
    assert_eq!(served(&mut t).expect("served").backend().id, s.id);
    assert_totals(&a, 0, 0);
    a.set_backends(vec![down(active(&x, 1)), down(standby(&s, 1)), backup(&k, 3)]);
    assert_eq!(a.capacity(), (Some(3), 0), "backups take over the tokens");
    let gs = take(&a, 3);
    assert_eq!(ids(&gs), [k.id; 3]);
    let t = ticket(a.acquire(ROOT));
    drop((gs, t));
    assert_totals(&a, 0, 0);
    a.set_backends(vec![active(&x, 1), down(standby(&s, 1)), backup(&k, 3)]);
    assert_eq!(a.capacity(), (Some(1), 0));
    assert_eq!(grant(a.acquire(ROOT)).backend().id, x.id);
}

#[test]
fn root_tokens_follow_the_roles_in_service() {
    let a = rr();
    let (x, y, z, k) = (backend("x"), backend("y"), backend("z"), backend("k"));
    let check = |specs, tokens: Option<u32>| {
        a.set_backends(specs);
        assert_eq!(a.capacity().0, tokens);
    };
    check(vec![active(&x, 2), standby(&y, 3), backup(&k, 7)], Some(5));
    // Unusable or out-of-service unlimited backends do not count.
    check(vec![active(&x, 2), down(active(&z, 0)), backup(&k, 0)], Some(2));
    check(vec![down(active(&x, 2)), backup(&k, 7)], Some(7));
    check(vec![down(active(&x, 2)), backup(&k, 0)], None);
    check(vec![], Some(0));
    // A usable unlimited backend makes the tokens unlimited.
    check(vec![active(&x, 2), standby(&y, 0)], None);
    let gs = take(&a, 50);
    assert_eq!((in_flight(&x), in_flight(&y)), (2, 48));
    assert_totals(&a, 50, 0);
    drop(gs);
    assert_totals(&a, 0, 0);
}

#[test]
fn failed_grant_marks_the_backend_unusable_and_returns_capacity() {
    let a = rr();
    let (x, y) = (backend("x"), backend("y"));
    a.set_backends(vec![active(&x, 2), active(&y, 2)]);
    let g = grant(a.acquire(ROOT));
    assert_eq!(g.backend().id, x.id);
    g.fail();
    assert_one(&a, &x, 0, 0);
    assert_eq!(a.capacity(), (Some(2), 0), "only y's capacity remains");
    let mut gs = take(&a, 2);
    assert_eq!(ids(&gs), [y.id, y.id], "x is skipped although empty");
    let mut t = ticket(a.acquire(ROOT));
    // Failing with someone queued: the token is returned, but x and y are both out now; only
    // the request still running on y holds a token.
    gs.pop().unwrap().fail();
    assert_eq!(a.capacity(), (Some(1), 1));
    assert!(served(&mut t).is_none());
    // The control plane brings both back: the waiter is served at once.
    a.set_backends(vec![active(&x, 2), active(&y, 2)]);
    let g = served(&mut t).expect("served");
    assert_eq!(g.backend().id, x.id);
    assert_totals(&a, 2, 0);
    drop((gs, g));
    assert_totals(&a, 0, 0);
}

#[test]
fn set_backends_keeps_in_flight_and_drains_removed_backends() {
    let a = admission(SchedulerKind::Chance, 16, false);
    let (x, y) = (backend("x"), backend("y"));
    a.set_backends(vec![active(&x, 2)]);
    let mut on_x = take(&a, 2);
    a.set_backends(vec![active(&x, 3)]);
    assert_eq!(in_flight(&x), 2);
    assert_eq!(a.capacity(), (Some(3), 2));
    on_x.push(grant(a.acquire(ROOT)));
    drop(ticket(a.acquire(ROOT)));
    a.set_backends(vec![active(&y, 10)]);
    assert!(a.has_slot(x.id));
    assert_eq!(in_flight(&x), 3);
    // y's capacity plus the tokens x's requests hold.
    assert_eq!(a.capacity(), (Some(13), 3));
    let on_y = take(&a, 3);
    assert_eq!(ids(&on_y), [y.id; 3], "a draining backend is not scheduled");
    on_x.truncate(1);
    assert!(a.has_slot(x.id));
    drop(on_x);
    assert!(!a.has_slot(x.id));
    assert_eq!(in_flight(&x), 0);
    drop(on_y);
    assert_totals(&a, 0, 0);
    // A draining backend added back keeps its in-flight count.
    a.set_backends(vec![active(&x, 2)]);
    let gs = take(&a, 2);
    a.set_backends(vec![]);
    assert!(matches!(a.acquire(ROOT), Admit::Unavailable));
    a.set_backends(vec![active(&x, 2)]);
    assert_eq!(in_flight(&x), 2);
    let t = ticket(a.acquire(ROOT));
    drop((gs, t));
    assert_totals(&a, 0, 0);
}

#[test]
fn growing_capacity_serves_as_many_waiters_as_fit_at_once() {
    let a = admission(SchedulerKind::RoundRobin, 16, true);
    let x = backend("x");
    a.set_backends(vec![down(active(&x, 3))]);
    let mut w: Vec<Ticket> = (0..4).map(|_| ticket(a.acquire(ROOT))).collect();
    assert_totals(&a, 0, 4);
    a.set_backends(vec![active(&x, 3)]);
    let mut gs: Vec<Grant> = w.iter_mut().filter_map(served).collect();
    assert_eq!(gs.len(), 3, "served at once, the first three");
    assert_one(&a, &x, 3, 1);
    a.set_backends(vec![active(&x, 6)]);
    gs.push(served(&mut w[3]).expect("served by the bigger capacity"));
    assert_one(&a, &x, 4, 0);
    drop((gs, w));
    assert_one(&a, &x, 0, 0);
}

#[test]
fn departed_waiters_lose_no_capacity() {
    let a = rr();
    let x = backend("x");
    a.set_backends(vec![active(&x, 1)]);
    // Dropped while queued: it leaves the queue.
    let g = grant(a.acquire(ROOT));
    let (t1, mut t2) = (ticket(a.acquire(ROOT)), ticket(a.acquire(ROOT)));
    drop(t1);
    assert_totals(&a, 1, 1);
    drop(g);
    let g = served(&mut t2).expect("the capacity is not lost");
    assert_totals(&a, 1, 0);
    // Still queued but its receiver gone (the race with its timeout): the grant is refused and
    // returned, then goes to the next waiter.
    let mut t1 = ticket(a.acquire(ROOT));
    drop(t1.rx.take());
    let mut t2 = ticket(a.acquire(ROOT));
    drop(g);
    let g = served(&mut t2).expect("passed to the next waiter");
    assert_totals(&a, 1, 0);
    drop(t1);
    // Same with nobody behind: the capacity is simply free again.
    let mut t = ticket(a.acquire(ROOT));
    drop(t.rx.take());
    drop((g, t));
    assert_one(&a, &x, 0, 0);
    // Served, then dropped before reading its grant: returned (to the next waiter).
    let g = grant(a.acquire(ROOT));
    let (t1, mut t2) = (ticket(a.acquire(ROOT)), ticket(a.acquire(ROOT)));
    drop(g);
    assert_totals(&a, 1, 1);
    drop(t1);
    let g = served(&mut t2).expect("passed on");
    assert_totals(&a, 1, 0);
    drop(g);
    assert_one(&a, &x, 0, 0);
}

// tokio's `test-util` feature (time::pause) is not enabled: a zero timeout expires at once.
#[tokio::test]
async fn wait_times_out_and_withdraws_or_returns_a_grant_in_time() {
    let a = rr();
    let x = backend("x");
    a.set_backends(vec![active(&x, 1)]);
    let g = grant(a.acquire(ROOT));
    let t = ticket(a.acquire(ROOT));
    assert!(t.wait(Duration::ZERO).await.is_none());
    assert_totals(&a, 1, 0);
    let (t1, t2) = (ticket(a.acquire(ROOT)), ticket(a.acquire(ROOT)));
    drop(g);
    // Already served before waiting: even a zero timeout yields the grant.
    let g1 = t1.wait(Duration::ZERO).await.expect("grant already there");
    // Served while waiting, by a release elsewhere.
    let release = async move {
        tokio::task::yield_now().await;
        drop(g1);
    };
    let (g2, ()) = tokio::join!(t2.wait(Duration::from_secs(3600)), release);
    assert_eq!(g2.expect("grant before the timeout").backend().id, x.id);
    assert_totals(&a, 0, 0);
}

#[test]
fn schedulers_through_admission() {
    let (x, y) = (backend("x"), backend("y"));
    let a = admission(SchedulerKind::RoundRobin, 16, false);
    a.set_backends(vec![active(&x, 0), active(&y, 0)]);
    assert_eq!(ids(&take(&a, 5)), [x.id, y.id, x.id, y.id, x.id]);
    // Released in between: rr still alternates.
    let alternating: Vec<BackendId> = (0..4).map(|_| grant(a.acquire(ROOT)).backend().id).collect();
    assert_eq!(alternating, [y.id, x.id, y.id, x.id]);

    let a = admission(SchedulerKind::Chance, 16, false);
    a.set_backends(vec![active(&x, 2), active(&y, 2)]);
    assert_eq!(ids(&take(&a, 4)), [x.id, x.id, y.id, y.id]);

    // Least utilised, not fewest in flight: y (capacity 8) takes four before x's second.
    let a = admission(SchedulerKind::LeastLoad, 16, false);
    a.set_backends(vec![active(&x, 2), active(&y, 8)]);
    assert_eq!(ids(&take(&a, 6)), [x.id, y.id, y.id, y.id, y.id, x.id]);
    let a = admission(SchedulerKind::LeastLoad, 16, false);
    a.set_backends(vec![active(&x, 4), active(&y, 4)]);
    let mut gs = take(&a, 4);
    gs.retain(|g| g.backend().id == y.id);
    assert_eq!(ids(&take(&a, 2)), [x.id, x.id], "x at 0/4 before y at 2/4");
    drop(gs);
    assert_totals(&a, 0, 0);
}

#[test]
fn unavailable_even_when_others_are_already_queued() {
    let a = admission(SchedulerKind::RoundRobin, 8, false);
    a.set_backends(vec![active(&backend("x"), 1)]);
    let g = grant(a.acquire(ROOT));
    let _waiting = ticket(a.acquire(ROOT));
    g.fail(); // x is now unusable: nothing in the cluster is usable.
    assert_eq!(outcome(&a.acquire(ROOT)), "Unavailable");
}

#[test]
fn grants_on_backends_out_of_service_do_not_block_the_ones_in_service() {
    let a = rr();
    let (x, y, k) = (backend("x"), backend("y"), backend("k"));
    a.set_backends(vec![active(&x, 1), backup(&k, 1)]);
    let hung = grant(a.acquire(ROOT));
    // The health check takes x down while its request hangs: k is idle and the only one in service.
    a.set_backends(vec![down(active(&x, 1)), backup(&k, 1)]);
    assert_eq!(a.capacity(), (Some(2), 1), "k's and the one x's request holds");
    let on_k = grant(a.acquire(ROOT));
    assert_eq!(on_k.backend().id, k.id);
    assert!(matches!(a.acquire(ROOT), Admit::Queued(_)));
    drop(hung);
    assert_eq!(a.capacity(), (Some(1), 1), "x's token is gone with its request");
    drop(on_k);
    // x is replaced by y while its request is in flight: y is idle.
    a.set_backends(vec![active(&x, 1)]);
    let draining = grant(a.acquire(ROOT));
    a.set_backends(vec![active(&y, 1)]);
    let on_y = grant(a.acquire(ROOT));
    assert_eq!(on_y.backend().id, y.id, "served by the replacement");
    drop(draining);
    assert!(!a.has_slot(x.id));
    assert_eq!(a.capacity(), (Some(1), 1));
    drop(on_y);
    assert_totals(&a, 0, 0);
}

/// One step of a walk: a request, or a change by the control plane.
#[derive(Debug, Clone)]
enum Op {
    Acquire,
    /// Return a held grant (no-op when none is held).
    Release(Index),
    /// A held grant's request fails on its backend, which turns unusable.
    Fail(Index),
    /// A waiting request gives up (no-op when none waits).
    Cancel(Index),
    FlipUsable(usize),
    /// Capacity 0 means unlimited.
    SetCapacity(usize, u32),
    /// Remove a backend (it drains) or add it back.
    TogglePresent(usize),
}

/// Steps weighted like traffic: mostly requests and returns, sometimes a change.
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        35 => Just(Op::Acquire),
        30 => any::<Index>().prop_map(Op::Release),
        4 => any::<Index>().prop_map(Op::Fail),
        10 => any::<Index>().prop_map(Op::Cancel),
        8 => (0..4usize).prop_map(Op::FlipUsable),
        8 => (0..4usize, prop_oneof![Just(0u32), 1..=3u32]).prop_map(|(i, c)| Op::SetCapacity(i, c)),
        5 => (0..4usize).prop_map(Op::TogglePresent),
    ]
}

/// The control plane's view of the backends, mirrored by the walk.
struct Model {
    backends: Vec<Arc<Backend>>,
    roles: [Role; 4],
    caps: [u32; 4],
    usable: [bool; 4],
    present: [bool; 4],
}

impl Model {
    fn specs(&self) -> Vec<SlotSpec> {
        let present = (0..4).filter(|&i| self.present[i]);
        present
            .map(|i| spec(&self.backends[i], self.roles[i], self.caps[i], self.usable[i]))
            .collect()
    }
    fn index(&self, b: &Backend) -> usize {
        self.backends.iter().position(|x| x.id == b.id).unwrap()
    }
    fn live(&self, i: usize) -> bool {
        self.present[i] && self.usable[i]
    }
    fn primary(&self) -> bool {
        (0..4).any(|i| self.live(i) && self.roles[i] != Role::Backup)
    }
    fn in_service(&self, i: usize) -> bool {
        self.live(i) && (self.roles[i] != Role::Backup) == self.primary()
    }
    /// Capacity of the backends in service, plus the tokens held on those out of service.
    fn tokens(&self, held: &[u32; 4]) -> Option<u32> {
        let cap = |i: usize| (self.caps[i] != 0).then_some(self.caps[i]);
        let caps: Option<u32> = (0..4).filter(|&i| self.in_service(i)).map(cap).sum();
        let out: u32 = (0..4).filter(|&i| !self.in_service(i)).map(|i| held[i]).sum();
        caps.map(|c| c + out)
    }
    fn room(&self, i: usize, held: &[u32; 4]) -> bool {
        self.live(i) && (self.caps[i] == 0 || held[i] < self.caps[i])
    }
    /// A token and a slot of a role in service are free.
    fn admissible(&self, held: &[u32; 4]) -> bool {
        let (used, primary) = (held.iter().sum::<u32>(), self.primary());
        self.tokens(held).is_none_or(|t| used < t)
            && (0..4).any(|i| self.room(i, held) && (self.roles[i] != Role::Backup || !primary))
    }
    /// Rules for a grant issued during the last step (counts are taken after it).
    #[track_caller]
    fn check_issued(&self, i: usize, held: &[u32; 4], step: usize) {
        assert!(self.live(i), "step {step}: granted on a backend out of service");
        let fits = self.caps[i] == 0 || held[i] <= self.caps[i];
        assert!(fits, "step {step}: over capacity");
        let active_room = (0..4).any(|j| self.roles[j] == Role::Active && self.room(j, held));
        match self.roles[i] {
            Role::Active => {}
            Role::Standby => assert!(!active_room, "step {step}: standby while an active had room"),
            Role::Backup => assert!(!self.primary(), "step {step}: backup while a primary is usable"),
        }
    }
}

fn random_walk(scheduler: SchedulerKind, enqueue: bool, ops: &[Op]) {
    const LIMIT: usize = 6;
    let a = admission(scheduler, LIMIT, enqueue);
    let mut m = Model {
        backends: (0..4).map(|i| backend(&format!("b{i}"))).collect(),
        roles: [Role::Active, Role::Active, Role::Standby, Role::Backup],
        caps: [2, 1, 2, 3],
        usable: [true; 4],
        present: [true; 4],
    };
    a.set_backends(m.specs());
    let mut held: Vec<(usize, Grant)> = Vec::new();
    let mut tickets: Vec<Ticket> = Vec::new();
    let counts = |held: &[(usize, Grant)]| {
        let mut c = [0u32; 4];
        held.iter().for_each(|(i, _)| c[*i] += 1);
        c
    };
    for (step, op) in ops.iter().enumerate() {
        let mut issued: Vec<(usize, Grant)> = Vec::new();
        match op {
            Op::Acquire => {
                let (empty, could) = (tickets.is_empty(), m.admissible(&counts(&held)));
                let refuse = !enqueue && !(0..4).any(|i| m.live(i));
                let got = a.acquire(ROOT);
                let want = match (empty && could, refuse, tickets.len() == LIMIT) {
                    (true, ..) => "Granted",
                    (_, true, _) => "Unavailable",
                    (_, _, true) => "QueueFull",
                    _ => "Queued",
                };
                assert_eq!(outcome(&got), want, "step {step}");
                match got {
                    Admit::Granted(g) => issued.push((m.index(g.backend()), g)),
                    Admit::Queued(t) => tickets.push(t),
                    Admit::Unavailable | Admit::QueueFull => {}
                }
            }
            Op::Release(x) if !held.is_empty() => drop(held.swap_remove(x.index(held.len()))),
            Op::Fail(x) if !held.is_empty() => {
                let (i, g) = held.swap_remove(x.index(held.len()));
                m.usable[i] = false;
                g.fail();
            }
            Op::Cancel(x) if !tickets.is_empty() => drop(tickets.remove(x.index(tickets.len()))),
            Op::Release(_) | Op::Fail(_) | Op::Cancel(_) => {}
            // The control plane: flip usable, change a capacity, remove or add.
            Op::FlipUsable(i) | Op::SetCapacity(i, _) | Op::TogglePresent(i) => {
                match *op {
                    Op::FlipUsable(_) => m.usable[*i] = !m.usable[*i],
                    Op::SetCapacity(_, capacity) => m.caps[*i] = capacity,
                    _ => m.present[*i] = !m.present[*i],
                }
                a.set_backends(m.specs());
            }
        }
        // Collect what the step handed to the queue: only ever its head (FIFO).
        let mut waiting = Vec::with_capacity(tickets.len());
        for mut t in tickets.drain(..) {
            match served(&mut t) {
                Some(g) => {
                    assert!(waiting.is_empty(), "step {step}: a waiter overtook an older one");
                    issued.push((m.index(g.backend()), g));
                }
                None => waiting.push(t),
            }
        }
        tickets = waiting;
        let newly: Vec<usize> = issued.iter().map(|(i, _)| *i).collect();
        held.extend(issued);
        let c = counts(&held);
        newly.iter().for_each(|&i| m.check_issued(i, &c, step));
        for (i, b) in m.backends.iter().enumerate() {
            let want = (u64::from(c[i]), m.present[i] || c[i] > 0);
            assert_eq!((in_flight(b), a.has_slot(b.id)), want, "step {step}: b{i}");
        }
        for s in &a.state.lock().slots {
            let i = m.index(&s.spec.backend);
            let (got, want) = ((s.in_flight, s.draining), (c[i], !m.present[i]));
            assert_eq!(got, want, "step {step}: slot of b{i}");
        }
        assert_totals(&a, held.len() as u64, tickets.len() as u64);
        assert_eq!(a.capacity().0, m.tokens(&c), "step {step}: root tokens");
        let idle = !tickets.is_empty() && m.admissible(&c);
        assert!(!idle, "step {step}: idle capacity while requests wait");
    }
    drop(held);
    drop(tickets);
    assert_totals(&a, 0, 0);
    assert!(m.backends.iter().all(|b| in_flight(b) == 0));
    a.set_backends(vec![]);
    assert!(m.backends.iter().all(|b| !a.has_slot(b.id)));
    assert_eq!(a.capacity(), (Some(0), 0));
}

proptest! {
    // 3 schedulers × 16 walks of up to 2,000 steps: about the 30,000 steps of the seeded
    // walks these replace, with shrinking.
    #![proptest_config(proptest_runs(16))]

    #[test]
    fn random_walks_agree_with_the_model(ops in prop::collection::vec(op(), 1..2000)) {
        random_walk(SchedulerKind::RoundRobin, false, &ops);
        random_walk(SchedulerKind::Chance, true, &ops);
        random_walk(SchedulerKind::LeastLoad, false, &ops);
    }
}

#[test]
fn pinned_requests_take_one_given_backend_even_when_disabled_but_never_when_offline() {
    let a = rr();
    let (x, canary, down) = (backend("x"), backend("canary"), backend("down"));
    let disabled = SlotSpec {
        usable: false,
        healthy: true,
        ..spec(&canary, Role::Active, 1, false)
    };
    a.set_backends(vec![active(&x, 1), disabled, spec(&down, Role::Active, 1, false)]);
    assert_eq!(
        a.capacity(),
        (Some(1), 0),
        "the canary's capacity is not the cluster's"
    );
    let g = a
        .acquire_pinned(canary.id, true)
        .expect("a disabled but healthy backend");
    assert_eq!((g.backend().id, in_flight(&canary)), (canary.id, 1));
    assert_eq!(a.capacity(), (Some(2), 1), "its request is counted on top");
    assert_eq!(a.acquire_pinned(canary.id, true).err(), Some(PinRefused::Full));
    assert_eq!(
        a.acquire_pinned(canary.id, false).err(),
        Some(PinRefused::Unavailable)
    );
    assert_eq!(
        a.acquire_pinned(down.id, true).err(),
        Some(PinRefused::Unavailable)
    );
    let balanced = grant(a.acquire(ROOT));
    assert_eq!(
        balanced.backend().id,
        x.id,
        "unpinned traffic never reaches the canary"
    );
    drop(g);
    drop(balanced);
    assert_eq!(a.capacity(), (Some(1), 0));
    assert_totals(&a, 0, 0);
}
