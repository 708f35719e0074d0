use clap::Parser;

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
