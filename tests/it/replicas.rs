//! Replicas sharing runtime state through etcd (`cluster_state.etcd`): a real etcd (Debian's
//! `etcd-server`) and three `director` processes on loopback, one prefix, against real HTTP
//! test backends.
//!
//! One scenario, in order (each phase starts from the state the previous one left):
//! 1. a backend disabled through replica A stops receiving traffic from B and C within 1 s;
//! 2. a backend added through B serves traffic from all three (and goes again, removed
//!    through C); changes made through A and B at the same moment both survive; a cache
//!    purge through A empties the caches of B and C within 1 s;
//! 3. capacity 6 split over three replicas (2 each): under load through all three the backend
//!    never sees more than 6 requests at once;
//! 4. replica C killed: once its lease expires A and B re-split to 3 + 3;
//! 5. etcd stopped: A and B keep serving and report it in `/api/v1/status` and on the
//!    dashboard; a change made through A meanwhile applies on A;
//! 6. etcd back: both reconnect, and A's change reaches B (pushed on the resynchronisation);
//! 7. B stopped gracefully (SIGTERM) revokes its lease: A takes the whole capacity at once.
//!
//! Needs etcd: ignored (with the reason) when it is not installed, unless
//! `DIRECTOR_REQUIRE_ALL` is set, which makes the build fail instead.

#[cfg(has_etcd)]
mod with_etcd {
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use serde_json::{json, Value};

    use crate::support::backend::TestBackend;
    use crate::support::binary::Binary;
    use crate::support::{free_port, get, request, temp_dir, wait_until, Target};

    /// How soon a change made through one replica must be in force on the others.
    const PROPAGATION: Duration = Duration::from_secs(1);

    /// A single-member etcd on loopback; killed when dropped.
    struct Etcd {
        child: Option<Child>,
        data: PathBuf,
        client: u16,
        peer: u16,
    }

    impl Etcd {
        fn start(data: &Path) -> Etcd {
            let mut etcd = Etcd {
                child: None,
                data: data.to_owned(),
                client: free_port(),
                peer: free_port(),
            };
            etcd.spawn();
            etcd
        }

