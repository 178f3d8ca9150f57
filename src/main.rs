//! The `deidgate` binary.

use clap::Parser;
use deidgate::cli::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    deidgate::allocator::keep_freed_memory();
    // dicom-rs returns errors on ordinary paths (the end of a data set), and
    // with RUST_BACKTRACE set each one would capture a backtrace (about 1.5 %
    // of the gateway's CPU). Library backtraces stay off unless asked for
    // with RUST_LIB_BACKTRACE; panics still print theirs.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("DEIDGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let sub = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => sub.json().init(),
        LogFormat::Text => sub.init(),
    }
    match deidgate::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
