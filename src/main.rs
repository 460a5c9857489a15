//! The `goatview` binary: parse the command line, set up logging, dispatch. The library
//! holds everything else, so tests and benchmarks drive the same code.

use clap::Parser;
use goatview::cli::{Cli, Command};
use goatview::cmd;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    goatview::telemetry::init(&cli.log);
    match cli.command {
        Command::Replay(args) => cmd::replay::run(args, cli.now),
        Command::DeadLetters(args) => cmd::dead_letters::run(args),
        Command::Gen(args) => cmd::generate::run(args, cli.now),
        Command::Produce(args) => cmd::produce::run(args),
        Command::Bench(args) => cmd::bench::run(args, cli.now),
        Command::Serve(args) => runtime(&args.http)?.block_on(cmd::serve::run(args, cli.now)),
        Command::Demo(args) => runtime(&args.http)?.block_on(cmd::demo::run(args, cli.now)),
    }
}

/// `--max-query-threads` split in two: half for the long answers (`api::lane`), the rest
/// for the short ones on tokio's blocking threads (`spawn_blocking`).
fn runtime(http: &goatview::cli::HttpArgs) -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let query_threads = http.max_query_threads.map_or(2 * cores, |n| n as usize);
    let long = (query_threads / 2).max(1);
    goatview::api::lane::set_threads(long);
    let short = query_threads.saturating_sub(long).max(1);
    tokio::runtime::Builder::new_multi_thread().max_blocking_threads(short).enable_all().build()
}
