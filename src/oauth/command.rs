//! The user's commands that OAuth2 runs: `token_store_command`,
//! `oauth2_client_secret_command` and `oauth2_token_command`. Each runs
//! under `sh -c`, with a time limit, and its failure names the account and
//! the setting, never what it printed.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

/// How long a command may take: a keyring or `pass` may ask for a
/// passphrase first.
const LIMIT: Duration = Duration::from_secs(120);

/// Runs `sh -c 'CMD "$@"' sh ARGS...` with `input` on stdin (else none)
/// and `MAILFERRY_ACCOUNT=who` in its environment; returns its stdout.
/// `what` names the setting in errors (exit 2).
pub async fn run(
    cmd: &str,
    args: &[&str],
    input: Option<String>,
    who: &str,
    what: &str,
) -> Result<String> {
    let failed = |why: String| Error::Usage(format!("{who}: {what}: {why}"));
    let script = if args.is_empty() {
        cmd.to_string()
    } else {
        format!("{cmd} \"$@\"")
    };
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .env("MAILFERRY_ACCOUNT", who)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("could not start: {e}")))?;
    let stdin = child.stdin.take();
    let work = async {
        if let (Some(text), Some(mut stdin)) = (input, stdin) {
            stdin.write_all(text.as_bytes()).await?;
            stdin.write_all(b"\n").await?;
        }
        child.wait_with_output().await
    };
    let out = match tokio::time::timeout(LIMIT, work).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(failed(e.to_string())),
        Err(_) => return Err(failed(format!("no answer in {} s", LIMIT.as_secs()))),
    };
    if !out.status.success() {
        return Err(failed(format!("failed ({})", out.status)));
    }
    String::from_utf8(out.stdout).map_err(|_| failed("printed non-UTF-8".into()))
}

/// The first line of a command's output, which must not be empty.
pub fn first_line(out: &str, who: &str, what: &str) -> Result<String> {
    let line = out.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Err(Error::Usage(format!("{who}: {what} printed nothing")));
    }
    Ok(line.to_string())
}
