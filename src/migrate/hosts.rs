//! The per-host connection cap shared by every account of a migrate run
//! (`--per-host-connections`): a provider that allows 20 connections per
//! client address sees at most 20, however many accounts run at once.
//!
//! An account reserves all the connections it may open, on every host it
//! talks to, before it starts, and gives them back when it ends. Reserving
//! up front rather than per connection is what keeps this deadlock-free:
//! an account never holds some connections while waiting for others in
//! the middle of a copy. Hosts are reserved in name order (a `BTreeMap`),
//! so two accounts needing the same two hosts cannot each hold one and
//! wait for the other. Hosts are compared by lowercased name, not port:
//! IMAP on 993 and 143 of one server are one server's limit.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One semaphore per host, created on first use.
pub struct HostLimits {
    cap: u32,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// What an account holds while it runs; dropping it frees the connections.
pub struct Reservation {
    _permits: Vec<OwnedSemaphorePermit>,
}

impl HostLimits {
    pub fn new(cap: u32) -> HostLimits {
        HostLimits {
            cap: cap.max(1),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// The cap per host.
    pub fn cap(&self) -> u32 {
        self.cap
    }

    /// Waits until `needs` (host → connections, each at most the cap) are
    /// free together, in host name order.
    pub async fn reserve(&self, needs: &BTreeMap<String, u32>) -> Reservation {
        let mut permits = Vec::with_capacity(needs.len());
        for (host, &n) in needs {
            let sem = self
                .hosts
                .lock()
                .unwrap()
                .entry(host.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.cap as usize)))
                .clone();
            // The semaphore is never closed, so acquiring cannot fail.
            if let Ok(p) = sem.acquire_many_owned(n.min(self.cap)).await {
                permits.push(p);
            }
        }
        Reservation { _permits: permits }
    }

    /// Connections free on `host` now (tests).
    pub fn available(&self, host: &str) -> usize {
        self.hosts
            .lock()
            .unwrap()
            .get(host)
            .map_or(self.cap as usize, |s| s.available_permits())
    }
}

/// The host key of a server URL's host.
pub fn host_key(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reservations_respect_the_cap_and_do_not_deadlock() {
        let limits = Arc::new(HostLimits::new(4));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let inuse = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..40u32 {
            let (limits, peak, inuse) = (limits.clone(), peak.clone(), inuse.clone());
            tasks.push(tokio::spawn(async move {
                // Half go a→b, half b→a: opposite orders would deadlock
                // without the sorted reservation.
                let mut needs = BTreeMap::new();
                needs.insert(if i % 2 == 0 { "a" } else { "b" }.to_string(), 2);
                needs.insert(if i % 2 == 0 { "b" } else { "a" }.to_string(), 2);
                let _r = limits.reserve(&needs).await;
                use std::sync::atomic::Ordering::SeqCst;
                let now = inuse.fetch_add(2, SeqCst) + 2;
                peak.fetch_max(now, SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                inuse.fetch_sub(2, SeqCst);
            }));
        }
        let all = futures_util::future::join_all(tasks);
        tokio::time::timeout(Duration::from_secs(20), all)
            .await
            .expect("deadlock");
        assert!(peak.load(std::sync::atomic::Ordering::SeqCst) <= 4);
        assert_eq!(limits.available("a"), 4);
        assert_eq!(host_key("IMAP.Example.com."), "imap.example.com");
    }
}
