//! The `export`, `import`, `verify-package` and `keygen` verbs (issue 6). `export` and
//! `import` go through the running server's admin API (which reads and writes the package on
//! its own disk) unless `--data-dir` asks for offline work on a data dir no server holds.
//! Every verb has `--json`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use reqwest::Method;

use super::admin_client::{self, AdminClient};
use crate::admin::transfer::{ExportJson, ExportRequest, ImportJson, ImportRequest};

use crate::config::Config;
use crate::transfer::{self, keys, Anchor, ExportOptions, ImportOptions};

/// Flags of `export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The package directory, or with --volume-size the volume base name (OUT.001, ...).
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// Incremental: only what changed since this anchor (printed by an earlier export).
    #[arg(long, value_name = "ANCHOR", conflicts_with = "full")]
    pub since: Option<String>,
    /// A full package (the default).
    #[arg(long)]
    pub full: bool,
    /// Only approved updates and what they need (categories, bundled, prerequisites).
    #[arg(long)]
    pub approved_only: bool,
    /// Split into plain tar volumes of at most this size, e.g. 4GiB.
    #[arg(long, value_name = "SIZE")]
    pub volume_size: Option<String>,
    /// Sign the manifest with this private key (from `keygen`).
    #[arg(long, value_name = "K.key")]
    pub sign: Option<PathBuf>,
    /// Work offline on this data directory (no server may hold it); without it the running
    /// server does the work through its admin API.
    #[arg(long, value_name = "DIR", conflicts_with = "online")]
    pub data_dir: Option<PathBuf>,
    /// Through the running server's admin API (the default; kept for older scripts).
    #[arg(long, hide = true)]
    pub online: bool,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The package directory or its first volume (OUT.001).
    pub path: PathBuf,
    /// Accept only packages signed by this key (repeatable; default: `[import]
    /// trusted_keys`; with neither, the import is refused).
    #[arg(long, value_name = "K.pub")]
    pub trust: Vec<PathBuf>,
    /// Accept a package older than the last one imported from its server (moves this
    /// server's state back to it).
    #[arg(long)]
    pub allow_older: bool,
    /// Work offline on this data directory (no server may hold it); without it the running
    /// server does the work through its admin API.
    #[arg(long, value_name = "DIR", conflicts_with = "online")]
    pub data_dir: Option<PathBuf>,
    /// Through the running server's admin API (the default; kept for older scripts).
    #[arg(long, hide = true)]
    pub online: bool,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `verify-package`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The package directory or its first volume (OUT.001).
    pub path: PathBuf,
    /// Also require that the signer is this key (repeatable).
    #[arg(long, value_name = "K.pub")]
    pub trust: Vec<PathBuf>,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Writes OUT.key (private, mode 0600) and OUT.pub.
    #[arg(long, value_name = "K")]
    pub out: PathBuf,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn trust(paths: &[PathBuf]) -> anyhow::Result<Vec<ed25519_dalek::VerifyingKey>> {
    Ok(paths
        .iter()
        .map(|p| keys::read_public(p))
        .collect::<Result<_, _>>()?)
}

/// An absolute form of a path given on this command line (the server's cwd differs).
fn absolute(p: &std::path::Path) -> anyhow::Result<PathBuf> {
    Ok(std::path::absolute(p)?)
}

fn print_export(r: &ExportJson, json: bool) -> anyhow::Result<()> {
    if json {
        return admin_client::print_json(r);
    }
    for o in &r.outputs {
        println!("wrote: {o}");
    }
    println!("revisions: {}", r.revisions);
    println!("payloads: {} ({} bytes)", r.payloads, r.payload_bytes);
    if r.not_cached > 0 {
        println!(
            "left out: {} declared payloads not in the cache",
            r.not_cached
        );
    }
    if r.one_time_key {
        println!(
            "signer: {} (one-time key; use --sign K.key to sign with yours)",
            r.signer
        );
    } else {
        println!("signer: {}", r.signer);
    }
    println!("anchor: {}", r.anchor);
    Ok(())
}

fn print_import(r: &ImportJson, json: bool) -> anyhow::Result<()> {
    if json {
        return admin_client::print_json(r);
    }
    println!("signer: {}", r.signer);
    println!("revisions: {}", r.revisions);
    println!(
        "files: {} copied, {} already verified, {} payloads already in the cache",
        r.copied, r.resumed, r.already_present
    );
    println!("payloads published: {}", r.published);
    if let Some(b) = &r.base_anchor {
        println!("base anchor: {b}");
    }
    println!("anchor: {}", r.anchor);
    Ok(())
}

