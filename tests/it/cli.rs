//! Running the real `mailferry` binary, as users and cron do: a clean
//! environment (no user config, state in a temp dir), stdin closed.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The output of one run, with the exit code.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout parsed as JSON lines.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect()
    }
}

/// A sandbox for runs: its own HOME/XDG dirs and state file.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn state(&self) -> PathBuf {
        self.path("state/state.db")
    }

    /// A command with the sandbox's environment and `MAILFERRY_PASSWORD`.
    pub fn cmd(&self, password: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mailferry"));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_STATE_HOME", self.path("xdgstate"))
            .env("MAILFERRY_STATE", self.state())
            .env("MAILFERRY_PASSWORD", password)
            .stdin(std::process::Stdio::null());
        c
    }

    /// Runs `mailferry ARGS` and collects the outcome.
    pub fn run(&self, password: &str, args: &[&str]) -> Run {
        let out = self
            .cmd(password)
            .args(args)
            .output()
            .expect("run mailferry");
        to_run(out)
    }
}

pub fn to_run(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
