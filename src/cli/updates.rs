//! `wsus-edge updates list|show|approve|decline` (Get-WsusUpdate, Approve-WsusUpdate,
//! Deny-WsusUpdate) over the admin API.

use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand};
use reqwest::Method;

use super::admin_client::{clip, print_json, print_table, AdminClient};
use crate::admin::types::{ApproveRequest, ChangedJson, IdsRequest, UpdateDetailJson, UpdateJson};

/// `updates ...`.
#[derive(Debug, Subcommand)]
pub enum UpdatesCmd {
    /// List software and driver updates (latest revisions).
    #[command(group(ArgGroup::new("state").args(["approved", "unapproved", "declined", "expired"])))]
    #[command(after_long_help = super::admin_client::EXIT_CODES)]
    List {
        /// Only approved updates.
        #[arg(long)]
        approved: bool,
        /// Only updates neither approved nor declined.
        #[arg(long)]
        unapproved: bool,
        /// Only declined updates (those expired upstream included).
        #[arg(long)]
        declined: bool,
        /// Only updates expired upstream (withdrawn; kept as declined).
        #[arg(long)]
        expired: bool,
        /// Classification title or GUID (e.g. "Security Updates").
        #[arg(long, value_name = "C")]
        classification: Option<String>,
        /// Product title or GUID (e.g. "Windows 11").
        #[arg(long, value_name = "P")]
        product: Option<String>,
        /// Text in the title, KB number or id (case-insensitive).
        #[arg(long, value_name = "T")]
        text: Option<String>,
        /// JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one update (GUID or KB number) with its files and approvals.
    #[command(after_long_help = super::admin_client::EXIT_CODES)]
    Show {
        /// Update GUID or KB number.
        id: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Which computers have, need or failed an update (GUID or KB), own and rolled up.
    #[command(after_long_help = super::admin_client::EXIT_CODES)]
    Status {
        /// Update GUID or KB number.
        id: String,
        /// JSON: {"id","title","counts":{..},"computers":[..]}.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// CSV: a header row, then one row per computer.
        #[arg(long)]
        csv: bool,
    },
    /// Approve updates for a target group (autonomous mode; a replica takes approvals from upstream).
    #[command(after_long_help = super::admin_client::EXIT_CODES)]
    Approve(ApproveArgs),
    /// Decline updates: hide them and remove their approvals (autonomous mode).
    #[command(after_long_help = super::admin_client::EXIT_CODES)]
    Decline {
        /// Update GUIDs or KB numbers.
        #[arg(required = true)]
        ids: Vec<String>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Flags of `updates approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Update GUIDs or KB numbers.
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Target group name or GUID.
    #[arg(long, value_name = "G")]
    pub group: String,
    /// What clients do.
    #[arg(long, value_parser = ["install", "uninstall"], default_value = "install")]
    pub action: String,
    /// Deadline: RFC 3339 (2026-12-01T18:00:00Z) or a date (2026-12-01, midnight UTC).
    #[arg(long, value_name = "T")]
    pub deadline: Option<String>,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn approvals_cell(u: &UpdateJson) -> String {
    if u.expired {
        return "expired".into();
    }
    if u.declined {
        return "declined".into();
    }
    let v: Vec<String> = u
        .approvals
        .iter()
        .chain(&u.other_deployments)
        .map(|a| format!("{}:{}", a.group, a.action))
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

/// Runs `updates ...`.
pub fn run(c: &AdminClient, cmd: UpdatesCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        UpdatesCmd::List {
            approved,
            unapproved,
            declined,
            expired,
            classification,
            product,
            text,
            json,
        } => {
            let mut q: Vec<(&str, String)> = Vec::new();
            let status = if approved {
                Some("approved")
            } else if unapproved {
                Some("unapproved")
            } else if declined {
                Some("declined")
            } else if expired {
                Some("expired")
            } else {
                None
            };
            if let Some(s) = status {
                q.push(("status", s.into()));
            }
            if let Some(v) = classification {
                q.push(("classification", v));
            }
            if let Some(v) = product {
                q.push(("product", v));
            }
            if let Some(v) = text {
                q.push(("text", v));
            }
            let list: Vec<UpdateJson> = c.get("/api/updates", &q)?;
            if json {
                print_json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|u| {
                        vec![
                            u.id.clone(),
                            u.kb.as_deref()
                                .map(|k| format!("KB{k}"))
                                .unwrap_or_default(),
                            clip(u.classification.as_deref().unwrap_or(""), 24),
                            clip(&u.title, 60),
                            approvals_cell(u),
                        ]
                    })
                    .collect();
                print_table(&["ID", "KB", "CLASSIFICATION", "TITLE", "APPROVALS"], &rows);
                eprintln!("{} update(s)", list.len());
            }
        }
        UpdatesCmd::Status { id, json, csv } => {
            return super::compliance::update_status(c, id, json, csv);
        }
        UpdatesCmd::Show { id, json } => {
            let u: UpdateDetailJson = c.get("/api/updates/show", &[("id", id)])?;
            if json {
                print_json(&u)?;
            } else {
                let x = &u.update;
                let rows = vec![
                    vec!["Title".into(), x.title.clone()],
                    vec!["Id".into(), format!("{} (revision {})", x.id, x.revision)],
                    vec![
                        "KB".into(),
                        x.kb.as_deref()
                            .map(|k| format!("KB{k}"))
                            .unwrap_or("-".into()),
                    ],
                    vec![
                        "Classification".into(),
                        x.classification.clone().unwrap_or("-".into()),
                    ],
                    vec!["Products".into(), x.products.join(", ")],
                    vec!["Approvals".into(), approvals_cell(x)],
                    vec!["Expired".into(), x.expired.to_string()],
                    vec![
                        "Created".into(),
                        u.creation_date.clone().unwrap_or("-".into()),
                    ],
                    vec!["Superseded by".into(), u.superseded_by.join(", ")],
                ];
                for r in rows {
                    println!("{:<15}{}", format!("{}:", r[0]), r[1]);
                }
                if !u.files.is_empty() {
                    println!();
                    let rows: Vec<Vec<String>> = u
                        .files
                        .iter()
                        .map(|f| {
                            vec![
                                f.name.clone(),
                                f.size.to_string(),
                                if f.cached { "yes" } else { "no" }.into(),
                                f.sha1.clone(),
                            ]
                        })
                        .collect();
                    print_table(&["FILE", "SIZE", "CACHED", "SHA1"], &rows);
                }
            }
        }
        UpdatesCmd::Approve(a) => {
            let r: ChangedJson = c.call(
                Method::POST,
                "/api/updates/approve",
                &[],
                Some(&ApproveRequest {
                    ids: a.ids,
                    group: a.group,
                    action: Some(a.action),
                    deadline: a.deadline,
                }),
            )?;
            print_changed(&r, a.json)?;
        }
        UpdatesCmd::Decline { ids, json } => {
            let r: ChangedJson = c.call(
                Method::POST,
                "/api/updates/decline",
                &[],
                Some(&IdsRequest { ids }),
            )?;
            print_changed(&r, json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a write's answer: its message, or the whole answer as JSON.
fn print_changed(r: &ChangedJson, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(r)
    } else {
        println!("{}", r.message);
        Ok(())
    }
}
