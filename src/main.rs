//! The `wsus-edge` binary: parse the command line, set up logging, run the verb.

use clap::Parser;
use tracing_subscriber::EnvFilter;
use wsus_edge::cli::{self, Cli};

fn main() -> std::process::ExitCode {
    wsus_edge::store::limit_malloc_arenas();
    let cli = Cli::parse();
    let filter = cli.log.clone().map(EnvFilter::new).unwrap_or_else(|| {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line for expected failures; the chain joined on the same line.
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("wsus-edge: {}", msg.join(": "));
            std::process::ExitCode::FAILURE
        }
    }
}
