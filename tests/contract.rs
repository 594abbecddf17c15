//! The outside is a contract: names scripts and admins rely on, checked from outside the code.
//!
//! - Every configuration key the parser accepts (listed by the real binary itself, in the
//!   error it gives for an unknown key) is documented with a comment in the shipped
//!   `deploy/wsus-edge.toml`, and every documented key is accepted; `check-config` prints every
//!   key of every table as TOML (issues 14–17: `[content] min_free`, `[import] trusted_keys`,
//!   `[cleanup] keep_needed_for`, `[log] format`, `[admin] metrics_token_file`, …).
//! - `--json` on every verb (issue 17), read from each verb's `--help`.
//! - The Debian package layout of issue 17, read from `[package.metadata.deb]` and `deploy/`
//!   (building the package is `deploy/test-deb.sh`'s job where dpkg and cargo-deb exist).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The binary with no `WSUS_EDGE_*` variable of the test's environment.
fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wsus-edge"));
    for (k, _) in std::env::vars() {
        if k.starts_with("WSUS_EDGE_") {
            c.env_remove(k);
        }
    }
    c
}

fn check_config(text: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, text).unwrap();
    bin()
        .arg("--config")
        .arg(&p)
        .arg("check-config")
        .output()
        .unwrap()
}

/// The names the parser lists after "expected" when it meets an unknown key.
fn expected_names(text: &str) -> BTreeSet<String> {
    let o = check_config(text);
    assert!(!o.status.success(), "{text:?} is refused");
    let err = String::from_utf8_lossy(&o.stderr);
    // serde: "expected one of `a`, `b`", "expected `a` or `b`", or "expected `a`".
    let list = err
        .split("expected ")
        .nth(1)
        .map(|l| l.strip_prefix("one of ").unwrap_or(l))
        .unwrap_or_else(|| panic!("no list of keys in {err}"));
    list.lines()
        .next()
        .unwrap()
        .split([',', ' '])
        .filter(|s| s.starts_with('`'))
        .map(|s| s.trim_matches('`').to_string())
        .collect()
}

/// `table → keys` of a TOML text, set or shown commented out (`# key = value`), with whether
/// each key has a prose comment above it (key lines of the same group skipped).
fn keys_of(text: &str) -> BTreeMap<String, BTreeMap<String, bool>> {
    let mut out: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    let mut table = String::new();
    let mut prose = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            table = name.to_string();
            out.entry(table.clone()).or_default();
            prose = false;
            continue;
        }
        let body = t
            .strip_prefix('#')
            .map(|b| b.strip_prefix(' ').unwrap_or(b));
        let candidate = body.unwrap_or(t);
        let key = candidate
            .split_once(" = ")
            .map(|(k, _)| k)
            .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        match key {
            Some(k) if !table.is_empty() => {
                let documented = out.get(&table).and_then(|m| m.get(k)).copied();
                out.get_mut(&table)
                    .unwrap()
                    .insert(k.to_string(), documented.unwrap_or(false) || prose);
            }
            _ if t.is_empty() => prose = false,
            _ if body.is_some() => prose = true,
            _ => {}
        }
    }
    out
}

#[test]
fn every_config_key_is_documented_accepted_and_printed_by_check_config() {
    let tables = expected_names("[no_such_table]\n");
    assert!(tables.len() >= 10, "{tables:?}");
    let shipped = std::fs::read_to_string(root().join("deploy/wsus-edge.toml")).unwrap();
    let documented = keys_of(&shipped);
    let o = bin()
        .arg("--config")
        .arg(root().join("deploy/wsus-edge.toml"))
        .arg("check-config")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let printed_text = String::from_utf8(o.stdout).unwrap();
    toml::from_str::<toml::Table>(&printed_text).expect("check-config prints TOML");
    let printed = keys_of(&printed_text);

    assert_eq!(
        documented.keys().cloned().collect::<BTreeSet<_>>(),
        tables,
        "tables in deploy/wsus-edge.toml vs tables the parser accepts"
    );
    for table in &tables {
        let accepted = expected_names(&format!("[{table}]\nno_such_key = 1\n"));
        let doc = &documented[table];
        assert_eq!(
            doc.keys().cloned().collect::<BTreeSet<_>>(),
            accepted,
            "[{table}]: keys documented in deploy/wsus-edge.toml vs keys the parser accepts"
        );
        for (k, has_comment) in doc {
            assert!(
                has_comment,
                "[{table}] {k} has a comment in deploy/wsus-edge.toml"
            );
        }
        let shown = printed.get(table).cloned().unwrap_or_default();
        assert_eq!(
            shown.keys().cloned().collect::<BTreeSet<_>>(),
            accepted,
            "[{table}]: keys check-config prints vs keys the parser accepts:\n{printed_text}"
        );
    }

    // The keys the issues name, exactly as written.
    for (table, key) in [
        ("admin", "listen"),
        ("admin", "token_file"),
        ("admin", "metrics_token_file"),
        ("import", "trusted_keys"),
        ("content", "min_free"),
        ("content", "max_size"),
        ("cleanup", "keep_needed_for"),
        ("log", "format"),
        ("server", "listen"),
        ("server", "data_dir"),
        ("server", "advertised_url"),
        ("upstream", "url"),
        ("upstream", "max_bandwidth"),
        ("sync", "languages"),
    ] {
        assert!(documented[table].contains_key(key), "[{table}] {key}");
    }
}

