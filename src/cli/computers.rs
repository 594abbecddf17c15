//! `wsus-edge computers list|show` (Get-WsusComputer) over the admin API.

use std::process::ExitCode;

use clap::Subcommand;

use super::admin_client::{clip, print_json, print_table, AdminClient};
use crate::admin::types::{ComputerDetailJson, ComputerJson};

/// `computers ...`.
#[derive(Debug, Subcommand)]
pub enum ComputersCmd {
    /// List client computers with their update counts.
    List {
        /// Only computers in this group (name or GUID).
        #[arg(long, value_name = "G")]
        group: Option<String>,
        /// JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one computer (DNS name or client id): last sync, last report, per-update status.
    Show {
        /// DNS name (or short host name) or client id.
        name: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn or_never(t: &Option<String>) -> String {
    t.clone().unwrap_or_else(|| "never".into())
}

/// Runs `computers ...`.
pub fn run(c: &AdminClient, cmd: ComputersCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ComputersCmd::List { group, json } => {
            let q: Vec<(&str, String)> = group.map(|g| ("group", g)).into_iter().collect();
            let list: Vec<ComputerJson> = c.get("/api/computers", &q)?;
            if json {
                print_json(&list)?;
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
                    ],
                    &rows,
                );
            }
        }
        ComputersCmd::Show { name, json } => {
            let d: ComputerDetailJson = c.get("/api/computers/show", &[("name", name)])?;
            if json {
                print_json(&d)?;
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
                                u.status.clone(),
                                u.id.clone(),
                                clip(u.title.as_deref().unwrap_or("?"), 60),
                            ]
                        })
                        .collect();
                    print_table(&["STATUS", "UPDATE", "TITLE"], &rows);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
