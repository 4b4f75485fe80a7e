//! HAProxy compatibility for HAProxy tools: the stats URI (CSV and HTML) over HTTP Basic on the
//! proxy listener and beside the token on the admin listener, the monitor URI and its
//! `monitor_fail`, `rate_max` as a real maximum, and the transitional `UP 2/3` / `DOWN 1/2`
//! states, all read through the CSV the way a scraper reads it.

use crate::support;

use std::collections::HashMap;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
use base64::Engine;
use support::backend::TestBackend;
use support::{admin_raw, get, request, start, wait_until, Director, Reply, Target};

/// HAProxy 2.5's `show stat` columns as its management guide documents them (section 9.1).
const HAPROXY_COLUMNS: &str = "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,\
    eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,\
    lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,\
    hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,\
    comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,\
    agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,\
    agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,\
    wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,\
    ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_check_status";

const USER: &str = "scraper";
const PASSWORD: &str = "s3cret pass";

/// An Argon2id hash of `password` with cheap parameters (the PHC string carries them, so the
/// verification is quick in a debug build too).
fn hash(password: &str) -> String {
    let params = Params::new(256, 1, 1, None).expect("parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes())
        .expect("hash")
        .to_string()
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// Backend `a` at `url` with `settings` (inline YAML, may be empty).
fn backend_a(url: &str, settings: &str) -> String {
    format!("{{ name: a, url: \"{url}\"{settings} }}")
}

/// One cluster `c` over `backends` (inline YAML maps) with `cluster` settings, the
/// `haproxy_compat` section `compat` (YAML lines) and `extra` top-level YAML.
fn config(backends: &[String], cluster: &str, compat: &str, extra: &str) -> String {
    let mut yaml = String::from("proxy: { listen: \"127.0.0.1:0\", workers: 2 }\n");
    yaml.push_str(extra);
    yaml.push_str("routes: [{ cluster: c }]\nclusters:\n  c:\n");
    for line in cluster.lines().filter(|l| !l.trim().is_empty()) {
        yaml.push_str(&format!("    {}\n", line.trim()));
    }
    yaml.push_str("    backends:\n");
    for backend in backends {
        yaml.push_str(&format!("      - {backend}\n"));
    }
    yaml.push_str("haproxy_compat:\n");
    for line in compat.lines().filter(|l| !l.trim().is_empty()) {
        yaml.push_str(&format!("  {}\n", line.trim()));
    }
    yaml
}

/// The stats users line for `config`.
fn users() -> String {
    format!(
        "users: [{{ user: {USER}, password_hash: \"{}\" }}]",
        hash(PASSWORD)
    )
}

async fn proxy_get(d: &Director, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(&d.target(), "GET", path, headers, bytes::Bytes::new()).await
}

/// The CSV's rows by `pxname/svname`, each a column -> value map, after checking the format
/// strictly: the header is `# ` and exactly HAProxy's columns, every line has as many fields
/// and ends with `,` and `\n`, and the body ends with a newline.
fn parse_csv(text: &str) -> HashMap<String, HashMap<String, String>> {
    assert!(text.ends_with('\n'), "the CSV ends with a newline");
    assert!(!text.contains('\r'), "LF line endings, as HAProxy's");
    let mut lines = text.lines();
    let header = lines.next().expect("a header line");
    let names = header
        .strip_prefix("# ")
        .and_then(|h| h.strip_suffix(','))
        .unwrap_or_else(|| panic!("header is `# ...,`: {header}"));
    let expected: Vec<&str> = HAPROXY_COLUMNS.split(',').map(str::trim).collect();
    let names: Vec<&str> = names.split(',').collect();
    assert_eq!(names, expected, "the columns are HAProxy 2.5's, in order");
    let mut rows = HashMap::new();
    for line in lines {
        let fields: Vec<&str> = line
            .strip_suffix(',')
            .unwrap_or_else(|| panic!("no trailing comma: {line}"))
            .split(',')
            .collect();
        assert_eq!(fields.len(), names.len(), "field count of {line}");
        let row: HashMap<String, String> = names
            .iter()
            .zip(&fields)
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        for numeric in [
            "qcur", "scur", "smax", "stot", "rate", "rate_max", "req_tot", "type", "iid", "sid",
        ] {
            let v = &row[numeric];
            assert!(
                v.is_empty() || v.parse::<u64>().is_ok(),
                "{numeric}={v} in {line}"
            );
        }
        rows.insert(format!("{}/{}", fields[0], fields[1]), row);
    }
    rows
}

/// The proxy listener serves the stats URI over HTTP Basic (the CSV a scraper reads, the
/// HTML page) and the monitor URI without credentials; everything else is proxied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_over_basic_auth_on_the_proxy_listener() {
    let a = TestBackend::start("a").await;
    let compat = format!("monitor_uri: /healthz\nlisteners: [proxy]\n{}", users());
    let d = start(&config(&[backend_a(&a.url(), "")], "", &compat, "")).await;
    for _ in 0..3 {
        assert_eq!(get(&d.target(), "/page").await.status, 200);
    }
    let auth = basic(USER, PASSWORD);

    let reply = proxy_get(&d, "/haproxy?stats;csv", &[("authorization", &auth)]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("text/plain"));
    assert_eq!(reply.header("cache-control"), Some("no-cache"));
    let rows = parse_csv(&reply.text());
    assert_eq!(rows["c/a"]["stot"], "3");
    assert_eq!(rows["c/a"]["type"], "2");
    assert_eq!(rows["c/a"]["status"], "no check");
    assert_eq!(rows["c/BACKEND"]["hrsp_2xx"], "3");
    assert_eq!(rows["director/FRONTEND"]["status"], "OPEN");
    assert_eq!(a.hits(), 3, "the stats request was not proxied");

    // `;norefresh` and friends after the URI; the HTML page without `;csv`.
    let reply = proxy_get(&d, "/haproxy?stats;csv;norefresh", &[("authorization", &auth)]).await;
    assert_eq!(reply.status, 200);
    let html = proxy_get(&d, "/haproxy?stats", &[("authorization", &auth)]).await;
    assert_eq!(html.status, 200);
    assert_eq!(html.header("content-type"), Some("text/html"));
    assert!(html.text().contains("<table"));

    // Missing, wrong and unknown credentials: HAProxy's 401 and challenge.
    let challenge = Some("Basic realm=\"HAProxy Statistics\"");
    for auth in [
        None,
        Some(basic(USER, "wrong")),
        Some(basic("nobody", PASSWORD)),
        Some("Basic ???".into()),
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let reply = proxy_get(&d, "/haproxy?stats;csv", &headers).await;
        assert_eq!(reply.status, 401, "{auth:?}");
        assert_eq!(reply.header("www-authenticate"), challenge, "{auth:?}");
        assert!(!reply.text().contains("pxname"), "no stats without credentials");
    }

    // The monitor URI needs no credentials; other paths are proxied as before.
    let monitor = proxy_get(&d, "/healthz", &[]).await;
    assert_eq!((monitor.status, monitor.text().as_str()), (200, "ok\n"));
    assert_eq!(get(&d.target(), "/haproxy").await.status, 200);
    assert_eq!(a.hits(), 4, "/haproxy is not the stats URI: proxied");
    d.stop().await;
}

/// On the admin listener, a configured stats URI takes the stats users' Basic credentials
/// beside the token; the historical `/haproxy?stats;csv` and `/haproxy/monitor` still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_listener_takes_basic_credentials_beside_the_token() {
    let a = TestBackend::start("a").await;
    let token = "0123456789abcdef0123";
    let admin = format!("admin: {{ listen: \"127.0.0.1:0\", token: \"{token}\" }}\n");
    let compat = format!("stats_uri: /stats\nrealm: Director stats\n{}", users());
    let d = start(&config(&[backend_a(&a.url(), "")], "", &compat, &admin)).await;
    let auth = basic(USER, PASSWORD);

    let reply = admin_raw(&d, "GET", "/stats;csv", None, None, &[("authorization", &auth)]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("text/plain"));
    parse_csv(&reply.text());
    let reply = admin_raw(&d, "GET", "/stats;csv", None, Some(token), &[]).await;
    assert_eq!(reply.status, 200, "the token still opens it");
    let reply = admin_raw(
        &d,
        "GET",
        "/haproxy?stats;csv",
        None,
        None,
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(reply.status, 200, "the historical URI takes Basic too");

    let reply = admin_raw(&d, "GET", "/stats;csv", None, None, &[]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Basic realm=\"Director stats\"")
    );
    let wrong = basic(USER, "nope");
    let reply = admin_raw(&d, "GET", "/stats", None, None, &[("authorization", &wrong)]).await;
    assert_eq!(reply.status, 401);
    // Basic opens HAProxy's URIs only, not the API.
    let reply = admin_raw(
        &d,
        "GET",
        "/api/v1/clusters",
        None,
        None,
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(reply.status, 401);

    let monitor = admin_raw(&d, "GET", "/haproxy/monitor", None, Some(token), &[]).await;
    assert_eq!(monitor.status, 200);
    // The proxy listener does not serve them: not listed in `listeners`.
    let proxied = proxy_get(&d, "/stats;csv", &[("authorization", &auth)]).await;
    assert!(!proxied.text().contains("pxname"));
    assert_eq!(a.hits(), 1);
    d.stop().await;
}

/// The monitor URI answers 200 while director runs, also with no backend in service; with
/// `monitor_fail: no_backend` it answers 503 then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_is_200_without_backends_unless_monitor_fail_says_so() {
    let a = TestBackend::start("a").await;
    let disabled = [backend_a(&a.url(), ", enabled: false")];
    let admin = "admin: { listen: \"127.0.0.1:0\" }\n";
    for (fail, expected) in [
        ("", 200),
        ("monitor_fail: never", 200),
        ("monitor_fail: no_backend", 503),
    ] {
        let compat = format!("listeners: [admin, proxy]\n{fail}\n{}", users());
        let d = start(&config(&disabled, "", &compat, admin)).await;
        assert_eq!(get(&d.target(), "/").await.status, 503, "no backend in service");
        let on_proxy = proxy_get(&d, "/haproxy/monitor", &[]).await;
        assert_eq!(on_proxy.status, expected, "proxy listener, `{fail}`");
        let on_admin = admin_raw(&d, "GET", "/haproxy/monitor", None, None, &[]).await;
        assert_eq!(on_admin.status, expected, "admin listener, `{fail}`");
        d.stop().await;
    }
    // With a backend in service, `no_backend` passes.
    let compat = format!("listeners: [proxy]\nmonitor_fail: no_backend\n{}", users());
    let d = start(&config(&[backend_a(&a.url(), "")], "", &compat, "")).await;
    assert_eq!(proxy_get(&d, "/haproxy/monitor", &[]).await.status, 200);
    d.stop().await;
}

