//! `wsus-edge cleanup [--dry-run]` (Invoke-WsusServerCleanup) over the admin API.

use std::process::ExitCode;

use reqwest::Method;

use super::admin_client::{print_json, AdminClient};
use crate::admin::page::human_bytes;
use crate::admin::types::CleanupJson;

/// Runs `cleanup`.
pub fn run(c: &AdminClient, dry_run: bool, json: bool) -> anyhow::Result<ExitCode> {
    let q: Vec<(&str, String)> = if dry_run {
        vec![("dry_run", "1".into())]
    } else {
        Vec::new()
    };
    let r: CleanupJson = c.call(Method::POST, "/api/cleanup", &q, None::<&()>)?;
    if json {
        print_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    for u in &r.updates {
        println!("{u}");
    }
    for k in &r.kept {
        println!("keep {k}");
    }
    println!(
        "{}{} update(s), {} revision(s), {} file(s), {} of content",
        if r.dry_run {
            "would remove "
        } else {
            "removed "
        },
        r.updates.len(),
        r.revisions,
        r.files,
        human_bytes(r.bytes)
    );
    if !r.kept.is_empty() {
        println!(
            "kept {} update(s) that computers reported needed or failed within [cleanup] keep_needed_for",
            r.kept.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
