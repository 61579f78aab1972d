//! Ctrl-C / SIGTERM handling: the first signal asks every worker to stop
//! at the next message boundary, so what is durable gets recorded and the
//! run exits 130 with the state consistent; a rerun continues.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A shared "please stop" flag, checked between messages.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Installs SIGINT and SIGTERM handlers on the current tokio runtime.
    pub fn install() -> Interrupt {
        let flag = Interrupt::default();
        let f = flag.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            f.0.store(true, Ordering::SeqCst);
        });
        flag
    }

    /// True once a signal arrived.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Err(Interrupted) once a signal arrived: `interrupt.check()?` between steps.
    pub fn check(&self) -> crate::Result<()> {
        if self.is_set() {
            Err(crate::Error::Interrupted)
        } else {
            Ok(())
        }
    }

    /// Raises the flag (tests, and fatal errors that should stop siblings).
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