/// The CSV rows of `d`'s proxy listener.
async fn scrape(target: &Target) -> HashMap<String, HashMap<String, String>> {
    let auth = basic(USER, PASSWORD);
    let reply = request(
        target,
        "GET",
        "/haproxy?stats;csv",
        &[("authorization", &auth)],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, 200);
    parse_csv(&reply.text())
}

/// `rate_max` and `req_rate_max` keep the highest per-second rate: after a burst and a quiet
/// second, the rate is back to 0 and the maxima stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_max_is_the_highest_rate_since_start() {
    let a = TestBackend::start("a").await;
    let compat = format!("listeners: [proxy]\n{}", users());
    let d = start(&config(&[backend_a(&a.url(), "")], "", &compat, "")).await;
    let target = d.target();
    // Rates are differences between the collector's samples: let it see the backend first.
    wait_until("a first sample", async || {
        let rows = scrape(&target).await;
        let rate = rows["c/a"]["rate"].clone();
        if rate.is_empty() {
            Err("no rate yet".to_owned())
        } else {
            Ok(())
        }
    })
    .await;
    let burst: Vec<_> = (0..40)
        .map(|_| {
            let target = target.clone();
            tokio::spawn(async move { get(&target, "/").await.status })
        })
        .collect();
    for request in burst {
        assert_eq!(request.await.expect("request"), 200);
    }
    let peak = wait_until("the burst's rate is sampled", async || {
        let rows = scrape(&target).await;
        let peak: u64 = rows["c/a"]["rate_max"].parse().unwrap_or(0);
        if peak >= 10 {
            Ok(peak)
        } else {
            Err(format!("rate_max {peak}"))
        }
    })
    .await;
    let rows = wait_until("a quiet second", async || {
        let rows = scrape(&target).await;
        match rows["c/a"]["rate"].as_str() {
            "0" => Ok(rows),
            rate => Err(format!("rate {rate}")),
        }
    })
    .await;
    assert_eq!(
        rows["c/a"]["rate_max"],
        peak.to_string(),
        "the server's maximum stays"
    );
    let backend_max: u64 = rows["c/BACKEND"]["rate_max"].parse().expect("number");
    assert!(backend_max >= peak, "{backend_max} >= {peak}");
    let front = &rows["director/FRONTEND"];
    assert_eq!(front["req_rate"], "0");
    let req_rate_max: u64 = front["req_rate_max"].parse().expect("number");
    assert!(req_rate_max >= peak, "{req_rate_max} >= {peak}");
    d.stop().await;
}

