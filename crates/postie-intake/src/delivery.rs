//! The delivery pipeline shared by the three doors: resolve the recipient, check the quota,
//! put the trace headers on top of the spooled body and hand it to the store, whose delivery
//! is durable (tmp/, fsync, rename into new/, fsync) before it returns. Every call blocks.

use std::io::Read;

use postie_auth::{UserDb, UserRecord};
use postie_metrics::METRICS;
use postie_proto::smtp::DeliveryError;
use postie_store::{MailStore, StoreError};
use tracing::{info, warn};

use crate::quota::Quota;
use crate::recipient::{login_name, Door};
use crate::spool::Spooled;

/// What the configuration says about local delivery.
#[derive(Debug, Clone, Default)]
pub struct DeliveryPolicy {
    /// Domains whose mail is local; SMTP accepts no other.
    pub domains: Vec<String>,
    /// The quota of users whose passwd-file line sets none.
    pub quota: Quota,
    /// Over quota is a temporary failure (the sender retries) rather than a permanent one.
    pub quota_tempfail: bool,
}

/// Delivers into a store for the users of a user database.
#[derive(Debug)]
pub struct Deliverer<S, U> {
    store: S,
    users: U,
    policy: DeliveryPolicy,
}

impl<S: MailStore, U: UserDb> Deliverer<S, U> {
    pub fn new(store: S, users: U, policy: DeliveryPolicy) -> Self {
        Deliverer {
            store,
            users,
            policy,
        }
    }

    /// The local user an address delivers to. `declared_size` (MAIL's SIZE) lets a user who
    /// is over quota already be refused at RCPT, before the body is sent.
    pub fn resolve(
        &self,
        address: &[u8],
        door: Door,
        declared_size: Option<u64>,
    ) -> Result<String, DeliveryError> {
        let name = login_name(address, door, &self.policy.domains)?;
        let record = self.lookup(&name)?;
        if let Some(size) = declared_size {
            self.check_quota(&record, size)?;
        }
        Ok(record.name)
    }

    /// Delivers `headers` followed by the spooled body to `user`; logs one line and counts
    /// one delivery, whatever the outcome.
    pub fn deliver(&self, user: &str, headers: &[u8], body: &Spooled) -> Result<(), DeliveryError> {
        let size = headers.len() as u64 + body.len();
        let result = self.attempt(user, headers, body, size);
        let outcome = match &result {
            Ok(()) => "delivered",
            Err(DeliveryError::UnknownUser) => "unknown_user",
            Err(DeliveryError::OverQuota { .. }) => "over_quota",
            Err(DeliveryError::Temporary) => "temporary_failure",
            Err(_) => "permanent_failure",
        };
        METRICS.deliveries.inc([outcome]);
        match &result {
            Ok(()) => info!(%user, size, outcome, "delivery"),
            Err(_) => warn!(%user, size, outcome, "delivery"),
        }
        result
    }

    fn attempt(
        &self,
        user: &str,
        headers: &[u8],
        body: &Spooled,
        size: u64,
    ) -> Result<(), DeliveryError> {
        let record = self.lookup(user)?;
        self.check_quota(&record, size)?;
        let mut message = headers.chain(body.reader());
        self.store
            .deliver(&record.name, &mut message)
            .map_err(|error| {
                warn!(user = %record.name, %error, "the store refused the delivery");
                store_failure(&error)
            })
    }

    /// The user named exactly so, or else in lower case (mail addresses are written in any
    /// case; login names are lower case nearly everywhere).
    fn lookup(&self, name: &str) -> Result<UserRecord, DeliveryError> {
        let lower = name.to_ascii_lowercase();
        for candidate in [name, &lower] {
            match self.users.lookup(candidate) {
                Ok(Some(record)) => return Ok(record),
                Ok(None) => {}
                Err(error) => {
                    warn!(user = candidate, %error, "user lookup failed");
                    return Err(DeliveryError::Temporary);
                }
            }
        }
        Err(DeliveryError::UnknownUser)
    }

    fn check_quota(&self, record: &UserRecord, size: u64) -> Result<(), DeliveryError> {
        let quota = Quota::for_user(self.policy.quota, &record.extra).map_err(|error| {
            warn!(user = %record.name, %error, "bad quota rule in the passwd-file");
            DeliveryError::Temporary
        })?;
        if quota == Quota::default() {
            return Ok(());
        }
        let usage = self.store.usage(&record.name).map_err(|error| {
            warn!(user = %record.name, %error, "cannot measure the maildrop for its quota");
            store_failure(&error)
        })?;
        if quota.exceeded_by(usage, size) {
            info!(user = %record.name, size, used = usage.bytes, messages = usage.messages, "over quota");
            return Err(DeliveryError::OverQuota {
                temporary: self.policy.quota_tempfail,
            });
        }
        Ok(())
    }
}

/// The one mapping from storage failures to delivery answers: only what retrying cannot fix
/// is permanent; anything else (I/O errors, a full disk, a lock) asks the sender to retry.
fn store_failure(error: &StoreError) -> DeliveryError {
    match error {
        StoreError::Permanent(_) => DeliveryError::Permanent,
        StoreError::OverQuota(_) => DeliveryError::OverQuota { temporary: true },
        StoreError::InUse | StoreError::Vanished(_) | StoreError::Temporary(_) => {
            DeliveryError::Temporary
        }
    }
}
