//! The `wsus-edge` binary: parse the command line, set up logging, run the verb.

use clap::Parser;
use wsus_edge::cli::{self, Cli, Command};
use wsus_edge::config::{Config, LogFormat};

fn main() -> std::process::ExitCode {
    wsus_edge::store::limit_malloc_arenas();
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Serve(_) | Command::Demo(_) | Command::SimulateUpstream(_)
    ) {
        // A client verb whose output pipe closes (`--json | head`) ends quietly like other
        // Unix tools instead of panicking in println!. The server keeps SIGPIPE ignored:
        // its sockets report EPIPE as an error.
        // SAFETY: restoring the default disposition of one signal before any thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // `--log-format`, else `[log] format` (a config error is reported by the verb itself).
    let format = cli.log_format.unwrap_or_else(|| {
        Config::load(cli.config_path().as_deref())
            .map(|c| c.log.format)
            .unwrap_or(LogFormat::Text)
    });
    wsus_edge::logging::init(format, cli.log.as_deref());
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line for expected failures; the whole chain of causes on the same line.
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("wsus-edge: {}", msg.join(": "));
            std::process::ExitCode::FAILURE
        }
    }
}
