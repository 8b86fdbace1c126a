//! The `switchboard` command: `serve` runs the server (embedded defaults, no file needed),
//! `publish` and `subscribe` talk to a running server, `token` mints development tokens,
//! `config check|init` manage the configuration file.

mod cli;
mod remote;
mod serve;
mod store;
mod token;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
