//! Man pages and shell completions, rendered from the clap definition so
//! they can never drift from the binary (a test compares them with `man/`
//! and `completions/`).

use std::path::PathBuf;

use clap::CommandFactory;

use crate::cli::Cli;

/// Every generated file as (path relative to the repository root, bytes).
pub fn render() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let cmd = Cli::command();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut buf)
        .expect("render man page");
    out.push((PathBuf::from("man/mailferry.1"), buf));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("mailferry-{}", sub.get_name());
        // clap wants 'static names; this runs once per generation.
        let name: &'static str = Box::leak(name.into_boxed_str());
        let sub = sub.clone().name(name).version(env!("CARGO_PKG_VERSION"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(sub)
            .render(&mut buf)
            .expect("render man page");
        out.push((PathBuf::from(format!("man/{name}.1")), buf));
    }
    use clap_complete::Shell;
    for (shell, file) in [
        (Shell::Bash, "completions/mailferry.bash"),
        (Shell::Zsh, "completions/_mailferry"),
        (Shell::Fish, "completions/mailferry.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "mailferry", &mut buf);
        out.push((PathBuf::from(file), buf));
    }
    out
}

/// Writes the generated files below `root`.
pub fn write_all(root: &std::path::Path) -> std::io::Result<()> {
    for (rel, bytes) in render() {
        let p = root.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(p, bytes)?;
    }
    Ok(())
}
