//! The `export`, `import`, `verify-package` and `keygen` verbs (issue 6), offline on a data
//! dir that no server holds.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

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
    /// Data directory (`server.data_dir`); must not be held by a running server.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Flags of `import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The package directory or its first volume (OUT.001).
    pub path: PathBuf,
    /// Accept only packages signed by this key (repeatable).
    #[arg(long, value_name = "K.pub")]
    pub trust: Vec<PathBuf>,
    /// Data directory (`server.data_dir`); must not be held by a running server.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Flags of `verify-package`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The package directory or its first volume (OUT.001).
    pub path: PathBuf,
    /// Also require that the signer is this key (repeatable).
    #[arg(long, value_name = "K.pub")]
    pub trust: Vec<PathBuf>,
}

/// Flags of `keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Writes OUT.key (private, mode 0600) and OUT.pub.
    #[arg(long, value_name = "K")]
    pub out: PathBuf,
}

fn data_dir(config: &mut Config, flag: Option<PathBuf>) {
    if let Some(d) = flag {
        config.server.data_dir = d;
    }
}

fn trust(paths: &[PathBuf]) -> anyhow::Result<Vec<ed25519_dalek::VerifyingKey>> {
    Ok(paths
        .iter()
        .map(|p| keys::read_public(p))
        .collect::<Result<_, _>>()?)
}

/// Runs `export`.
pub fn export(mut config: Config, a: ExportArgs) -> anyhow::Result<ExitCode> {
    data_dir(&mut config, a.data_dir);
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
    for o in &r.outputs {
        println!("wrote: {}", o.display());
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
    Ok(ExitCode::SUCCESS)
}

/// Runs `import`.
pub fn import(mut config: Config, a: ImportArgs) -> anyhow::Result<ExitCode> {
    data_dir(&mut config, a.data_dir);
    let opts = ImportOptions {
        trust: trust(&a.trust)?,
    };
    let store = transfer::open_store_offline(&config.store_dir())?;
    let staging = config.server.data_dir.join("import-staging");
    let r = transfer::import(&store, &config.content_dir(), &staging, &a.path, &opts)
        .context("import")?;
    if r.rolled_forward > 0 {
        println!(
            "finished {} interrupted earlier import(s)",
            r.rolled_forward
        );
    }
    println!("signer: {}", r.signer);
    println!("revisions: {}", r.revisions);
    println!(
        "files: {} copied ({} bytes), {} already verified, {} payloads already in the cache",
        r.copied, r.bytes_copied, r.resumed, r.already_present
    );
    println!("payloads published: {}", r.published);
    if let Some(b) = &r.base_anchor {
        println!("base anchor: {b}");
    }
    println!("anchor: {}", r.anchor);
    Ok(ExitCode::SUCCESS)
}

/// Runs `verify-package`.
pub fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let r = transfer::verify_package(&a.path, &trust(&a.trust)?).context("verify-package")?;
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
    println!("private key: {}", k.display());
    println!("public key: {}", p.display());
    println!("fingerprint: {}", keys::fingerprint(&kp.public()));
    Ok(ExitCode::SUCCESS)
}