        /// Starts the process (again) on the same ports and data directory.
        fn spawn(&mut self) {
            let client = format!("http://127.0.0.1:{}", self.client);
            let peer = format!("http://127.0.0.1:{}", self.peer);
            let child = Command::new(env!("DIRECTOR_TEST_ETCD"))
                .arg("--name=test")
                .arg(format!("--data-dir={}", self.data.display()))
                .arg(format!("--listen-client-urls={client}"))
                .arg(format!("--advertise-client-urls={client}"))
                .arg(format!("--listen-peer-urls={peer}"))
                .arg(format!("--initial-advertise-peer-urls={peer}"))
                .arg(format!("--initial-cluster=test={peer}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start etcd");
            self.child = Some(child);
        }

        fn url(&self) -> String {
            format!("http://127.0.0.1:{}", self.client)
        }

        async fn ready(&self) {
            let target = Target::Tcp(SocketAddr::from(([127, 0, 0, 1], self.client)));
            wait_until("etcd to answer", async || {
                let connected =
                    tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], self.client)))
                        .await
                        .is_ok();
                connected && get(&target, "/health").await.text().contains("true")
            })
            .await;
        }

        fn stop(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    impl Drop for Etcd {
        fn drop(&mut self) {
            self.stop();
        }
    }

    /// One director process.
    struct Replica {
        name: &'static str,
        binary: Binary,
        proxy: Target,
        admin: SocketAddr,
    }

    impl Replica {
        async fn start(name: &'static str, dir: &Path, etcd: &Etcd, backends: &[&TestBackend]) -> Replica {
            let mut yaml = format!(
                "proxy: {{ listen: [\"127.0.0.1:0\"], workers: 2 }}\n\
                 admin: {{ listen: \"127.0.0.1:0\" }}\n\
                 state_file: \"{state}\"\n\
                 cluster_state:\n  etcd: {{ endpoints: [\"{etcd}\"], prefix: /director/test, \
                 lease_ttl: 2s, dial_timeout: 500ms, replica_id: {name} }}\n\
                 routes:\n  - {{ path_prefix: \"/cacheable\", cluster: k }}\n  - {{ path_prefix: \"/\", cluster: c }}\n\
                 clusters:\n  k:\n    cache: {{ enabled: true }}\n    backends: [{{ name: a, url: \"{a}\" }}]\n\
                 \x20 c:\n    scheduler: rr\n    queue_limit: 100\n    queue_timeout: 30s\n    backends:\n",
                state = dir.join(format!("{name}-state.json")).display(),
                etcd = etcd.url(),
                a = backends[0].url(),
            );
            for b in backends {
                yaml.push_str(&format!(
                    "      - {{ name: {}, url: \"{}\", capacity: 6 }}\n",
                    b.name(),
                    b.url()
                ));
            }
            let config = dir.join(format!("{name}.yaml"));
            std::fs::write(&config, yaml).expect("write config");
            let binary = Binary::with_config(&config).await;
            let proxy = Target::Tcp(binary.listening("proxy").await);
            let admin = binary.listening("admin").await;
            Replica {
                name,
                binary,
                proxy,
                admin,
            }
        }

        async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
            let host = self.admin.to_string();
            let mut headers = vec![("host", host.as_str())];
            if body.is_some() {
                headers.push(("content-type", "application/json"));
            }
            let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
            let reply = request(&Target::Tcp(self.admin), method, path, &headers, body).await;
            let json = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            (reply.status, json)
        }

        async fn cluster(&self) -> Value {
            let (status, body) = self.api("GET", "/api/v1/clusters/c", None).await;
            assert_eq!(status, 200, "{}: {body}", self.name);
            body
        }

        /// Backend `name` as this replica has it (`None`: it has none of that name).
        async fn backend(&self, name: &str) -> Option<Value> {
            let cluster = self.cluster().await;
            cluster["backends"]
                .as_array()?
                .iter()
                .find(|b| b["name"] == name && b["draining"] != true)
                .cloned()
        }

        async fn shared_status(&self) -> Value {
            let (status, body) = self.api("GET", "/api/v1/status", None).await;
            assert_eq!(status, 200);
            body["cluster_state"].clone()
        }

        /// Which backend answered `GET /` through this replica.
        async fn served_by(&self) -> String {
            let reply = get(&self.proxy, "/").await;
            assert_eq!(reply.status, 200, "{}: {}", self.name, reply.text());
            reply.text()
        }
    }

    /// Waits until `check` holds on every one of `replicas`, and asserts it took at most
    /// [`PROPAGATION`] from `since`.
    async fn everywhere_within_a_second(
        what: &str,
        since: Instant,
        replicas: &[&Replica],
        check: impl AsyncFn(&Replica) -> bool,
    ) {
        for replica in replicas {
            wait_until(format!("{what} on {}", replica.name), async || {
                check(replica).await
            })
            .await;
        }
        let took = since.elapsed();
        assert!(
            took <= PROPAGATION,
            "{what}: took {took:?} to reach every replica"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_replicas_share_state_and_capacity_through_etcd() {
        let dir = temp_dir("replicas");
        let mut etcd = Etcd::start(&dir.path().join("etcd"));
        etcd.ready().await;
        let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
        let ra = Replica::start("ra", dir.path(), &etcd, &[&a, &b]).await;
        let rb = Replica::start("rb", dir.path(), &etcd, &[&a, &b]).await;
        let rc = Replica::start("rc", dir.path(), &etcd, &[&a, &b]).await;
        let all = [&ra, &rb, &rc];
        for r in all {
            wait_until(format!("{} to see three replicas", r.name), async || {
                let s = r.shared_status().await;
                (s["connected"] == true && s["replicas"].as_array().map(Vec::len) == Some(3))
                    .then_some(())
                    .ok_or(s)
            })
            .await;
        }

        // 1. Disabled through A: B and C stop sending to it within a second.
        let (status, body) = ra
            .api(
                "PATCH",
                "/api/v1/clusters/c/backends/b",
                Some(json!({ "enabled": false })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let since = Instant::now();
        everywhere_within_a_second("b disabled", since, &[&rb, &rc], async |r| {
            r.backend("b").await.is_some_and(|b| b["enabled"] == false)
        })
        .await;
        let hits = b.hits();
        for r in [&rb, &rc] {
            for _ in 0..6 {
                assert_eq!(r.served_by().await, "a", "{} still sends to b", r.name);
            }
        }
        assert_eq!(b.hits(), hits, "b got traffic after it was disabled");

        // 2. Added through B: it serves traffic from all three.
        let n = TestBackend::start("n").await;
        let (status, body) = rb
            .api(
                "POST",
                "/api/v1/clusters/c/backends",
                Some(json!({ "name": "n", "url": n.url(), "capacity": 6 })),
            )
            .await;
        assert!(status == 200 || status == 201, "{status} {body}");
        let since = Instant::now();
        everywhere_within_a_second("n added", since, &[&ra, &rc], async |r| {
            r.backend("n").await.is_some()
        })
        .await;
        for r in all {
            let before = n.hits();
            let mut seen = Vec::new();
            for _ in 0..4 {
                seen.push(r.served_by().await);
            }
            assert!(n.hits() > before, "{} never sent to n: {seen:?}", r.name);
        }
        // Removed through C, gone everywhere.
        let (status, body) = rc.api("DELETE", "/api/v1/clusters/c/backends/n", None).await;
        assert!(status < 300, "{status} {body}");
        let since = Instant::now();
        everywhere_within_a_second("n removed", since, &[&ra, &rb], async |r| {
            r.backend("n").await.is_none()
        })
        .await;

        // Changes made through A and B at the same moment both survive: the one whose
        // compare-and-swap lost merges its change into the newer state and writes again.
        let settings = async |r: &Replica| {
            let (status, body) = r.api("GET", "/api/v1/clusters/k", None).await;
            assert_eq!(status, 200, "{body}");
            (
                body["settings"]["queue_limit"].clone(),
                body["settings"]["retry_after"].clone(),
            )
        };
        let (from_a, from_b) = tokio::join!(
            ra.api("PATCH", "/api/v1/clusters/k", Some(json!({ "queue_limit": 7 }))),
            rb.api("PATCH", "/api/v1/clusters/k", Some(json!({ "retry_after": 9 }))),
        );
        assert_eq!((from_a.0, from_b.0), (200, 200), "{from_a:?} {from_b:?}");
        for r in all {
            wait_until(format!("both concurrent changes on {}", r.name), async || {
                let seen = settings(r).await;
                (seen == (json!(7), json!(9)))
                    .then_some(())
                    .ok_or(format!("{seen:?}"))
            })
            .await;
        }

        // A cache purge through A empties the caches of B and C.
        let objects = async |r: &Replica| {
            let (status, body) = r.api("GET", "/api/v1/clusters/k/cache", None).await;
            assert_eq!(status, 200, "{body}");
            body["objects"].as_u64().unwrap_or(0)
        };
        for r in all {
            assert_eq!(get(&r.proxy, "/cacheable").await.status, 200);
            wait_until(format!("an object in {}'s cache", r.name), async || {
                objects(r).await == 1
            })
            .await;
        }
        let (status, body) = ra
            .api(
                "POST",
                "/api/v1/clusters/k/cache/purge",
                Some(json!({ "all": true })),
            )
            .await;
        assert_eq!((status, &body["shared"]), (200, &json!(true)), "{body}");
        let since = Instant::now();
        everywhere_within_a_second("the purge", since, &[&rb, &rc], async |r| objects(r).await == 0).await;

        // 3. Capacity 6 over three replicas: 2 each, and never more than 6 at the backend.
        for r in all {
            wait_until(format!("{} to take its share of 2", r.name), async || {
                let c = r.cluster().await;
                (c["capacity"] == 2).then_some(()).ok_or(c["capacity"].clone())
            })
            .await;
        }
        let load = |replicas: Vec<&Replica>, each: usize| {
            let targets: Vec<Target> = replicas.iter().map(|r| r.proxy.clone()).collect();
            let mut tasks = Vec::new();
            for target in targets {
                for _ in 0..each {
                    let target = target.clone();
                    tasks.push(tokio::spawn(async move { get(&target, "/hold").await.status }));
                }
            }
            tasks
        };
        let queued = async |replicas: &[&Replica]| {
            let mut total = 0;
            for r in replicas {
                total += r.cluster().await["stats"]["queued"]["current"]
                    .as_u64()
                    .unwrap_or(0);
            }
            total
        };
        let tasks = load(all.to_vec(), 5);
        wait_until("6 at the backend and 9 queued", async || {
            let (current, waiting) = (a.current(), queued(&all).await);
            (current == 6 && waiting == 9)
                .then_some(())
                .ok_or(format!("{current} at a, {waiting} queued"))
        })
        .await;
        for r in all {
            assert_eq!(
                r.cluster().await["in_use"],
                2,
                "{} uses more than its share",
                r.name
            );
        }
        a.release_holds();
        for task in tasks {
            assert_eq!(task.await.expect("request"), 200);
        }
        assert_eq!(a.peak(), 6, "the backend saw more than its capacity at once");

        // 4. C goes away: after its lease expires, A and B split 3 + 3.
        drop(rc);
        let replicas = [&ra, &rb];
        for r in replicas {
            wait_until(format!("{} to take its share of 3", r.name), async || {
                let c = r.cluster().await;
                (c["capacity"] == 3).then_some(()).ok_or(c["capacity"].clone())
            })
            .await;
            let s = r.shared_status().await;
            assert_eq!(s["replicas"], json!(["ra", "rb"]), "{s}");
        }
        a.reset_holds();
        let tasks = load(replicas.to_vec(), 5);
        wait_until("6 at the backend and 4 queued", async || {
            let (current, waiting) = (a.current(), queued(&replicas).await);
            (current == 6 && waiting == 4)
                .then_some(())
                .ok_or(format!("{current} at a, {waiting} queued"))
        })
        .await;
        for r in replicas {
            assert_eq!(r.cluster().await["in_use"], 3, "{}", r.name);
        }
        a.release_holds();
        for task in tasks {
            assert_eq!(task.await.expect("request"), 200);
        }
        assert_eq!(a.peak(), 6);

        // 5. etcd stops: both keep serving, and say so.
        etcd.stop();
        for r in replicas {
            wait_until(format!("{} to report etcd unreachable", r.name), async || {
                let s = r.shared_status().await;
                (s["connected"] == false && s["last_error"].is_string())
                    .then_some(())
                    .ok_or(s)
            })
            .await;
            let s = r.shared_status().await;
            assert_eq!(
                s["replicas"].as_array().map(Vec::len),
                Some(2),
                "the last replica count stays: {s}"
            );
            assert_eq!(r.cluster().await["capacity"], 3, "the last split stays");
            assert_eq!(r.served_by().await, "a");
            let page = request(
                &Target::Tcp(r.admin),
                "GET",
                "/",
                &[("host", &r.admin.to_string())],
                Bytes::new(),
            )
            .await;
            assert!(
                page.text().contains("shared state:") && page.text().contains("unreachable"),
                "the dashboard says nothing of etcd being away"
            );
        }
        // A change made meanwhile applies here at once, and is shared once etcd is back.
        let (status, body) = ra
            .api(
                "PATCH",
                "/api/v1/clusters/c/backends/b",
                Some(json!({ "enabled": true })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(ra.backend("b").await.expect("b")["enabled"], true);
        assert_eq!(rb.backend("b").await.expect("b")["enabled"], false);

        // 6. etcd is back: both resynchronise and B gets A's change.
        etcd.spawn();
        etcd.ready().await;
        for r in replicas {
            wait_until(format!("{} to reconnect", r.name), async || {
                let s = r.shared_status().await;
                (s["connected"] == true && s["replicas"].as_array().map(Vec::len) == Some(2))
                    .then_some(())
                    .ok_or(s)
            })
            .await;
        }
        wait_until("A's change made while etcd was away to reach B", async || {
            rb.backend("b").await.is_some_and(|b| b["enabled"] == true)
        })
        .await;
        let hits = b.hits();
        for _ in 0..4 {
            rb.served_by().await;
        }
        assert!(b.hits() > hits, "B does not send to b again");

        // B stopping gracefully revokes its lease: A takes the whole capacity at once, not
        // after lease_ttl (2 s). Backends a and b, 6 each: 3 + 3 here while B is there.
        assert_eq!(ra.cluster().await["capacity"], 6);
        rb.binary.signal("-TERM");
        let since = Instant::now();
        everywhere_within_a_second("B's share back to A", since, &[&ra], async |r| {
            r.cluster().await["capacity"] == 12
        })
        .await;
        drop(ra.binary);
        drop(rb.binary);
    }
}

#[cfg(not(has_etcd))]
#[test]
#[ignore = "etcd not installed (apt-get install etcd-server)"]
fn three_replicas_share_state_and_capacity_through_etcd() {}
