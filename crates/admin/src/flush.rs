//! Read-your-writes for admin reads: queued usage is written before a report.

use sheepdog_core::state::AppState;

use crate::error::AdminError;

/// How long an admin read waits for queued usage to be written first.
pub const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Writes the usage queued so far before a read (read-your-writes), or
/// answers 503 `database_unavailable` at once when the accounting writer
/// cannot write (it keeps the records and retries) or does not finish
/// within [`FLUSH_WAIT`].
pub async fn flush_usage(state: &AppState) -> Result<(), AdminError> {
    let accountant = state.accountant();
    if accountant.is_failing() || !accountant.flush_within(FLUSH_WAIT).await {
        return Err(AdminError::Unavailable(anyhow::anyhow!(
            "usage records are queued: the accounting writer cannot write to the database"
        )));
    }
    Ok(())
}
