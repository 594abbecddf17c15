//! `wsus-edge status`: one screen that says whether the server is healthy (Get-WsusServer).

use std::process::ExitCode;

use super::admin_client::{print_json, AdminClient};
use crate::admin::page::human_bytes;
use crate::admin::types::StatusJson;

/// Runs `status`; exit 1 when the server reports problems.
pub fn run(c: &AdminClient, json: bool) -> anyhow::Result<ExitCode> {
    let s: StatusJson = c.get("/api/status", &[])?;
    if json {
        print_json(&s)?;
    } else {
        println!("health:     {}", s.health);
        for p in &s.problems {
            println!("  problem:  {p}");
        }
        println!(
            "server:     wsus-edge {} ({}{}), id {}",
            s.version,
            s.mode,
            s.upstream
                .as_deref()
                .map(|u| format!(" of {u}"))
                .unwrap_or_default(),
            s.server_id
        );
        println!("clients on: {}", s.listen);
        let sync = match (&s.sync.last_finished, &s.sync.last_result) {
            (Some(t), Some(r)) => format!("{t} ({r})"),
            _ => s
                .last_sync_success
                .clone()
                .map(|t| format!("{t} (ok)"))
                .unwrap_or_else(|| "never".into()),
        };
        println!(
            "last sync:  {sync}{}",
            if s.sync.running { " (running now)" } else { "" }
        );
        println!(
            "updates:    {} ({} approved, {} declined)",
            s.updates, s.approved, s.declined
        );
        println!(
            "computers:  {} ({} with failures)",
            s.computers, s.computers_with_failures
        );
        let ratio = s
            .content
            .hit_ratio
            .map(|r| format!("{:.1}%", r * 100.0))
            .unwrap_or_else(|| "n/a".into());
        println!(
            "content:    {} in {} objects, hit ratio {ratio}, {} saved on the uplink",
            human_bytes(s.content.bytes_stored),
            s.content.objects,
            human_bytes(s.content.bytes_saved)
        );
    }
    Ok(if s.health == "ok" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