/// Runs `export` over the admin API.
fn export_online(config: &Config, a: ExportArgs, admin: Option<&str>) -> anyhow::Result<ExitCode> {
    let c = AdminClient::new(config, admin)?;
    let body = ExportRequest {
        out: absolute(&a.out)?,
        since: a.since,
        approved_only: a.approved_only,
        volume_size: a.volume_size,
        sign: a.sign.as_deref().map(absolute).transpose()?,
    };
    let r: ExportJson = c.call(Method::POST, "/api/export", &[], Some(&body))?;
    print_export(&r, a.json)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `import` over the admin API.
fn import_online(config: &Config, a: ImportArgs, admin: Option<&str>) -> anyhow::Result<ExitCode> {
    let c = AdminClient::new(config, admin)?;
    let body = ImportRequest {
        path: absolute(&a.path)?,
        trust: a
            .trust
            .iter()
            .map(|p| absolute(p))
            .collect::<Result<_, _>>()?,
        allow_older: a.allow_older,
    };
    let r: ImportJson = c.call(Method::POST, "/api/import", &[], Some(&body))?;
    print_import(&r, a.json)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `export`: through the admin API, or offline with `--data-dir`.
pub fn export(mut config: Config, a: ExportArgs, admin: Option<&str>) -> anyhow::Result<ExitCode> {
    let Some(dir) = a.data_dir.clone() else {
        return admin_client::run_verb(|| export_online(&config, a, admin));
    };
    config.server.data_dir = dir;
    let since = a.since.as_deref().map(str::parse::<Anchor>).transpose()?;
    let volume_size = a
        .volume_size
        .as_deref()
        .map(crate::units::parse_size)
        .transpose()
        .context("--volume-size")?;
    let signing_key = a.sign.as_deref().map(keys::read_private).transpose()?;
    let store = transfer::open_store_offline(&config.store_dir())?;
    let r = transfer::export(
        &store,
        &config.content_dir(),
        ExportOptions {
            out: a.out,
            since,
            approved_only: a.approved_only,
            volume_size,
            signing_key,
        },
    )
    .context("export")?;
    let j = ExportJson {
        anchor: r.anchor.to_string(),
        revisions: r.revisions,
        payloads: r.payloads,
        payload_bytes: r.payload_bytes,
        not_cached: r.not_cached,
        outputs: r.outputs.iter().map(|p| p.display().to_string()).collect(),
        signer: r.signer,
        one_time_key: r.one_time_key,
    };
    print_export(&j, a.json)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `import`: through the admin API, or offline with `--data-dir`.
pub fn import(mut config: Config, a: ImportArgs, admin: Option<&str>) -> anyhow::Result<ExitCode> {
    let Some(dir) = a.data_dir.clone() else {
        return admin_client::run_verb(|| import_online(&config, a, admin));
    };
    config.server.data_dir = dir;
    let keys = if a.trust.is_empty() {
        &config.import.trusted_keys
    } else {
        &a.trust
    };
    let opts = ImportOptions {
        trust: trust(keys)?,
        allow_older: a.allow_older,
    };
    let store = transfer::open_store_offline(&config.store_dir())?;
    let staging = config.server.data_dir.join("import-staging");
    let r = transfer::import(&store, &config.content_dir(), &staging, &a.path, &opts)
        .context("import")?;
    if r.rolled_forward > 0 && !a.json {
        println!(
            "finished {} interrupted earlier import(s)",
            r.rolled_forward
        );
    }
    let j = ImportJson {
        anchor: r.anchor.to_string(),
        base_anchor: r.base_anchor.clone(),
        signer: r.signer.clone(),
        revisions: r.revisions,
        copied: r.copied,
        resumed: r.resumed,
        already_present: r.already_present,
        published: r.published,
    };
    print_import(&j, a.json)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `verify-package`.
pub fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let r = transfer::verify_package(&a.path, &trust(&a.trust)?).context("verify-package")?;
    if a.json {
        admin_client::print_json(&serde_json::json!({
            "ok": true,
            "files": r.files,
            "bytes": r.bytes,
            "signer": r.signer,
            "base_anchor": r.manifest.base_anchor.as_ref().map(|b| b.to_string()),
            "anchor": r.manifest.anchor.to_string(),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "package OK: {} files, {} bytes, signer {}",
        r.files, r.bytes, r.signer
    );
    if let Some(b) = &r.manifest.base_anchor {
        println!("base anchor: {b}");
    }
    println!("anchor: {}", r.manifest.anchor);
    Ok(ExitCode::SUCCESS)
}

/// Runs `keygen`.
pub fn keygen(a: KeygenArgs) -> anyhow::Result<ExitCode> {
    let (k, p, kp) = transfer::keygen(&a.out)?;
    let fingerprint = keys::fingerprint(&kp.public());
    if a.json {
        admin_client::print_json(&serde_json::json!({
            "private_key": k.display().to_string(),
            "public_key": p.display().to_string(),
            "fingerprint": fingerprint,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("private key: {}", k.display());
    println!("public key: {}", p.display());
    println!("fingerprint: {fingerprint}");
    Ok(ExitCode::SUCCESS)
}