#[test]
fn the_readme_names_the_keys_and_flags_the_issues_ask_it_to() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for name in [
        // issue 15: the limits in the security notes
        "min_free",
        "trusted_keys",
        "--trust",
        "--allow-older",
        "max_computers",
        "registrations_per_minute",
        // issue 16: the daily questions
        "keep_needed_for",
        "updates status",
        "computers move",
        "computers remove",
        "--include-downstream",
        "--stale",
        "--csv",
        // issue 17
        "metrics_token_file",
        "WSUS_EDGE_METRICS_TOKEN",
        "check-config",
        "cargo deb",
        // issue 14
        "--expired",
        "simulate-upstream",
    ] {
        assert!(readme.contains(name), "README.md names {name}");
    }
}

/// The leaf commands under `path` (`wsus-edge <path> --help`'s "Commands:" list, recursively).
fn leaves(path: &[String], out: &mut Vec<(Vec<String>, String)>) {
    let o = bin().args(path).arg("--help").output().unwrap();
    assert!(o.status.success(), "{path:?} --help");
    let help = String::from_utf8(o.stdout).unwrap();
    let subs: Vec<String> = help
        .split("\nCommands:\n")
        .nth(1)
        .map(|rest| {
            rest.lines()
                .take_while(|l| !l.trim().is_empty())
                .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
                .filter_map(|l| l.split_whitespace().next())
                .filter(|c| *c != "help")
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    // A leaf, or a group that is a verb itself (`sync`, with `sync status` under it).
    let has_json = help.lines().any(|l| l.trim_start().starts_with("--json"));
    if subs.is_empty() || (has_json && !path.is_empty()) {
        out.push((path.to_vec(), help.clone()));
    }
    for s in subs {
        let mut p = path.to_vec();
        p.push(s);
        leaves(&p, out);
    }
}

#[test]
fn every_verb_has_json() {
    let mut all = Vec::new();
    leaves(&[], &mut all);
    let names: Vec<String> = all.iter().map(|(p, _)| p.join(" ")).collect();
    for want in [
        "updates list",
        "updates status",
        "updates approve",
        "updates decline",
        "computers list",
        "computers move",
        "computers remove",
        "sync",
        "sync status",
        "export",
        "import",
        "keygen",
        "check-config",
        "cleanup",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    // Long-running processes, not verbs that answer.
    let daemons = ["serve", "simulate-upstream", "demo"];
    for (path, help) in &all {
        let name = path.join(" ");
        if daemons.contains(&name.as_str()) {
            continue;
        }
        assert!(
            help.lines().any(|l| l.trim_start().starts_with("--json")),
            "`wsus-edge {name}` has --json:\n{help}"
        );
    }
}

#[test]
fn the_debian_package_layout() {
    let cargo: toml::Table =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    let deb = cargo["package"]["metadata"]["deb"].as_table().unwrap();
    let assets: Vec<(String, String)> = deb["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_array().unwrap();
            (
                a[0].as_str().unwrap().to_string(),
                a[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let dest = |d: &str| {
        assets
            .iter()
            .find(|(_, to)| to == d)
            .map(|(from, _)| from.clone())
    };
    // /usr/bin/wsus-edge: the release binary (cargo-deb strips it).
    assert_eq!(
        dest("usr/bin/").as_deref(),
        Some("target/release/wsus-edge")
    );
    // /etc/wsus-edge/wsus-edge.toml, a conffile, from the shipped sample.
    assert_eq!(
        dest("etc/wsus-edge/wsus-edge.toml").as_deref(),
        Some("deploy/wsus-edge.toml")
    );
    let conf: Vec<&str> = deb["conf-files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(conf.contains(&"/etc/wsus-edge/wsus-edge.toml"), "{conf:?}");
    // tmpfiles.d as an asset; the unit and sysusers.d from `systemd-units` (cargo-deb installs
    // `<unit-scripts>/<package>.service` and `<package>.sysusers`).
    assert!(dest("usr/lib/tmpfiles.d/wsus-edge.conf").is_some());
    assert!(dest("usr/share/doc/wsus-edge/README.md").is_some());
    let units = deb["systemd-units"].as_table().unwrap();
    let dir = units["unit-scripts"].as_str().unwrap();
    assert_eq!(units["unit-name"].as_str(), Some("wsus-edge"));
    assert!(
        deb.contains_key("maintainer-scripts"),
        "systemd-units needs it"
    );
    let unit = std::fs::read_to_string(root().join(dir).join("wsus-edge.service")).unwrap();
    let sysusers = std::fs::read_to_string(root().join(dir).join("wsus-edge.sysusers")).unwrap();
    assert!(sysusers
        .lines()
        .any(|l| l.starts_with("u wsus-edge ") && l.contains("/var/lib/wsus-edge")));
    for (from, _) in &assets {
        if !from.starts_with("target/") {
            assert!(root().join(from).is_file(), "asset {from} exists");
        }
    }
    let tmpfiles =
        std::fs::read_to_string(root().join(dest("usr/lib/tmpfiles.d/wsus-edge.conf").unwrap()))
            .unwrap();
    assert!(tmpfiles
        .lines()
        .any(|l| l.starts_with("d /var/lib/wsus-edge ") && l.contains("wsus-edge wsus-edge")));
    // The unit runs the packaged binary on the packaged config, as the static user.
    assert!(
        unit.lines()
            .any(|l| l
                == "ExecStart=/usr/bin/wsus-edge --config /etc/wsus-edge/wsus-edge.toml serve"),
        "{unit}"
    );
    assert!(unit.lines().any(|l| l == "User=wsus-edge"));
    assert!(!unit.contains("DynamicUser=yes"));
    // The packaged config: every interface, the package's data dir.
    let shipped: toml::Table =
        toml::from_str(&std::fs::read_to_string(root().join("deploy/wsus-edge.toml")).unwrap())
            .unwrap();
    assert_eq!(shipped["server"]["listen"].as_str(), Some("0.0.0.0:8530"));
    assert_eq!(
        shipped["server"]["data_dir"].as_str(),
        Some("/var/lib/wsus-edge")
    );
}
