//! The POP3 listener's brute-force brake, handed to other ways of signing in (the account
//! page) so that their failures and POP3's count together: one guesser cannot get twice the
//! attempts by splitting them between the two doors.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use postie_metrics::METRICS;

use crate::login_policy::{BrakeSettings, FailureBrake, LoginRecords, LoginRecordsError};

/// The brake and the login records of a POP3 server, shared.
#[derive(Clone)]
pub struct LoginBrake {
    pub(crate) brake: Arc<FailureBrake>,
    pub(crate) records: Arc<dyn LoginRecords>,
    /// Taken when the listener was bound: `[auth]` changes reach the page on a restart.
    pub(crate) settings: BrakeSettings,
}

impl LoginBrake {
    /// Counts an attempt by `client` for the user name `user` as POP3's `finish_login` does,
    /// and waits the delay the brake asks for, right or wrong alike: a failure is counted
    /// before the wait, a success afterwards lowers the counts. Records that cannot be
    /// reached fail the attempt, so the brake cannot be skipped.
    pub async fn hold(
        &self,
        client: IpAddr,
        user: &str,
        succeeded: bool,
    ) -> Result<(), LoginRecordsError> {
        let network = self.settings.network_of(client);
        let trusted = self.settings.trusted_networks.contains(client);
        let history = match succeeded {
            false => {
                self.brake.failed(Instant::now());
                self.records.record_failure(network, Some(user)).await?
            }
            true => self.records.history(network, Some(user)).await?,
        };
        let delay = self
            .brake
            .delay(history, trusted, &self.settings, Instant::now());
        if !delay.is_zero() {
            METRICS.auth_delays.add(1);
            METRICS
                .auth_delay_ms
                .add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
            tokio::time::sleep(delay).await;
        }
        if succeeded {
            self.records.record_success(network, user).await?;
        }
        Ok(())
    }
}
