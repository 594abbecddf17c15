//! `wsus-edge sync [--now]` and `sync status` over the admin API.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::Method;

use super::admin_client::{exit, print_json, AdminClient};
use crate::admin::types::SyncJson;

/// `sync ...`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SyncArgs {
    /// Start a new sync now even if one is running (it runs right after); without it, a
    /// running sync is followed instead of starting another.
    #[arg(long)]
    pub now: bool,
    /// JSON instead of text: no progress display, the final status as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// `status`.
    #[command(subcommand)]
    pub cmd: Option<SyncCmd>,
}

/// `sync status`.
#[derive(Debug, Subcommand)]
pub enum SyncCmd {
    /// Is a sync running? Last result, anchor, counts.
    #[command(after_long_help = super::admin_client::EXIT_CODES)]
    Status {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn print_status(s: &SyncJson) {
    let o = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    if !s.available {
        println!("sync:          not available (autonomous server or no sync runner)");
    }
    let running = if s.running {
        format!(
            "yes: {} {}/{}",
            s.phase.as_deref().unwrap_or("?"),
            s.done,
            s.total
        )
    } else {
        "no".into()
    };
    println!("running:       {running}");
    println!("last result:   {}", o(&s.last_result));
    println!("last started:  {}", o(&s.last_started));
    println!("last finished: {}", o(&s.last_finished));
    if let Some(d) = s.last_duration_secs {
        println!("duration:      {d:.1}s");
    }
    println!("anchor:        {}", o(&s.anchor));
    println!(
        "counts:        {} updates, {} revisions fetched, {} approvals",
        s.updates, s.fetched, s.approvals
    );
    if !s.skipped.is_empty() {
        println!(
            "skipped:       {} revision(s), asked for again at the next sync",
            s.skipped.len()
        );
        for k in &s.skipped {
            println!("  {}/{}  {}", k.id, k.revision, k.reason);
        }
    }
}

/// Runs `sync ...`.
pub fn run(c: &AdminClient, args: SyncArgs) -> anyhow::Result<ExitCode> {
    if let Some(SyncCmd::Status { json }) = args.cmd {
        let s: SyncJson = c.get("/api/sync", &[])?;
        if json {
            print_json(&s)?;
        } else {
            print_status(&s);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let before: SyncJson = c.get("/api/sync", &[])?;
    // Wait for the run after `target` finished runs.
    let target = if before.running && !args.now {
        before.runs + 1
    } else {
        let b: SyncJson = c.call(Method::POST, "/api/sync", &[], None::<&()>)?;
        b.runs + if b.running { 2 } else { 1 }
    };
    let bar = if args.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} sync: {msg} {pos}/{len}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut last_phase = None;
    let asked = std::time::Instant::now();
    let mut hinted = false;
    let fin = loop {
        std::thread::sleep(Duration::from_millis(300));
        let s: SyncJson = c.get("/api/sync", &[])?;
        if s.runs >= target && !s.running {
            break s;
        }
        if !s.running && !hinted && asked.elapsed() > Duration::from_secs(30) {
            hinted = true;
            eprintln!(
                "waiting for the sync runner to start the sync (it may be finishing a prefetch)…"
            );
        }
        if s.running {
            if s.phase != last_phase {
                last_phase = s.phase.clone();
                if bar.is_hidden() && !args.json {
                    eprintln!("sync: {}", s.phase.as_deref().unwrap_or("starting"));
                }
            }
            bar.set_message(s.phase.clone().unwrap_or_default());
            bar.set_length(s.total);
            bar.set_position(s.done);
        }
        bar.tick();
    };
    bar.finish_and_clear();
    if args.json {
        print_json(&fin)?;
    }
    match fin.last_result.as_deref() {
        Some("ok") if args.json => Ok(ExitCode::SUCCESS),
        Some("ok") => {
            println!(
                "sync finished: {} updates, {} revisions fetched, {} approvals{}",
                fin.updates,
                fin.fetched,
                fin.approvals,
                fin.last_duration_secs
                    .map(|d| format!(" in {d:.1}s"))
                    .unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(r) if args.json => {
            eprintln!(
                "wsus-edge: sync failed: {}",
                r.trim_start_matches("error: ")
            );
            Ok(ExitCode::from(1))
        }
        Some(r) => Err(exit(
            1,
            format!("sync failed: {}", r.trim_start_matches("error: ")),
        )),
        None => Err(exit(1, "sync finished without a result")),
    }
}