/// While a backend fails probes toward `fall`, the CSV shows HAProxy's `UP 2/3` then `UP 1/3`
/// (failures it can still take), then `DOWN`; recovering toward `rise`, `DOWN 1/2`, then `UP`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitional_states_follow_the_rise_and_fall_progress() {
    let a = TestBackend::start("a").await;
    let compat = format!("listeners: [proxy]\n{}", users());
    let health = "health: { interval: 250ms, timeout: 200ms, rise: 2, fall: 3, path: /health }";
    let d = start(&config(&[backend_a(&a.url(), "")], health, &compat, "")).await;
    let target = d.target();
    let status_is = |want: &'static str| {
        let target = target.clone();
        async move {
            wait_until(format!("status {want}"), async || {
                let rows = scrape(&target).await;
                let status = rows["c/a"]["status"].clone();
                if status == want {
                    Ok(())
                } else {
                    Err(status)
                }
            })
            .await
        }
    };
    status_is("UP").await;
    a.set_health(500);
    status_is("UP 2/3").await;
    status_is("UP 1/3").await;
    status_is("DOWN").await;
    a.set_health(200);
    status_is("DOWN 1/2").await;
    status_is("UP").await;
    d.stop().await;
}

/// Prometheus' haproxy_exporter, started against a scrape URI; ended when dropped.
struct Exporter {
    child: std::process::Child,
    metrics: Target,
}

