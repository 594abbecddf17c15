//! `wsus-edge content status|verify|prefetch` over the admin API.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;

use super::admin_client::{exit, print_json, AdminClient};
use crate::admin::page::human_bytes;
use crate::admin::types::{ContentStatusJson, PrefetchJson, VerifyProgressJson};

/// `content ...`.
#[derive(Debug, Subcommand)]
pub enum ContentCmd {
    /// Bytes stored, hit ratio, bytes saved on the uplink.
    Status {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash the whole store; quarantine bad files (exit 1 when any was found).
    Verify {
        /// Print the final report as JSON (no progress bar).
        #[arg(long)]
        json: bool,
    },
    /// Download the content of approved updates now.
    Prefetch {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `content ...`.
pub fn run(c: &AdminClient, cmd: ContentCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ContentCmd::Status { json } => {
            let s: ContentStatusJson = c.get("/api/content", &[])?;
            if json {
                print_json(&s)?;
                return Ok(ExitCode::SUCCESS);
            }
            let ratio = s
                .hit_ratio
                .map(|r| format!("{:.1}%", r * 100.0))
                .unwrap_or_else(|| "n/a".into());
            println!(
                "stored:          {} in {} objects{}",
                human_bytes(s.bytes_stored),
                s.objects,
                s.max_size
                    .map(|m| format!(" (max {})", human_bytes(m)))
                    .unwrap_or_default()
            );
            println!(
                "hit ratio:       {ratio} ({} hits, {} misses, {} coalesced, {} errors)",
                s.hits, s.misses, s.coalesced, s.errors
            );
            println!("saved on uplink: {}", human_bytes(s.bytes_saved));
            println!("from upstream:   {}", human_bytes(s.bytes_upstream));
            println!("approved, not cached: {} file(s)", s.approved_missing);
            println!("mode:            {}", s.mode);
        }
        ContentCmd::Verify { json } => {
            let bar = if json {
                indicatif::ProgressBar::hidden()
            } else {
                indicatif::ProgressBar::new(0)
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "verify [{bar:30}] {pos}/{len} objects {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            let mut last = VerifyProgressJson::default();
            c.stream_lines(
                Method::POST,
                "/api/content/verify",
                |p: VerifyProgressJson| {
                    bar.set_length(p.total);
                    bar.set_position(p.done);
                    bar.set_message(human_bytes(p.bytes));
                    last = p;
                },
            )?;
            bar.finish_and_clear();
            if !last.finished {
                return Err(exit(1, "content verify: the server stopped before the end"));
            }
            if json {
                print_json(&last)?;
            } else {
                println!(
                    "checked {} object(s), {} OK; {} quarantined, {} missing",
                    last.done,
                    human_bytes(last.bytes),
                    last.quarantined.len(),
                    last.missing.len()
                );
                for q in &last.quarantined {
                    println!("quarantined: {q}");
                }
                for m in &last.missing {
                    println!("missing:     {m}");
                }
            }
            if let Some(e) = last.error {
                return Err(exit(1, format!("content verify: {e}")));
            }
            if !last.quarantined.is_empty() || !last.missing.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        ContentCmd::Prefetch { json } => {
            eprintln!("prefetching approved content…");
            let r: PrefetchJson =
                c.call(Method::POST, "/api/content/prefetch", &[], None::<&()>)?;
            if json {
                print_json(&r)?;
            } else {
                println!(
                    "{} file(s) of approved updates: {} already cached, {} downloaded, {} failed",
                    r.files,
                    r.cached,
                    r.downloaded,
                    r.failed.len()
                );
                for f in &r.failed {
                    println!("failed: {f}");
                }
            }
            if !r.failed.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
