//! Where a backend's health monitor runs: on its backend actor's arbiter.

use std::time::Duration;

use super::*;
use crate::cluster::admission::AdmissionSettings;
use crate::cluster::health_monitor::WhichThread;
use crate::config::{parse_backend_url, HealthMode, SchedulerKind};

/// Takes the backends' reports and drops them.
struct Sink;

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<BackendChanged> for Sink {
    type Result = ();
    fn handle(&mut self, _: BackendChanged, _: &mut Context<Self>) {}
}

fn health() -> HealthConfig {
    HealthConfig {
        mode: HealthMode::Paranoid,
        interval: Duration::from_secs(3600),
        timeout: Duration::from_millis(100),
        rise: 1,
        fall: 1,
        path: "/".to_owned(),
        host: None,
        expect: Vec::new(),
        initial: InitialHealth::Online,
        fcgi_script_filename: None,
    }
}

/// With two arbiters handed out round-robin, every backend actor and its monitor would land on
/// different ones if the monitor took the next arbiter in turn; it must share its backend's.
#[actix_rt::test]
async fn the_health_monitor_runs_on_its_backends_arbiter() {
    let workers: Vec<actix::Arbiter> = (0..2).map(|_| actix::Arbiter::new()).collect();
    let watch = Watch {
        health: Some(health()),
        sticky_offline: false,
        passive_recovery: Duration::from_secs(1),
        admission: Admission::new(AdmissionSettings {
            scheduler: SchedulerKind::RoundRobin,
            queue_limit: 0,
            enqueue_on_unavailable: false,
        }),
        arbiters: Arbiters::new(workers.iter().map(actix::Arbiter::handle).collect()),
    };
    let cluster = Sink.start().recipient();
    let mut threads = std::collections::HashSet::new();
    for i in 0..4 {
        let url = parse_backend_url("http://127.0.0.1:9").expect("a URL");
        let config = BackendConfig {
            name: format!("b{i}"),
            url: url.clone(),
            capacity: 1,
            role: Role::Active,
            enabled: true,
            fastcgi: None,
            health: None,
            terminate_protection: false,
            tls: None,
            discovered_by: None,
        };
        let backend = Backend::new("c", &config.name, url, None, None);
        let status = BackendActor::initial_status(&backend, &config, watch.health.as_ref());
        let actor = BackendActor::start(backend, cluster.clone(), status, watch.clone());
        let (thread, monitor) = actor.send(Placement).await.expect("the backend actor answers");
        let monitor = monitor.expect("a monitor, as the cluster has health checks");
        let monitor_thread = monitor.send(WhichThread).await.expect("the monitor answers");
        assert_eq!(
            monitor_thread, thread,
            "backend b{i}: the monitor shares its backend's thread"
        );
        assert_ne!(thread, std::thread::current().id(), "on a worker arbiter");
        threads.insert(thread);
        actor.do_send(StopBackend);
    }
    assert_eq!(
        threads.len(),
        2,
        "the backends themselves are spread over both arbiters"
    );
    for worker in workers {
        worker.stop();
    }
}
