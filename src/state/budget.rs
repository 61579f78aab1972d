//! The ledger behind daily transfer budgets: bytes per budget, direction
//! and UTC hour. The governor (`exec/governor.rs`) reads the last day's
//! hours and writes what it reserves before a transfer and gives back
//! what it did not use after, each in its own transaction.

use rusqlite::params;

use super::State;
use crate::error::Result;

/// One hour's spending: the hour (unix seconds / 3600) and its bytes.
pub type HourSpend = (i64, u64);

impl State {
    /// The hours of `budget`/`direction` from `from_hour` on, oldest first.
    pub fn budget_hours(
        &self,
        budget: &str,
        direction: &str,
        from_hour: i64,
    ) -> Result<Vec<HourSpend>> {
        let mut st = self.conn.prepare_cached(
            "SELECT hour, bytes FROM budget_usage
             WHERE budget = ?1 AND direction = ?2 AND hour >= ?3 AND bytes > 0
             ORDER BY hour",
        )?;
        let rows = st
            .query_map(params![budget, direction, from_hour], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Adds `bytes` (negative: gives back) to `hour`, never below 0, and
    /// drops hours older than two days.
    pub fn budget_add(
        &mut self,
        budget: &str,
        direction: &str,
        hour: i64,
        bytes: i64,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO budget_usage (budget, direction, hour, bytes) VALUES (?1, ?2, ?3, MAX(?4, 0))
             ON CONFLICT (budget, direction, hour) DO UPDATE SET bytes = MAX(bytes + ?4, 0)",
        )?
        .execute(params![budget, direction, hour, bytes])?;
        tx.prepare_cached("DELETE FROM budget_usage WHERE hour < ?1")?
            .execute([hour - 48])?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_add_up_give_back_and_expire() {
        let t = tempfile::tempdir().unwrap();
        let mut st = State::open(&t.path().join("s.db")).unwrap();
        st.budget_add("gmail:a", "download", 100, 500).unwrap();
        st.budget_add("gmail:a", "download", 100, 250).unwrap();
        st.budget_add("gmail:a", "download", 101, 10).unwrap();
        st.budget_add("gmail:a", "upload", 101, 7).unwrap();
        st.budget_add("gmail:a", "download", 101, -40).unwrap();
        assert_eq!(
            st.budget_hours("gmail:a", "download", 0).unwrap(),
            vec![(100, 750)]
        );
        assert_eq!(
            st.budget_hours("gmail:a", "upload", 0).unwrap(),
            vec![(101, 7)]
        );
        assert!(
            st.budget_hours("gmail:b", "download", 0)
                .unwrap()
                .is_empty()
        );
        // A write two days later forgets the old hours.
        st.budget_add("gmail:a", "download", 160, 1).unwrap();
        assert_eq!(
            st.budget_hours("gmail:a", "download", 0).unwrap(),
            vec![(160, 1)]
        );
    }
}
