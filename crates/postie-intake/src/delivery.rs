//! The delivery pipeline shared by the three doors: resolve the recipient, find its quota,
//! put each recipient's trace headers on top of the spooled body and hand them all to the
//! store in one delivery, which is durable before it returns and checks the quotas itself.

use std::sync::Arc;

use postie_auth::{UserDb, UserRecord};
use postie_metrics::METRICS;
use postie_proto::smtp::DeliveryError;
use postie_store::{Delivery, MailStore, MessageSource, Quota, Recipient, StoreError};
use tracing::{info, warn};

use crate::quota::quota_for_user;
use crate::recipient::{login_name, Door};

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

/// A recipient found in the user database: the local user and the quota its copy is checked
/// against. Resolved once, at RCPT (or before `postie deliver` reads the message), and used
/// for the delivery, which then looks nothing up again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub user: String,
    pub quota: Quota,
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
    pub async fn resolve(
        self: &Arc<Self>,
        address: &[u8],
        door: Door,
        declared_size: Option<u64>,
    ) -> Result<Resolved, DeliveryError> {
        let name = login_name(address, door, &self.policy.domains)?;
        let (record, quota) = self.lookup_blocking(name).await?;
        if let Some(size) = declared_size {
            if !quota.is_unlimited() {
                let usage = self.store.usage(&record.name).await.map_err(|error| {
                    warn!(user = %record.name, %error, "cannot measure the maildrop for its quota");
                    store_failure(&error, &self.policy)
                })?;
                if quota.exceeded_by(usage, size) {
                    info!(user = %record.name, size, used = usage.bytes, messages = usage.messages, "over quota");
                    return Err(DeliveryError::OverQuota {
                        temporary: self.policy.quota_tempfail,
                    });
                }
            }
        }
        Ok(Resolved {
            user: record.name,
            quota,
        })
    }

    /// Delivers `message` to each `(recipient, headers)`, the headers on top of that
    /// recipient's copy; one result per recipient, each logged and counted.
    pub async fn deliver(
        self: &Arc<Self>,
        message: Arc<dyn MessageSource>,
        recipients: Vec<(Resolved, Vec<u8>)>,
    ) -> Vec<Result<(), DeliveryError>> {
        let to_store: Vec<Recipient> = recipients
            .into_iter()
            .map(|(resolved, headers)| Recipient {
                user: resolved.user,
                headers,
                quota: resolved.quota,
            })
            .collect();
        let sizes: Vec<u64> = to_store
            .iter()
            .map(|r| r.headers.len() as u64 + message.len())
            .collect();
        let users: Vec<String> = to_store.iter().map(|r| r.user.clone()).collect();
        if to_store.is_empty() {
            return Vec::new();
        }
        let stored = self
            .store
            .deliver(Delivery {
                message,
                recipients: to_store,
            })
            .await;
        stored
            .into_iter()
            .zip(users.iter().zip(sizes))
            .map(|(result, (user, size))| {
                let result = result.map_err(|error| {
                    warn!(%user, %error, "the store refused the delivery");
                    store_failure(&error, &self.policy)
                });
                record(user, size, &result);
                result
            })
            .collect()
    }

    async fn lookup_blocking(
        self: &Arc<Self>,
        name: String,
    ) -> Result<(UserRecord, Quota), DeliveryError> {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || this.lookup(&name))
            .await
            .unwrap_or(Err(DeliveryError::Temporary))
    }

    /// The user named exactly so, or else in lower case (mail addresses are written in any
    /// case; login names are lower case nearly everywhere), and that user's quota.
    fn lookup(&self, name: &str) -> Result<(UserRecord, Quota), DeliveryError> {
        let lower = name.to_ascii_lowercase();
        for candidate in [name, &lower] {
            match self.users.lookup(candidate) {
                Ok(Some(record)) => {
                    let quota =
                        quota_for_user(self.policy.quota, &record.extra).map_err(|error| {
                            warn!(user = %record.name, %error, "bad quota rule in the passwd-file");
                            DeliveryError::Temporary
                        })?;
                    return Ok((record, quota));
                }
                Ok(None) => {}
                Err(error) => {
                    warn!(user = candidate, %error, "user lookup failed");
                    return Err(DeliveryError::Temporary);
                }
            }
        }
        Err(DeliveryError::UnknownUser)
    }
}

/// One log line and one count per recipient, whatever the outcome.
fn record(user: &str, size: u64, result: &Result<(), DeliveryError>) {
    let outcome = match result {
        Ok(()) => "delivered",
        Err(DeliveryError::UnknownUser) => "unknown_user",
        Err(DeliveryError::OverQuota { .. }) => "over_quota",
        Err(DeliveryError::Temporary) => "temporary_failure",
        Err(_) => "permanent_failure",
    };
    METRICS.deliveries.inc([outcome]);
    match result {
        Ok(()) => info!(%user, size, outcome, "delivery"),
        Err(_) => warn!(%user, size, outcome, "delivery"),
    }
}

/// The one mapping from storage failures to delivery answers: only what retrying cannot fix
/// is permanent; over quota is as the configuration says; anything else (I/O errors, a full
/// disk, a lock) asks the sender to retry.
fn store_failure(error: &StoreError, policy: &DeliveryPolicy) -> DeliveryError {
    match error {
        StoreError::Permanent(_) => DeliveryError::Permanent,
        StoreError::OverQuota(_) => DeliveryError::OverQuota {
            temporary: policy.quota_tempfail,
        },
        StoreError::InUse | StoreError::Vanished(_) | StoreError::Temporary(_) => {
            DeliveryError::Temporary
        }
    }
}
