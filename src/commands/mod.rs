//! Commands that stand beside the copy spine: `check` (a doctor for one
//! account) and `status` (what the state knows).

pub mod check;
pub mod status;
