use clap::Parser;

/// glibc's allocator took about a fifth of the server's CPU under single-event load (perf); mimalloc is much
/// cheaper for the many small, short-lived allocations of request handling.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use billstream::config::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    billstream::telemetry::init_logging(&cli.config.log);
    match billstream::run::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("billstream: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
