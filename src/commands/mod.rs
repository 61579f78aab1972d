//! Commands that stand beside the copy spine: `check` (a doctor for one
//! account), `login` (OAuth2 sign-in) and `status` (what the state knows).

pub mod check;
pub mod login;
pub mod status;
