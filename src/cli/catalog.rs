//! `wsus-edge classifications list`, `products list` and `subscription set|show`
//! (Get-WsusClassification, Get-WsusProduct, Set-WsusClassification/Product) over the admin API.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;

use super::admin_client::{clip, print_json, print_table, AdminClient};
use crate::admin::types::{CategoryJson, SubscriptionJson};

/// `classifications ...` and `products ...`.
#[derive(Debug, Subcommand)]
pub enum CategoryCmd {
    /// List them, with whether sync downloads their updates.
    #[command(after_long_help = super::admin_client::EXIT_CODES)]
    List {
        /// JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `subscription ...`.
#[derive(Debug, Subcommand)]
pub enum SubscriptionCmd {
    /// Choose what sync downloads. Each flag may repeat; a list not given stays as it is;
    /// `all` subscribes to every product (or classification).
    #[command(arg_required_else_help = true)]
    #[command(after_long_help = super::admin_client::EXIT_CODES)]
    Set {
        /// Product title or GUID (repeat for more).
        #[arg(long = "product", value_name = "P")]
        products: Vec<String>,
        /// Classification title or GUID (repeat for more).
        #[arg(long = "classification", value_name = "C")]
        classifications: Vec<String>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show the subscription.
    #[command(after_long_help = super::admin_client::EXIT_CODES)]
    Show {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `classifications list` (`products == false`) or `products list`.
pub fn run_categories(
    c: &AdminClient,
    products: bool,
    cmd: CategoryCmd,
) -> anyhow::Result<ExitCode> {
    let CategoryCmd::List { json } = cmd;
    let path = if products {
        "/api/products"
    } else {
        "/api/classifications"
    };
    let list: Vec<CategoryJson> = c.get(path, &[])?;
    if json {
        print_json(&list)?;
    } else {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|x| {
                vec![
                    x.id.clone(),
                    clip(&x.title, 50),
                    if x.subscribed { "yes" } else { "no" }.into(),
                    x.updates.to_string(),
                ]
            })
            .collect();
        print_table(&["ID", "TITLE", "SUBSCRIBED", "UPDATES"], &rows);
    }
    Ok(ExitCode::SUCCESS)
}

fn show(s: &SubscriptionJson) {
    let all = |v: &[String]| {
        if v.is_empty() {
            "all".to_string()
        } else {
            v.join(", ")
        }
    };
    println!("products:        {}", all(&s.products));
    println!("classifications: {}", all(&s.classifications));
}

/// Runs `subscription ...`.
pub fn run_subscription(c: &AdminClient, cmd: SubscriptionCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        SubscriptionCmd::Show { json } => {
            let s: SubscriptionJson = c.get("/api/subscription", &[])?;
            if json {
                print_json(&s)?;
            } else {
                show(&s);
            }
        }
        SubscriptionCmd::Set {
            products,
            classifications,
            json,
        } => {
            let mut s: SubscriptionJson = c.get("/api/subscription", &[])?;
            let pick = |v: Vec<String>, cur: &mut Vec<String>| {
                if v.iter().any(|x| x.eq_ignore_ascii_case("all")) {
                    cur.clear();
                } else if !v.is_empty() {
                    *cur = v;
                }
            };
            pick(products, &mut s.products);
            pick(classifications, &mut s.classifications);
            let s: SubscriptionJson = c.call(Method::PUT, "/api/subscription", &[], Some(&s))?;
            if json {
                print_json(&s)?;
            } else {
                show(&s);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
