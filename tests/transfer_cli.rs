//! The real binary: keygen, export (directory and volumes) checked with `sha256sum -c`,
//! `tar` and `openssl`, verify-package with --trust, one-line failures, the lock of a held
//! data dir, and kill -9 during an import followed by a re-run that completes.

#[path = "support/transfer_fixtures.rs"]
mod transfer_fixtures;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use transfer_fixtures::*;
use wsus_edge::store::Store;

fn bin(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wsus-edge"));
    c.current_dir(cwd).env_remove("RUST_LOG");
    c
}

fn run(cwd: &Path, args: &[&str]) -> Output {
    bin(cwd).args(args).output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts a failure whose message (the last stderr line) names `needle`.
fn fails(o: &Output, needle: &str) {
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("wsus-edge: ") && last.contains(needle),
        "stderr: {err}"
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn anchor_of(stdout: &str) -> String {
    let last = stdout.lines().last().unwrap();
    last.strip_prefix("anchor: ")
        .expect("last line is the anchor")
        .to_string()
}

#[test]
fn keygen_export_check_with_standard_tools_and_verify() {
    let t = tempfile::tempdir().unwrap();
    let w = t.path();
    let src = w.join("src");
    seed_catalog(&src, 80, 2);
    let out = ok(&run(w, &["keygen", "--out", "site"]));
    assert!(out.contains("fingerprint: ed25519:"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(w.join("site.key")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    fails(&run(w, &["keygen", "--out", "site"]), "site.key");

    let out = ok(&run(
        w,
        &[
            "export",
            "--out",
            "pkg",
            "--full",
            "--sign",
            "site.key",
            "--data-dir",
            s(&src),
        ],
    ));
    let anchor = anchor_of(&out);
    assert!(anchor.starts_with("wse1."));

    // sha256sum -c over the package root.
    let sums = Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(w.join("pkg"))
        .output()
        .unwrap();
    assert!(
        sums.status.success(),
        "{}",
        String::from_utf8_lossy(&sums.stdout)
    );
    // openssl checks the signature with the embedded signer.pub.
    if let Ok(o) = Command::new("openssl")
        .args([
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "signer.pub",
            "-rawin",
            "-in",
            "manifest.json",
            "-sigfile",
            "manifest.sig",
        ])
        .current_dir(w.join("pkg"))
        .output()
    {
        assert!(
            o.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert_eq!(
        std::fs::read(w.join("pkg/signer.pub")).unwrap(),
        std::fs::read(w.join("site.pub")).unwrap()
    );

    let v = ok(&run(w, &["verify-package", "pkg", "--trust", "site.pub"]));
    assert!(v.contains("package OK") && v.contains(&anchor), "{v}");
    ok(&run(w, &["keygen", "--out", "other"]));
    fails(
        &run(w, &["verify-package", "pkg", "--trust", "other.pub"]),
        "not a trusted key",
    );

    // Volumes: every one is a plain tar; extracted and pieces joined, sha256sum -c passes.
    let out = ok(&run(
        w,
        &[
            "export",
            "--out",
            "vol",
            "--volume-size",
            "64KiB",
            "--sign",
            "site.key",
            "--data-dir",
            s(&src),
        ],
    ));
    assert!(anchor_of(&out).starts_with("wse1."));
    let x = w.join("x");
    std::fs::create_dir(&x).unwrap();
    let mut n = 1;
    while w.join(format!("vol.{n:03}")).exists() {
        let o = Command::new("tar")
            .arg("xf")
            .arg(w.join(format!("vol.{n:03}")))
            .current_dir(&x)
            .output()
            .unwrap();
        assert!(o.status.success());
        n += 1;
    }
    assert!(n > 3);
    let join = Command::new("sh")
        .arg("-c")
        .arg("for f in $(find . -name '*.part-001'); do b=${f%.part-001}; cat \"$b\".part-* > \"$b\" && rm \"$b\".part-*; done")
        .current_dir(&x)
        .status()
        .unwrap();
    assert!(join.success());
    let sums = Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(&x)
        .output()
        .unwrap();
    assert!(
        sums.status.success(),
        "{}",
        String::from_utf8_lossy(&sums.stdout)
    );
    ok(&run(
        w,
        &["verify-package", "vol.001", "--trust", "site.pub"],
    ));
    fails(&run(w, &["verify-package", "vol.002"]), "vol.002");

    // A data dir held by a running server (here: this process) is refused offline.
    let dst = w.join("dst");
    let held = Store::open(&store_dir(&dst)).unwrap();
    fails(
        &run(w, &["import", "vol.001", "--data-dir", s(&dst)]),
        "held by a running server",
    );
    fails(
        &run(w, &["export", "--out", "nope", "--data-dir", s(&dst)]),
        "held by a running server",
    );
    drop(held);
    let out = ok(&run(
        w,
        &[
            "import",
            "vol.001",
            "--trust",
            "site.pub",
            "--data-dir",
            s(&dst),
        ],
    ));
    assert!(out.lines().last().unwrap().starts_with("anchor: wse1."));
    assert_eq!(content_listing(&src), content_listing(&dst));
}

/// Starts an import that stalls (test hook) at `stall`, waits for it, kills it with SIGKILL.
fn import_killed_at(w: &Path, pkg: &Path, dst: &Path, stall: &str) {
    let mut child = bin(w)
        .args([
            "import",
            s(pkg),
            "--trust",
            "site.pub",
            "--data-dir",
            s(dst),
        ])
        .env(wsus_edge::transfer::import::STALL_ENV, stall)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("import ended before stalling at {stall}")
        };
        if line.contains("stalling") {
            break;
        }
    }
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
}

/// A volume package of a seeded source, signed with `site.key` (made here).
fn package(w: &Path) -> (PathBuf, PathBuf) {
    let src = w.join("src");
    seed_catalog(&src, 60, 1);
    ok(&run(w, &["keygen", "--out", "site"]));
    ok(&run(
        w,
        &[
            "export",
            "--out",
            "pkg",
            "--volume-size",
            "256KiB",
            "--sign",
            "site.key",
            "--data-dir",
            s(&src),
        ],
    ));
    (src, w.join("pkg.001"))
}

#[test]
fn kill_9_while_staging_changes_nothing_and_rerun_resumes() {
    let t = tempfile::tempdir().unwrap();
    let w = t.path();
    let (src, pkg) = package(w);
    let dst = w.join("dst");
    Store::open(&store_dir(&dst)).unwrap();
    let before = fingerprint(&dst);
    import_killed_at(w, &pkg, &dst, "stage:12");
    assert_eq!(
        fingerprint(&dst),
        before,
        "a killed import changed the server"
    );
    let out = ok(&run(
        w,
        &[
            "import",
            s(&pkg),
            "--trust",
            "site.pub",
            "--data-dir",
            s(&dst),
        ],
    ));
    let resumed: usize = out
        .lines()
        .find_map(|l| {
            l.split(", ")
                .nth(1)?
                .strip_suffix(" already verified")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{out}"));
    assert!(resumed >= 12, "{out}");
    assert_eq!(content_listing(&src), content_listing(&dst));
}

#[test]
fn kill_9_while_committing_is_rolled_forward_by_the_rerun() {
    let t = tempfile::tempdir().unwrap();
    let w = t.path();
    let (src, pkg) = package(w);
    let dst = w.join("dst");
    import_killed_at(w, &pkg, &dst, "commit:3");
    let out = ok(&run(
        w,
        &[
            "import",
            s(&pkg),
            "--trust",
            "site.pub",
            "--data-dir",
            s(&dst),
        ],
    ));
    assert!(out.lines().last().unwrap().starts_with("anchor: "));
    assert_eq!(content_listing(&src), content_listing(&dst));
    let (a, b) = (
        Store::open(&store_dir(&src)).unwrap(),
        Store::open(&store_dir(&dst)).unwrap(),
    );
    assert_eq!(
        a.snapshot().unwrap().revisions,
        b.snapshot().unwrap().revisions
    );
    assert_eq!(a.deployments().unwrap(), b.deployments().unwrap());
}

/// Opt-in: `WSUS_EDGE_TEST_SMALL_FS=<dir on a small file system>` (e.g. a 3 MiB tmpfs). The
/// import runs out of space while staging: one line naming the file, nothing changed.
#[test]
fn disk_full_while_staging_changes_nothing() {
    let Ok(small) = std::env::var("WSUS_EDGE_TEST_SMALL_FS") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let w = t.path();
    let (_, pkg) = package(w);
    let dst = tempfile::tempdir_in(small).unwrap();
    let dst = dst.path().join("dst");
    Store::open(&store_dir(&dst)).unwrap();
    let before = fingerprint(&dst);
    let o = run(
        w,
        &[
            "import",
            s(&pkg),
            "--trust",
            "site.pub",
            "--data-dir",
            s(&dst),
        ],
    );
    fails(&o, "import-staging");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("No space left"), "{err}");
    assert_eq!(
        fingerprint(&dst),
        before,
        "a failed import changed the server"
    );
}

/// Issue 15 items 5 and 6 through the binary: no trusted key (neither `--trust` nor
/// `[import] trusted_keys`) refuses the import; the config's list is used when given; an
/// older package is refused until `--allow-older`.
#[test]
fn import_needs_a_trusted_key_and_refuses_older_packages() {
    let t = tempfile::tempdir().unwrap();
    let w = t.path();
    let (src, pkg) = package(w);
    let dst = w.join("dst");
    Store::open(&store_dir(&dst)).unwrap();
    let before = fingerprint(&dst);
    fails(
        &run(w, &["import", s(&pkg), "--data-dir", s(&dst)]),
        "no trusted keys",
    );
    assert_eq!(
        fingerprint(&dst),
        before,
        "a refused import changed the server"
    );
    // `[import] trusted_keys` in the config file stands in for --trust.
    let cfg = w.join("edge.toml");
    std::fs::write(
        &cfg,
        format!("[import]\ntrusted_keys = [{:?}]\n", s(&w.join("site.pub"))),
    )
    .unwrap();
    let first = ok(&run(
        w,
        &[
            "--config",
            s(&cfg),
            "import",
            s(&pkg),
            "--data-dir",
            s(&dst),
        ],
    ));
    // The source moves on; its newer package is imported, then the first one again.
    {
        let store = Store::open(&store_dir(&src)).unwrap();
        store
            .commit_batch(&[extra_revision(4).0], &[], None)
            .unwrap();
    }
    ok(&run(
        w,
        &[
            "export",
            "--out",
            "newer",
            "--sign",
            "site.key",
            "--data-dir",
            s(&src),
        ],
    ));
    ok(&run(
        w,
        &[
            "import",
            "newer",
            "--trust",
            "site.pub",
            "--data-dir",
            s(&dst),
        ],
    ));
    let old_anchor = anchor_of(&first);
    fails(
        &run(
            w,
            &[
                "import",
                s(&pkg),
                "--trust",
                "site.pub",
                "--data-dir",
                s(&dst),
            ],
        ),
        &format!("anchor {old_anchor} is older"),
    );
    ok(&run(
        w,
        &[
            "import",
            s(&pkg),
            "--trust",
            "site.pub",
            "--allow-older",
            "--data-dir",
            s(&dst),
        ],
    ));
}
