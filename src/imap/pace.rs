//! A pause shared by every session of one account: no command is sent
//! before it ends. The throttle governor sets it when the server asks to
//! slow down (`exec/governor.rs`); the transport only obeys, so a
//! connection in the middle of a long transfer holds back too, not just
//! the one that was refused.

use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Cloning shares the pause (one per account, given to each session
/// through its `ServerConfig`).
#[derive(Debug, Clone, Default)]
pub struct Pace(Arc<Mutex<Option<Instant>>>);

impl Pace {
    /// Holds every session back until `t` (a later pause wins).
    pub fn hold_until(&self, t: Instant) {
        let mut p = self.0.lock().unwrap();
        if p.is_none_or(|old| old < t) {
            *p = Some(t);
        }
    }

    /// When sending may go on, if a pause is set and not over.
    pub fn until(&self) -> Option<Instant> {
        self.0.lock().unwrap().filter(|&t| t > Instant::now())
    }

    /// Ends the pause now (the run was interrupted: what is in flight
    /// should finish and be recorded, not wait minutes).
    pub fn release(&self) {
        *self.0.lock().unwrap() = None;
    }

    /// Waits out the pause, if any (looking again every 100 ms, so a
    /// release or a later pause takes effect).
    pub async fn wait(&self) {
        while let Some(t) = self.until() {
            let step = t.saturating_duration_since(Instant::now());
            tokio::time::sleep(step.min(std::time::Duration::from_millis(100))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_pause_holds_every_clone_until_released() {
        let p = Pace::default();
        assert!(p.until().is_none());
        let clone = p.clone();
        p.hold_until(Instant::now() + Duration::from_secs(3600));
        // A shorter pause does not shorten a longer one.
        p.hold_until(Instant::now() + Duration::from_secs(1));
        assert!(
            clone
                .until()
                .is_some_and(|t| t > Instant::now() + Duration::from_secs(60))
        );
        let waiter = tokio::spawn(async move { clone.wait().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        p.release();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the release ends the wait")
            .unwrap();
    }
}
