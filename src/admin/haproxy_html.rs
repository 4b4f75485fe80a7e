//! The HTML stats page in the spirit of HAProxy's (`GET /haproxy?stats`): one table per proxy
//! (the `director` frontend, then each cluster with its backends and a total row), coloured by
//! status. It shows the very rows of the CSV (`haproxy::rows`), so the two never disagree.
//!
//! Control plane: a pure function of the snapshots. Every text taken from the state (names,
//! statuses, descriptions) goes through [`escape`].

use std::fmt::Write;

use super::haproxy::{rows, Row};
use super::metrics::Extras;
use crate::cluster::cluster_state::ClusterState;

/// How a cell of the page is made from a row.
#[derive(Clone, Copy)]
enum Cell {
    /// The column's text as it is.
    Column(&'static str),
    /// A column of seconds, written like `1h2m`.
    Duration(&'static str),
    /// `status`, with the time since the last change.
    Status,
    /// `check_status` and `check_code`, described in a tooltip.
    LastCheck,
}

/// The page's columns: `(group, heading, cell)`; consecutive cells of a group share its heading.
const CELLS: &[(&str, &str, Cell)] = &[
    ("Queue", "Cur", Cell::Column("qcur")),
    ("Queue", "Max", Cell::Column("qmax")),
    ("Queue", "Limit", Cell::Column("qlimit")),
    ("Sessions", "Cur", Cell::Column("scur")),
    ("Sessions", "Max", Cell::Column("smax")),
    ("Sessions", "Limit", Cell::Column("slim")),
    ("Sessions", "Total", Cell::Column("stot")),
    ("Rate", "Cur", Cell::Column("rate")),
    ("Rate", "Max", Cell::Column("rate_max")),
    ("Bytes", "In", Cell::Column("bin")),
    ("Bytes", "Out", Cell::Column("bout")),
    ("Errors", "Conn", Cell::Column("econ")),
    ("Errors", "Resp", Cell::Column("eresp")),
    ("Warnings", "Retr", Cell::Column("wretr")),
    ("Responses", "2xx", Cell::Column("hrsp_2xx")),
    ("Responses", "3xx", Cell::Column("hrsp_3xx")),
    ("Responses", "4xx", Cell::Column("hrsp_4xx")),
    ("Responses", "5xx", Cell::Column("hrsp_5xx")),
    ("Server", "Status", Cell::Status),
    ("Server", "LastChk", Cell::LastCheck),
    ("Server", "Wght", Cell::Column("weight")),
    ("Server", "Act", Cell::Column("act")),
    ("Server", "Bck", Cell::Column("bck")),
    ("Server", "Chk", Cell::Column("chkfail")),
    ("Server", "Dwn", Cell::Column("chkdown")),
    ("Server", "Dwntme", Cell::Duration("downtime")),
];

const STYLE: &str = "body{font-family:sans-serif;font-size:13px;margin:1em}\
    h1{font-size:1.4em}h2{font-size:1.1em;margin:1.2em 0 .3em}\
    table{border-collapse:collapse}th,td{border:1px solid #999;padding:2px 5px}\
    th{background:#d8d8c8}td{text-align:right}td.name{text-align:left;font-weight:bold}\
    tr.frontend,tr.backend{background:#e8e8d0;font-weight:bold}\
    tr.up{background:#c0ffc0}tr.nocheck{background:#e0e0e0}tr.drain{background:#20a0ff}\
    tr.down{background:#ff9090}tr.maint{background:#c07820}tr.backup.up{background:#b0d0ff}\
    .legend td{text-align:left}";

/// The page for `states`.
pub fn render(states: &[ClusterState], extras: &Extras) -> String {
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Statistics Report for director</title><style>{STYLE}</style></head><body>\n\
         <h1>Statistics Report for director</h1>\n<p>Uptime: {} &middot; clusters: {}</p>\n",
        human_duration(extras.uptime.as_secs()),
        states.len()
    );
    page.push_str(
        "<table class=\"legend\"><tr class=\"up\"><td>UP</td></tr><tr class=\"backup up\"><td>backup UP</td>\
         </tr><tr class=\"nocheck\"><td>no check</td></tr><tr class=\"drain\"><td>DRAIN</td></tr>\
         <tr class=\"down\"><td>DOWN</td></tr><tr class=\"maint\"><td>MAINT (disabled)</td></tr></table>\n",
    );
    let rows = rows(states, extras);
    for proxy in rows.chunk_by(|a, b| a.get("pxname") == b.get("pxname")) {
        proxy_table(&mut page, proxy);
    }
    page.push_str("</body></html>\n");
    page
}

fn proxy_table(page: &mut String, rows: &[Row]) {
    let name = rows.first().map_or("", |r| r.get("pxname"));
    let _ = write!(
        page,
        "<h2>{}</h2>\n<table>\n<tr><th rowspan=\"2\"></th>",
        escape(name)
    );
    for group in CELLS.chunk_by(|a, b| a.0 == b.0) {
        let _ = write!(page, "<th colspan=\"{}\">{}</th>", group.len(), group[0].0);
    }
    page.push_str("</tr>\n<tr>");
    for (_, heading, _) in CELLS {
        let _ = write!(page, "<th>{heading}</th>");
    }
    page.push_str("</tr>\n");
    for row in rows {
        let _ = write!(
            page,
            "<tr class=\"{}\"><td class=\"name\">{}</td>",
            row_class(row),
            escape(row.get("svname"))
        );
        for &(_, _, cell) in CELLS {
            page.push_str(&cell_html(row, cell));
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</table>\n");
}

fn cell_html(row: &Row, cell: Cell) -> String {
    match cell {
        Cell::Column(column) => format!("<td>{}</td>", escape(row.get(column))),
        Cell::Duration(column) => format!("<td>{}</td>", seconds_text(row.get(column))),
        Cell::Status => {
            let since = seconds_text(row.get("lastchg"));
            let status = escape(row.get("status"));
            if since.is_empty() {
                format!("<td>{status}</td>")
            } else {
                format!("<td>{since} {status}</td>")
            }
        }
        Cell::LastCheck => {
            let check = row.get("check_status");
            let code = row.get("check_code");
            let text = if code.is_empty() {
                check.to_owned()
            } else {
                format!("{check}/{code}")
            };
            format!(
                "<td title=\"{}\">{}</td>",
                escape(row.get("check_desc")),
                escape(&text)
            )
        }
    }
}

/// The CSS classes of a row: its kind, else its status (and `backup` for backups).
fn row_class(row: &Row) -> String {
    match row.get("svname") {
        "FRONTEND" if row.get("type") == "0" => return "frontend".to_owned(),
        "BACKEND" if row.get("type") == "1" => return "backend".to_owned(),
        _ => {}
    }
    let status = match row.get("status") {
        "UP" => "up",
        "DOWN" => "down",
        "MAINT" => "maint",
        "DRAIN" => "drain",
        _ => "nocheck",
    };
    if row.get("bck") == "1" {
        format!("backup {status}")
    } else {
        status.to_owned()
    }
}

/// A cell of whole seconds as a duration; empty stays empty.
fn seconds_text(cell: &str) -> String {
    cell.parse().map(human_duration).unwrap_or_default()
}

/// `45s`, `3m5s`, `2h10m`, `4d3h`: the two largest units, like HAProxy's page.
fn human_duration(seconds: u64) -> String {
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let Some(first) = units.iter().position(|&(size, _)| seconds >= size) else {
        return "0s".to_owned();
    };
    let mut text = String::new();
    let mut rest = seconds;
    for &(size, unit) in units.iter().skip(first).take(2) {
        let _ = write!(text, "{}{unit}", rest / size);
        rest %= size;
    }
    text
}

/// `text` safe inside HTML elements and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::haproxy::test_fixtures::{backend, cluster, clusters, extras};
    use crate::config::Role;

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            escape("<script>alert('x') && \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp;&amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(escape("app01"), "app01");
    }

    #[test]
    fn names_from_the_state_are_escaped() {
        let hostile = "<script>alert(1)</script>";
        let states = [cluster(hostile, true, vec![backend(hostile, Role::Active, 1)])];
        let page = render(&states, &Extras::default());
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn one_table_per_proxy_with_rows_coloured_by_status() {
        let page = render(&clusters(), &extras());
        assert_eq!(page.matches("<table>").count(), 3, "director, shop, api");
        for class in [
            "frontend",
            "backend",
            "up",
            "down",
            "maint",
            "drain",
            "nocheck",
            "backup up",
        ] {
            assert!(page.contains(&format!("<tr class=\"{class}\">")), "{class}");
        }
        assert!(
            page.contains("<td>1m40s UP</td>"),
            "status with the time since its change"
        );
        assert!(page.contains("<td title=\"Layer7 wrong status\">L7STS/503</td>"));
        assert!(page.contains("Uptime: 1h2m"));
    }

    #[test]
    fn durations_show_their_two_largest_units() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (185, "3m5s"),
            (7_800, "2h10m"),
            (356_400, "4d3h"),
        ];
        for (seconds, text) in cases {
            assert_eq!(human_duration(seconds), text);
        }
    }
}