impl Exporter {
    #[cfg(has_haproxy_exporter)]
    fn start(scrape_uri: &str) -> Exporter {
        let port = support::free_port();
        let child = std::process::Command::new(env!("DIRECTOR_TEST_HAPROXY_EXPORTER"))
            .arg(format!("--haproxy.scrape-uri={scrape_uri}"))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=error")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start haproxy_exporter");
        let metrics = Target::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
        Exporter { child, metrics }
    }

    /// The exporter's `/metrics` once it answers, after a scrape of director.
    async fn scrape(&self) -> String {
        let metrics = self.metrics.clone();
        wait_until("haproxy_exporter answers", async || {
            let metrics = metrics.clone();
            let reply = tokio::spawn(async move {
                let mut sender = match metrics {
                    Target::Tcp(addr) => match tokio::net::TcpStream::connect(addr).await {
                        Ok(stream) => stream,
                        Err(e) => return Err(e.to_string()),
                    },
                    Target::Unix(_) => return Err("unix".to_owned()),
                };
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let head = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
                sender
                    .write_all(head.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                let mut text = String::new();
                sender
                    .read_to_string(&mut text)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(text)
            })
            .await
            .map_err(|e| e.to_string())?;
            reply
        })
        .await
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the sample `name` (with its labels, exactly as printed) in exporter text.
fn sample<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
}

/// A real HAProxy CSV consumer, Prometheus' haproxy_exporter, scrapes the proxy listener's
/// stats URI over HTTP Basic: it sees director up, the server and backend up, the traffic,
/// and parses every row; with a wrong password it reports HAProxy down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(has_haproxy_exporter),
    ignore = "haproxy_exporter not installed (apt-get install prometheus-haproxy-exporter)"
)]
async fn haproxy_exporter_scrapes_the_proxy_listener() {
    #[cfg(has_haproxy_exporter)]
    {
        let a = TestBackend::start("a").await;
        let compat = format!(
            "stats_uri: /\nmonitor_uri: /healthz\nlisteners: [proxy]\n{}",
            users()
        );
        let d = start(&config(&[backend_a(&a.url(), "")], "", &compat, "")).await;
        for _ in 0..5 {
            // `/` is the stats URI here: every path is HAProxy's, as with `stats uri /`.
            let reply = proxy_get(&d, "/page", &[]).await;
            assert_eq!(reply.status, 401, "no path is proxied under `stats_uri: /`");
        }
        let password = PASSWORD.replace(' ', "%20");
        let uri = format!("http://{USER}:{password}@{}/;csv", d.addr());
        let exporter = Exporter::start(&uri);
        let text = exporter.scrape().await;
        assert_eq!(sample(&text, "haproxy_up"), Some("1"), "{text}");
        assert_eq!(
            sample(&text, "haproxy_server_up{backend=\"c\",server=\"a\"}"),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            sample(&text, "haproxy_backend_up{backend=\"c\"}"),
            Some("1"),
            "{text}"
        );
        let failures = text
            .lines()
            .filter(|l| l.starts_with("haproxy_exporter_csv_parse_failures"))
            .collect::<Vec<_>>();
        assert!(!failures.is_empty(), "{text}");
        assert!(failures.iter().all(|l| l.ends_with(" 0")), "{failures:?}");
        assert!(
            sample(&text, "haproxy_frontend_current_sessions{frontend=\"director\"}").is_some(),
            "{text}"
        );
        drop(exporter);

        let uri = format!("http://{USER}:wrong@{}/;csv", d.addr());
        let exporter = Exporter::start(&uri);
        let text = exporter.scrape().await;
        assert_eq!(sample(&text, "haproxy_up"), Some("0"), "{text}");
        drop(exporter);
        d.stop().await;
    }
}
