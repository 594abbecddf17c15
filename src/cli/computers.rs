//! `wsus-edge computers list|show|move|remove` (Get-WsusComputer, Add-WsusComputer,
//! Remove-WsusComputer) over the admin API.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;

use super::admin_client::{clip, print_json, print_table, AdminClient};
use super::compliance::csv;
use crate::admin::compliance::{MoveRequest, RemoveRequest};
use crate::admin::types::{ChangedJson, ComputerDetailJson, ComputerJson};

/// `computers ...`.
#[derive(Debug, Subcommand)]
pub enum ComputersCmd {
    /// List client computers with their update counts.
    #[command(after_long_help = super::admin_client::EXIT_CODES)]
    List {
        /// Only computers in this group (name or GUID).
        #[arg(long, value_name = "G")]
        group: Option<String>,
        /// Only computers whose last status report is older than this (e.g. 7d), or never came.
        #[arg(long, value_name = "AGE")]
        stale: Option<String>,
        /// Only computers with a failed update, a needed update, or up to date.
        #[arg(long, value_name = "S", value_parser = ["failed", "needed", "uptodate"])]
        status: Option<String>,
        /// Also computers rolled up from downstream servers.
        #[arg(long)]
        include_downstream: bool,
        /// JSON array instead of a table.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// CSV: a header row, then one row per computer.
        #[arg(long)]
        csv: bool,
    },
    /// Show one computer (DNS name or client id): each update's state, last change and error code.
    #[command(after_long_help = super::admin_client::EXIT_CODES)]
    Show {
        /// DNS name (or short host name) or client id.
        name: String,
        /// JSON instead of text.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// CSV of the per-update states: a header row, then one row per update.
        #[arg(long)]
        csv: bool,
    },
    /// Assign a computer to a target group on this server (server-side targeting).
    #[command(after_long_help = super::admin_client::EXIT_CODES)]
    Move {
        /// DNS name (or short host name) or client id.
        name: String,
        /// Target group name or GUID (`Unassigned Computers` clears the assignment).
        #[arg(long, value_name = "G")]
        group: String,
        /// JSON instead of text: `{"message", "ids"}`.
        #[arg(long)]
        json: bool,
    },
    /// Forget a computer and its reported status (it registers again at its next contact).
    #[command(after_long_help = super::admin_client::EXIT_CODES)]
    Remove {
        /// DNS name (or short host name) or client id.
        name: String,
        /// JSON instead of text: `{"message", "ids"}`.
        #[arg(long)]
        json: bool,
    },
}

/// The `computers list --csv` columns (the `--json` field names).
const LIST_COLUMNS: [&str; 9] = [
    "id",
    "name",
    "groups",
    "last_sync",
    "last_report",
    "needed",
    "failed",
    "installed",
    "downstream_server",
];

fn or_never(t: &Option<String>) -> String {
    t.clone().unwrap_or_else(|| "never".into())
}

/// Runs `computers ...`.
pub fn run(c: &AdminClient, cmd: ComputersCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ComputersCmd::List {
            group,
            stale,
            status,
            include_downstream,
            json,
            csv: csv_out,
        } => {
            let mut q: Vec<(&str, String)> = Vec::new();
            q.extend(group.map(|g| ("group", g)));
            q.extend(stale.map(|g| ("stale", g)));
            q.extend(status.map(|g| ("status", g)));
            if include_downstream {
                q.push(("include_downstream", "1".into()));
            }
            let list: Vec<ComputerJson> = c.get("/api/computers", &q)?;
            if json {
                print_json(&list)?;
            } else if csv_out {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|x| {
                        vec![
                            x.id.clone(),
                            x.name.clone(),
                            x.groups.join(";"),
                            x.last_sync.clone().unwrap_or_default(),
                            x.last_report.clone().unwrap_or_default(),
                            x.needed.to_string(),
                            x.failed.to_string(),
                            x.installed.to_string(),
                            x.downstream_server.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                print!("{}", csv(&LIST_COLUMNS, &rows));
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|x| {
                        vec![
                            x.name.clone(),
                            clip(&x.groups.join(", "), 30),
                            or_never(&x.last_sync),
                            or_never(&x.last_report),
                            x.needed.to_string(),
                            x.installed.to_string(),
                            x.failed.to_string(),
                            x.downstream_server.clone().unwrap_or("-".into()),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "NAME",
                        "GROUPS",
                        "LAST SYNC",
                        "LAST REPORT",
                        "NEEDED",
                        "INSTALLED",
                        "FAILED",
                        "DOWNSTREAM",
                    ],
                    &rows,
                );
            }
        }
        ComputersCmd::Show {
            name,
            json,
            csv: csv_out,
        } => {
            let d: ComputerDetailJson = c.get("/api/computers/show", &[("name", name)])?;
            if json {
                print_json(&d)?;
            } else if csv_out {
                let rows: Vec<Vec<String>> = d
                    .updates
                    .iter()
                    .map(|u| {
                        vec![
                            u.id.clone(),
                            u.title.clone().unwrap_or_default(),
                            u.state.clone(),
                            u.last_change.clone().unwrap_or_default(),
                            u.error_code.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    csv(
                        &["id", "title", "state", "last_change", "error_code"],
                        &rows
                    )
                );
            } else {
                let x = &d.computer;
                for (k, v) in [
                    ("Name", x.name.clone()),
                    ("Id", x.id.clone()),
                    ("Groups", x.groups.join(", ")),
                    ("Last sync", or_never(&x.last_sync)),
                    ("Last report", or_never(&x.last_report)),
                    ("Needed", x.needed.to_string()),
                    ("Installed", x.installed.to_string()),
                    ("Failed", x.failed.to_string()),
                    (
                        "Downstream",
                        x.downstream_server
                            .clone()
                            .unwrap_or("- (own client)".into()),
                    ),
                    ("OS", d.os_version.clone().unwrap_or("-".into())),
                    ("Agent", d.client_version.clone().unwrap_or("-".into())),
                ] {
                    println!("{:<13}{v}", format!("{k}:"));
                }
                if !d.updates.is_empty() {
                    println!();
                    let rows: Vec<Vec<String>> = d
                        .updates
                        .iter()
                        .map(|u| {
                            vec![
                                u.state.clone(),
                                u.last_change.clone().unwrap_or("-".into()),
                                u.error_code.clone().unwrap_or("-".into()),
                                u.id.clone(),
                                clip(u.title.as_deref().unwrap_or("?"), 50),
                            ]
                        })
                        .collect();
                    print_table(&["STATE", "LAST CHANGE", "ERROR", "UPDATE", "TITLE"], &rows);
                }
            }
        }
        ComputersCmd::Move { name, group, json } => {
            let r: ChangedJson = c.call(
                Method::POST,
                "/api/computers/move",
                &[],
                Some(&MoveRequest { name, group }),
            )?;
            if json {
                print_json(&r)?;
            } else {
                println!("{}", r.message);
            }
        }
        ComputersCmd::Remove { name, json } => {
            let r: ChangedJson = c.call(
                Method::POST,
                "/api/computers/remove",
                &[],
                Some(&RemoveRequest { name }),
            )?;
            if json {
                print_json(&r)?;
            } else {
                println!("{}", r.message);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
