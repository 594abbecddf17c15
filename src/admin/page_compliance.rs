//! The status page's compliance views: one update on every computer
//! (`GET /updates/status?id=ID|KB`) and one computer's update states
//! (`GET /computers/show?name=NAME|ID`). Each page sits at its JSON endpoint's path without
//! `/api`, takes the same query and renders what [`super::compliance::update_status`] and
//! [`super::compliance::show_computer`] answer there, so the page and `--json` cannot disagree.
//! Every string from clients or upstream (names, ids, titles) is HTML-escaped.

use std::fmt::Write;
use std::sync::Arc;

use http::{Response, StatusCode};

use super::compliance::{show_computer, update_status, UpdateStatusJson};
use super::page::{esc, page};
use super::query::Query;
use super::types::ComputerDetailJson;
use super::{full, with_type, AdminBody, AdminState, ApiResult};

/// Page path of one update's status (query `id`).
pub const UPDATE_PATH: &str = "/updates/status";
/// Page path of one computer (query `name`).
pub const COMPUTER_PATH: &str = "/computers/show";

/// The five states in the order the pages show them, with their headings.
const STATES: [(&str, &str); 5] = [
    ("installed", "Installed"),
    ("needed", "Needed"),
    ("failed", "Failed"),
    ("not_applicable", "Not applicable"),
    ("unknown", "Unknown"),
];

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
pub fn url_enc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

/// Link target of an update's page.
pub fn update_href(id: &str) -> String {
    format!("{UPDATE_PATH}?id={}", url_enc(id))
}

/// Link target of a computer's page (by id: names need not be unique).
pub fn computer_href(id: &str) -> String {
    format!("{COMPUTER_PATH}?name={}", url_enc(id))
}

/// The search boxes on the main page: an update by GUID or KB, a computer by name or id.
pub fn search_forms() -> String {
    format!(
        "<h2>Look up</h2><form method=\"get\" action=\"{UPDATE_PATH}\" id=\"update-search\">\
<input name=\"id\" placeholder=\"Update GUID or KB number (KB5040515)\" required> \
<button type=\"submit\">Update status</button></form>\
<form method=\"get\" action=\"{COMPUTER_PATH}\" id=\"computer-search\">\
<input name=\"name\" placeholder=\"Computer name or id\" required> \
<button type=\"submit\">Computer</button></form>"
    )
}

fn opt(s: &Option<String>) -> String {
    esc(s.as_deref().unwrap_or("-"))
}

fn render_update(u: &UpdateStatusJson) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<p><a href=\"/\">&larr; status</a></p><h1 id=\"title\">{}</h1><p>Update <code id=\"update-id\">{}</code></p>",
        esc(&u.title),
        esc(&u.id)
    );
    let c = &u.counts;
    let counts = [c.installed, c.needed, c.failed, c.not_applicable, c.unknown];
    b.push_str("<h2>Computers per state</h2><table id=\"counts\">");
    for ((key, label), n) in STATES.iter().zip(counts) {
        let _ = write!(
            b,
            "<tr><td><a href=\"#state-{key}\">{label}</a></td><td class=\"n\" id=\"count-{key}\">{n}</td></tr>"
        );
    }
    b.push_str("</table>");
    for (key, label) in STATES {
        let _ = write!(b, "<h2 id=\"state-{key}\">{label}</h2>");
        let rows: Vec<_> = u.computers.iter().filter(|c| c.state == key).collect();
        if rows.is_empty() {
            b.push_str("<p>None.</p>");
            continue;
        }
        let _ = write!(
            b,
            "<table id=\"computers-{key}\"><tr><th>Computer</th><th>Error code</th><th>Last change</th><th>Downstream server</th></tr>"
        );
        for c in rows {
            let _ = write!(
                b,
                "<tr data-id=\"{}\"><td><a href=\"{}\">{}</a></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&c.id),
                esc(&computer_href(&c.id)),
                esc(&c.name),
                opt(&c.error_code),
                opt(&c.last_change),
                opt(&c.downstream_server)
            );
        }
        b.push_str("</table>");
    }
    page(&format!("wsus-edge: {}", u.title), &b, false)
}

