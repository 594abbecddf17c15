//! Output of the compliance verbs shared by `computers` and `updates status`: CSV (RFC 4180:
//! a header row, then one row per item; fields with a comma, quote or line break quoted) and
//! the `updates status` text.

use std::process::ExitCode;

use super::admin_client::{clip, print_json, print_table, AdminClient};
use crate::admin::compliance::UpdateStatusJson;

/// One CSV field.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A CSV document: `headers`, then `rows`.
pub fn csv(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    let line = |fields: Vec<String>| fields.join(",") + "\r\n";
    out.push_str(&line(headers.iter().map(|h| csv_field(h)).collect()));
    for r in rows {
        out.push_str(&line(r.iter().map(|f| csv_field(f)).collect()));
    }
    out
}

/// `rollup [--json]`.
pub fn rollup(c: &AdminClient, json: bool) -> anyhow::Result<ExitCode> {
    let r: crate::rollup::RollupReport =
        c.call(reqwest::Method::POST, "/api/rollup", &[], None::<&()>)?;
    if json {
        print_json(&r)?;
    } else {
        println!(
            "rolled up {} server(s), {} computer(s), status of {} computer(s) in {} request(s){}",
            r.servers,
            r.computers,
            r.statuses,
            r.requests,
            if r.detailed {
                ""
            } else {
                " (upstream wants no computer detail)"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `updates status ID|KB [--json|--csv]`.
pub fn update_status(
    c: &AdminClient,
    id: String,
    json: bool,
    csv_out: bool,
) -> anyhow::Result<ExitCode> {
    let s: UpdateStatusJson = c.get("/api/updates/status", &[("id", id)])?;
    if json {
        print_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = s
        .computers
        .iter()
        .map(|x| {
            vec![
                x.name.clone(),
                x.id.clone(),
                x.state.clone(),
                x.error_code.clone().unwrap_or_default(),
                x.last_change.clone().unwrap_or_default(),
                x.downstream_server.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let headers = [
        "name",
        "id",
        "state",
        "error_code",
        "last_change",
        "downstream_server",
    ];
    if csv_out {
        print!("{}", csv(&headers, &rows));
        return Ok(ExitCode::SUCCESS);
    }
    let n = &s.counts;
    println!("{}  {}", s.id, s.title);
    println!(
        "installed {}  needed {}  failed {}  not applicable {}  unknown {}",
        n.installed, n.needed, n.failed, n.not_applicable, n.unknown
    );
    if !rows.is_empty() {
        println!();
        let shown: Vec<Vec<String>> = rows
            .into_iter()
            .map(|mut r| {
                r.remove(1);
                r[0] = clip(&r[0], 40);
                r.iter_mut().for_each(|f| {
                    if f.is_empty() {
                        *f = "-".into()
                    }
                });
                r
            })
            .collect();
        print_table(
            &[
                "COMPUTER",
                "STATE",
                "ERROR",
                "LAST CHANGE",
                "DOWNSTREAM SERVER",
            ],
            &shown,
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_what_rfc4180_needs() {
        let s = csv(
            &["name", "groups"],
            &[
                vec!["pc1".into(), "A, B".into()],
                vec!["say \"hi\"".into(), "".into()],
            ],
        );
        assert_eq!(s, "name,groups\r\npc1,\"A, B\"\r\n\"say \"\"hi\"\"\",\r\n");
    }
}
