use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = leakguard::cli::Cli::parse();
    std::process::exit(leakguard::cli::run(cli).await);
}
