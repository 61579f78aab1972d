//! Backpressure by bytes: one budget for the message bodies a process holds
//! in memory, whatever the number of connections, folders or accounts.
//!
//! Channels bound messages by count, and a count says nothing about bytes:
//! forty 5 MB attachments queued behind a slow disk are 200 MB. So the
//! protocol readers take a [`Lease`] on a body's size *before* they read its
//! bytes off the socket (an IMAP literal's `{n}`, a POP3 `+OK n octets`),
//! and the lease travels with the body until it is written to disk or sent
//! on; dropping it gives the bytes back. When the budget is spent, readers
//! wait and the kernel's socket buffers hold the rest. Peak memory is then
//! the budget plus the one message that is larger than it.
//!
//! A lease is never larger than the whole budget, so a message bigger than
//! the budget waits until everything else is back and then goes alone:
//! no reader can wait for bytes that it holds itself. And no reader waits
//! longer than [`WAIT_LIMIT`]: a consumer that keeps bodies (a test, a
//! caller collecting messages) or a disk stalled for seconds then costs
//! memory beyond the budget, never a hang. The budget bounds memory in
//! practice; only progress is guaranteed.

use std::sync::{Arc, OnceLock};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Accounting unit: leases are rounded up to whole KiB.
const UNIT: usize = 1024;

/// The longest a reader waits for bytes before it reads anyway.
pub const WAIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The process's default budget: enough for every connection to keep its
/// socket busy (a few MB each) and for the writer's batch in flight.
pub const DEFAULT_BUDGET: usize = 16 << 20;

/// A budget of body bytes shared by every reader that holds a clone.
#[derive(Clone, Debug)]
pub struct Budget {
    sem: Arc<Semaphore>,
    units: u32,
}

/// Bytes taken from a [`Budget`]; given back when dropped. A clone holds
/// nothing (it is the original that accounts for the memory), and leases
/// never compare unequal, so values carrying one keep their `Clone`/`Eq`.
#[derive(Default)]
pub struct Lease {
    permit: Option<OwnedSemaphorePermit>,
}

impl Budget {
    /// A budget of `bytes` (at least one unit).
    pub fn new(bytes: usize) -> Budget {
        let units = bytes.div_ceil(UNIT).clamp(1, u32::MAX as usize) as u32;
        Budget {
            sem: Arc::new(Semaphore::new(units as usize)),
            units,
        }
    }

    /// Waits until `bytes` are free (at most the whole budget), then takes
    /// them. `held` is what the caller already holds for the same unit of
    /// work (one response with several literals): together they never ask
    /// for more than the budget, or the caller would wait for itself.
    pub async fn lease(&self, bytes: usize, held: &[Lease]) -> Lease {
        let have: u32 = held.iter().map(Lease::units).sum();
        let want = (bytes.div_ceil(UNIT) as u64).min(self.units.saturating_sub(have) as u64) as u32;
        if want == 0 {
            return Lease::default();
        }
        // The semaphore is never closed, so acquiring cannot fail; past
        // the wait limit the bytes are read without a lease.
        let acquire = self.sem.clone().acquire_many_owned(want);
        match tokio::time::timeout(WAIT_LIMIT, acquire).await {
            Ok(p) => Lease { permit: p.ok() },
            Err(_) => Lease::default(),
        }
    }

    /// Bytes not leased out now.
    pub fn available(&self) -> usize {
        self.sem.available_permits() * UNIT
    }
}

impl Lease {
    fn units(&self) -> u32 {
        self.permit.as_ref().map_or(0, |p| p.num_permits() as u32)
    }

    /// Bytes this lease holds.
    pub fn bytes(&self) -> usize {
        self.units() as usize * UNIT
    }

    /// One lease holding both (a message read in several parts).
    pub fn merge(mut self, other: Lease) -> Lease {
        match (&mut self.permit, other.permit) {
            (Some(a), Some(b)) => a.merge(b),
            (None, b) => self.permit = b,
            (Some(_), None) => {}
        }
        self
    }
}

impl Clone for Lease {
    fn clone(&self) -> Lease {
        Lease::default()
    }
}

impl PartialEq for Lease {
    fn eq(&self, _: &Lease) -> bool {
        true
    }
}

impl Eq for Lease {}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lease({} bytes)", self.bytes())
    }
}

/// The process-wide budget every reader uses unless given another.
/// `MAILFERRY_MEMORY_BUDGET` (bytes) overrides the default, for tests and
/// for machines with memory to spare.
pub fn global() -> &'static Budget {
    static GLOBAL: OnceLock<Budget> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let bytes = std::env::var("MAILFERRY_MEMORY_BUDGET")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_BUDGET);
        Budget::new(bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn leases_wait_for_bytes_and_give_them_back_when_dropped() {
        let b = Budget::new(10 * UNIT);
        let a = b.lease(6 * UNIT, &[]).await;
        assert_eq!(b.available(), 4 * UNIT);
        // 6 more do not fit until `a` is dropped.
        let b2 = b.clone();
        let waiting = tokio::spawn(async move { b2.lease(6 * UNIT, &[]).await.bytes() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "leased beyond the budget");
        drop(a);
        assert_eq!(waiting.await.unwrap(), 6 * UNIT);
        assert_eq!(b.available(), 10 * UNIT);
    }

    #[tokio::test]
    async fn a_message_larger_than_the_budget_takes_all_of_it_and_never_waits_on_itself() {
        let b = Budget::new(8 * UNIT);
        let big = b.lease(100 * UNIT, &[]).await;
        assert_eq!(big.bytes(), 8 * UNIT);
        // A second literal of the same response gets what is left: none.
        let more = tokio::time::timeout(
            Duration::from_secs(5),
            b.lease(3 * UNIT, std::slice::from_ref(&big)),
        )
        .await
        .expect("waited on its own lease");
        assert_eq!(more.bytes(), 0);
        let both = big.merge(more);
        assert_eq!(both.bytes(), 8 * UNIT);
        assert_eq!(b.available(), 0);
        drop(both);
        assert_eq!(b.available(), 8 * UNIT);
        assert_eq!(Lease::default().clone().bytes(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_whose_bytes_never_come_back_goes_on_after_the_wait_limit() {
        let b = Budget::new(4 * UNIT);
        let kept = b.lease(4 * UNIT, &[]).await; // a consumer that keeps it
        let over = b.lease(UNIT, &[]).await; // waits WAIT_LIMIT (paused clock)
        assert_eq!(over.bytes(), 0, "read without a lease");
        assert_eq!(kept.bytes(), 4 * UNIT);
    }
}