fn render_computer(d: &ComputerDetailJson) -> String {
    let c = &d.computer;
    let mut b = String::new();
    let _ = write!(
        b,
        "<p><a href=\"/\">&larr; status</a></p><h1 id=\"name\">{}</h1><table id=\"details\">",
        esc(&c.name)
    );
    let groups = c.groups.join(", ");
    let requested = d.requested_groups.join(", ");
    for (k, v) in [
        ("Id", Some(c.id.as_str())),
        ("Groups", Some(groups.as_str())),
        (
            "Requested groups (client-side targeting)",
            Some(requested.as_str()).filter(|s| !s.is_empty()),
        ),
        ("Last sync", c.last_sync.as_deref()),
        ("Last report", c.last_report.as_deref()),
        ("Registered", d.registered.as_deref()),
        ("OS", d.os_version.as_deref()),
        ("Agent", d.client_version.as_deref()),
        ("Downstream server", c.downstream_server.as_deref()),
    ] {
        let _ = write!(b, "<tr><th>{k}</th><td>{}</td></tr>", esc(v.unwrap_or("-")));
    }
    let _ = write!(
        b,
        "<tr><th>Needed / failed / installed</th><td>{} / {} / {}</td></tr></table>",
        c.needed, c.failed, c.installed
    );
    b.push_str("<h2>Updates</h2>");
    if d.updates.is_empty() {
        b.push_str("<p>No update states reported.</p>");
    } else {
        // Failures first, then needed, installed, not applicable (the JSON's rows, reordered).
        let rank = |s: &str| {
            ["failed", "needed", "installed", "not_applicable"]
                .iter()
                .position(|k| *k == s)
                .unwrap_or(4)
        };
        let mut rows: Vec<_> = d.updates.iter().collect();
        rows.sort_by(|a, b| {
            (rank(&a.state), &a.title, &a.id).cmp(&(rank(&b.state), &b.title, &b.id))
        });
        b.push_str("<table id=\"updates\"><tr><th>Update</th><th>State</th><th>Last change</th><th>Error code</th></tr>");
        for u in rows {
            let label = STATES
                .iter()
                .find(|(k, _)| *k == u.state)
                .map(|(_, l)| *l)
                .unwrap_or(u.state.as_str());
            let _ = write!(
                b,
                "<tr data-id=\"{}\" data-state=\"{}\"><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                esc(&u.id),
                esc(&u.state),
                esc(&update_href(&u.id)),
                esc(u.title.as_deref().unwrap_or(&u.id)),
                esc(label),
                opt(&u.last_change),
                opt(&u.error_code)
            );
        }
        b.push_str("</table>");
    }
    page(&format!("wsus-edge: {}", c.name), &b, false)
}

fn error_page(status: StatusCode, message: &str) -> Response<AdminBody> {
    let body = format!(
        "<p><a href=\"/\">&larr; status</a></p><h1>Not shown</h1><p class=\"bad\" id=\"error\">{}</p>{}",
        esc(message),
        search_forms()
    );
    with_type(
        status,
        "text/html; charset=utf-8",
        full(page("wsus-edge: not shown", &body, false)),
    )
}

async fn html<T, F, R>(state: &Arc<AdminState>, q: Query, f: F, render: R) -> Response<AdminBody>
where
    T: Send + 'static,
    F: FnOnce(&AdminState, &Query) -> ApiResult<T> + Send + 'static,
    R: FnOnce(&T) -> String + Send + 'static,
{
    let s = state.clone();
    match tokio::task::spawn_blocking(move || f(&s, &q).map(|v| render(&v))).await {
        Ok(Ok(page)) => with_type(StatusCode::OK, "text/html; charset=utf-8", full(page)),
        Ok(Err(e)) => error_page(e.status, &e.message),
        Err(e) => error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `GET /updates/status?id=ID|KB`: the five counts and the computers in each state.
pub async fn update_page(state: &Arc<AdminState>, q: Query) -> Response<AdminBody> {
    html(state, q, update_status, render_update).await
}

/// `GET /computers/show?name=NAME|ID`: the computer and each update's state.
pub async fn computer_page(state: &Arc<AdminState>, q: Query) -> Response<AdminBody> {
    html(state, q, show_computer, render_computer).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_percent_encoded() {
        assert_eq!(url_enc("a b&c=<d>/é"), "a%20b%26c%3D%3Cd%3E%2F%C3%A9");
        assert_eq!(computer_href("pc\"1"), "/computers/show?name=pc%221");
        assert_eq!(update_href("KB5040515"), "/updates/status?id=KB5040515");
        // Decoding what we encode gives the value back.
        let v = "x y+z%&<script>";
        let q = Query::parse(&format!("name={}", url_enc(v)));
        assert_eq!(q.get("name"), Some(v));
    }

    #[test]
    fn upstream_titles_are_escaped() {
        let u = UpdateStatusJson {
            id: "3f1c2b9a-0000-4000-8000-000000000001".into(),
            title: "<img src=x onerror=alert(1)> & \"Cumulative\"".into(),
            counts: Default::default(),
            computers: vec![],
        };
        let html = render_update(&u);
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt; &amp; &quot;Cumulative&quot;"));
        assert_eq!(html.matches("<p>None.</p>").count(), 5);
    }
}
