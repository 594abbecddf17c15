//! `wsus-edge groups list|add|remove` (computer target groups) over the admin API.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;

use super::admin_client::{print_json, print_table, AdminClient};
use crate::admin::types::{ChangedJson, GroupJson, NewGroupRequest};

/// `groups ...`.
#[derive(Debug, Subcommand)]
pub enum GroupsCmd {
    /// List target groups.
    List {
        /// JSON array `[{id, name, parent}]` instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add a target group (autonomous mode; a replica takes groups from upstream).
    Add {
        /// Group name.
        name: String,
        /// Parent group name or GUID (default: All Computers).
        #[arg(long, value_name = "G")]
        parent: Option<String>,
        /// Print the new group as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a target group, its subgroups and their approvals (autonomous mode).
    Remove {
        /// Group name or GUID.
        group: String,
        /// Print what was removed as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `groups ...`.
pub fn run(c: &AdminClient, cmd: GroupsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        GroupsCmd::List { json } => {
            let list: Vec<GroupJson> = c.get("/api/groups", &[])?;
            if json {
                print_json(&list)?;
            } else {
                let name_of = |id: &str| {
                    list.iter()
                        .find(|g| g.id == id)
                        .map(|g| g.name.clone())
                        .unwrap_or_else(|| id.to_string())
                };
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|g| {
                        vec![
                            g.id.clone(),
                            g.name.clone(),
                            g.parent.as_deref().map(name_of).unwrap_or("-".into()),
                        ]
                    })
                    .collect();
                print_table(&["ID", "NAME", "PARENT"], &rows);
            }
        }
        GroupsCmd::Add { name, parent, json } => {
            let g: GroupJson = c.call(
                Method::POST,
                "/api/groups",
                &[],
                Some(&NewGroupRequest { name, parent }),
            )?;
            if json {
                print_json(&g)?;
            } else {
                println!("added group {} ({})", g.name, g.id);
            }
        }
        GroupsCmd::Remove { group, json } => {
            let r: ChangedJson = c.call(
                Method::POST,
                "/api/groups/remove",
                &[],
                Some(&NewGroupRequest {
                    name: group,
                    parent: None,
                }),
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
