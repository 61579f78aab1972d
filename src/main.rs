use clap::Parser;

fn main() {
    let cli = mailferry::cli::Cli::parse();
    let code = mailferry::app::run(cli);
    std::process::exit(code as i32);
}
