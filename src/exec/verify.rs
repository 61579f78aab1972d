//! `verify`: placeholder until written below.
use super::Ctx;
use crate::config::VerifyJob;
use crate::error::{Error, Result};

pub async fn run(_job: &VerifyJob, _ctx: &Ctx<'_>) -> Result<()> {
    Err(Error::NotImplemented("verify"))
}
