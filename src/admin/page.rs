//! The read-only status page (`GET /` on the admin listener): server-rendered HTML, no
//! script, one small stylesheet inline. Without credentials it shows a login form; posting the
//! token there sets the session cookie (see [`super::auth`]).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use http::{header, HeaderValue, Response, StatusCode};

use super::auth::{SESSION_COOKIE, SESSION_SECS};
use super::catalog::View;
use super::page_compliance::{computer_href, search_forms, update_href};
use super::query::Query;
use super::types::{ComputerJson, StatusJson};
use super::{full, with_type, AdminBody, AdminState};

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Bytes in binary units (`1.5 GiB`).
pub fn human_bytes(n: u64) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#222;background:#fafafa}\
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;min-width:40%}td,th{padding:.25rem .7rem;border-bottom:1px solid #e4e4e4;text-align:left}\
th{background:#eee}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.ok{color:#fff;background:#2e7d32;padding:.2rem .6rem;border-radius:.3rem}\
.bad{color:#fff;background:#c62828;padding:.2rem .6rem;border-radius:.3rem}\
.grid{display:flex;flex-wrap:wrap;gap:1rem}.card{background:#fff;border:1px solid #ddd;border-radius:.4rem;padding:.8rem 1.2rem;min-width:11rem}\
.card b{display:block;font-size:1.3rem}form{margin-top:1rem}input{padding:.3rem;min-width:24rem}";

/// A whole HTML page around `body` (already escaped); `title` is escaped here.
pub(super) fn page(title: &str, body: &str, auto_refresh: bool) -> String {
    let refresh = if auto_refresh {
        "<meta http-equiv=\"refresh\" content=\"60\">"
    } else {
        ""
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">{refresh}\
<title>{}</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n",
        esc(title)
    )
}

/// The login form (`status` is 401 when credentials were missing or wrong).
pub fn login_form(status: StatusCode, message: Option<&str>) -> Response<AdminBody> {
    let msg = message
        .map(|m| format!("<p class=\"bad\">{}</p>", esc(m)))
        .unwrap_or_default();
    let body = format!(
        "<h1>wsus-edge admin</h1>{msg}<p>Paste the admin token (from the token file or <code>WSUS_EDGE_TOKEN</code>).</p>\
<form method=\"post\" action=\"/login\"><input type=\"password\" name=\"token\" autocomplete=\"current-password\" autofocus> \
<button type=\"submit\">Log in</button></form>"
    );
    with_type(
        status,
        "text/html; charset=utf-8",
        full(page("wsus-edge admin: log in", &body, false)),
    )
}

/// `POST /login`: a form body `token=...`; sets the session cookie and redirects to `/`.
pub fn login(state: &AdminState, body: &[u8], now: i64) -> Response<AdminBody> {
    let form = Query::parse(&String::from_utf8_lossy(body));
    let ok = form
        .get("token")
        .is_some_and(|t| state.token.matches(t.trim()));
    if !ok {
        tracing::warn!("admin login with a wrong token");
        return login_form(StatusCode::UNAUTHORIZED, Some("Wrong token."));
    }
    let mut r = with_type(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        full("logged in\n"),
    );
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/"));
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; Max-Age={SESSION_SECS}; HttpOnly; SameSite=Strict",
        state.token.session_value(now)
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `POST /logout`: clears the cookie.
pub fn logout() -> Response<AdminBody> {
    let mut r = with_type(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        full("logged out\n"),
    );
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/login"));
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "wsus_edge_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
        ),
    );
    r
}

/// What the page shows beyond [`StatusJson`].
struct Extra {
    top: Vec<(String, String, u64)>,
    failing: Vec<ComputerJson>,
    stale: Vec<ComputerJson>,
    summary: Option<super::compliance::Summary>,
}

fn extra(state: &AdminState) -> Extra {
    let mut top = Vec::new();
    if let (Ok(v), Ok(objects)) = (View::load(&state.store), state.store.objects()) {
        let sizes: HashMap<[u8; 20], u64> = objects.into_iter().map(|(k, m)| (k, m.size)).collect();
        for r in &v.updates {
            let b: u64 = r
                .record
                .files
                .iter()
                .filter_map(|f| sizes.get(&f.sha1))
                .sum();
            if b > 0 {
                top.push((
                    r.record.key.update_id.to_string(),
                    r.record.title.clone(),
                    b,
                ));
            }
        }
        top.sort_by(|a, b| b.2.cmp(&a.2).then(a.1.cmp(&b.1)));
        top.truncate(10);
    }
    let failing = super::compliance::list_computers(
        state,
        &Query::parse("status=failed&include_downstream=1"),
    )
    .unwrap_or_default();
    let stale =
        super::compliance::list_computers(state, &Query::parse("stale=7d")).unwrap_or_default();
    let summary = super::compliance::summary(&state.store).ok();
    Extra {
        top,
        failing,
        stale,
        summary,
    }
}

fn render(s: &StatusJson, x: &Extra) -> String {
    let mut b = String::new();
    let badge = if s.health == "ok" {
        "<span class=\"ok\" id=\"health\">healthy</span>".to_string()
    } else {
        format!(
            "<span class=\"bad\" id=\"health\">{}</span>",
            esc(&s.health)
        )
    };
    let _ = write!(
        b,
        "<h1>wsus-edge {} {badge}</h1><p>{} server {}{} &middot; clients on {}</p>",
        esc(&s.version),
        esc(&s.mode),
        esc(&s.server_id),
        s.upstream
            .as_deref()
            .map(|u| format!(" &middot; upstream {}", esc(u)))
            .unwrap_or_default(),
        esc(&s.listen)
    );
    if !s.problems.is_empty() {
        b.push_str("<ul>");
        for p in &s.problems {
            let _ = write!(b, "<li class=\"bad\">{}</li>", esc(p));
        }
        b.push_str("</ul>");
    }
    let c = &s.content;
    let ratio = c
        .hit_ratio
        .map(|r| format!("{:.1}%", r * 100.0))
        .unwrap_or_else(|| "n/a".into());
    let last_sync = match (&s.sync.last_finished, &s.sync.last_result) {
        (Some(t), Some(r)) => format!("{} ({})", esc(t), esc(r)),
        _ => s
            .last_sync_success
            .as_deref()
            .map(|t| format!("{} (ok)", esc(t)))
            .unwrap_or_else(|| "never".into()),
    };
    let running = if s.sync.running {
        format!(
            " &middot; running: {} {}/{}",
            esc(s.sync.phase.as_deref().unwrap_or("")),
            s.sync.done,
            s.sync.total
        )
    } else {
        String::new()
    };
    let _ = write!(
        b,
        "<h2>Overview</h2><div class=\"grid\">\
<div class=\"card\">Last sync<b id=\"last-sync\">{last_sync}</b>{running}</div>\
<div class=\"card\">Storage<b id=\"storage\">{}</b>{} objects{}</div>\
<div class=\"card\">Hit ratio<b id=\"hit-ratio\">{ratio}</b>{} hits / {} misses</div>\
<div class=\"card\">Saved on the uplink<b>{}</b>{} fetched upstream</div>\
<div class=\"card\">Updates<b>{}</b>{} approved, {} declined</div>\
<div class=\"card\">Computers<b>{}</b>{} with failures</div></div>",
        human_bytes(c.bytes_stored),
        c.objects,
        c.max_size
            .map(|m| format!(" of {} max", human_bytes(m)))
            .unwrap_or_default(),
        c.hits,
        c.misses,
        human_bytes(c.bytes_saved),
        human_bytes(c.bytes_upstream),
        s.updates,
        s.approved,
        s.declined,
        s.computers,
        s.computers_with_failures
    );
    b.push_str(&search_forms());
    b.push_str("<h2>Top updates by bytes cached</h2>");
    if x.top.is_empty() {
        b.push_str("<p>Nothing cached yet.</p>");
    } else {
        b.push_str("<table id=\"top-updates\"><tr><th>Update</th><th>Id</th><th>Bytes</th></tr>");
        for (id, title, n) in &x.top {
            let _ = write!(
                b,
                "<tr><td><a href=\"{}\">{}</a></td><td><code>{}</code></td><td class=\"n\">{}</td></tr>",
                esc(&update_href(id)),
                esc(title),
                esc(id),
                human_bytes(*n)
            );
        }
        b.push_str("</table>");
    }
    if let Some(m) = &x.summary {
        b.push_str("<h2>Compliance</h2><table id=\"compliance\">");
        for (k, v) in [
            ("Computers (this server)", m.computers),
            (
                "Computers (rolled up from downstream servers)",
                m.downstream_computers,
            ),
            ("Downstream servers", m.downstream_servers),
            ("Computers needing updates", m.needing),
            ("Computers with failed updates", m.failing),
            ("Computers up to date", m.up_to_date),
            ("Computers not reporting for 7 days", m.stale_7d),
        ] {
            let _ = write!(b, "<tr><td>{}</td><td class=\"n\">{v}</td></tr>", esc(k));
        }
        b.push_str("</table>");
    }
    for (title, id, list) in [
        ("Computers with failures", "failing", &x.failing),
        ("Computers not reporting for 7 days", "stale", &x.stale),
    ] {
        let _ = write!(b, "<h2>{title}</h2>");
        if list.is_empty() {
            b.push_str("<p>None.</p>");
            continue;
        }
        let _ = write!(b, "<table id=\"{id}\"><tr><th>Computer</th><th>Groups</th><th>Failed</th><th>Needed</th><th>Last report</th><th>Downstream server</th></tr>");
        for c in list {
            let _ = write!(
                b,
                "<tr data-id=\"{}\"><td><a href=\"{}\">{}</a></td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.id),
                esc(&computer_href(&c.id)),
                esc(&c.name),
                esc(&c.groups.join(", ")),
                c.failed,
                c.needed,
                esc(c.last_report.as_deref().unwrap_or("never")),
                esc(c.downstream_server.as_deref().unwrap_or("-"))
            );
        }
        b.push_str("</table>");
    }
    b.push_str(
        "<form method=\"post\" action=\"/logout\"><button type=\"submit\">Log out</button></form>",
    );
    page("wsus-edge status", &b, true)
}

/// `GET /`: the status page.
pub async fn status_page(state: &Arc<AdminState>) -> Response<AdminBody> {
    let s = state.clone();
    match tokio::task::spawn_blocking(move || {
        let st = super::ops::status_json(&s);
        render(&st, &extra(&s))
    })
    .await
    {
        Ok(html) => with_type(StatusCode::OK, "text/html; charset=utf-8", full(html)),
        Err(e) => super::error(&super::ApiError::internal(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_units() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
