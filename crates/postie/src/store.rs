//! The one place where the configured store is chosen and opened: `serve`, `deliver`, the
//! demo, `check-config` and reload all call [`open`]. A new backend is a variant here and a
//! `[mail] store` value in the configuration; everything else is generic over
//! [`MailStore`].

use std::io;

use postie::config::StoreConfig;
use postie_store::{
    Delivery, MailStore, MaildirBody, MaildirDrop, MaildirStore, Maildrop, MessageBody,
    MessageInfo, StoreError, Update, Usage,
};

/// The store the configuration names.
#[derive(Debug, Clone)]
pub enum ConfiguredStore {
    Maildir(MaildirStore),
}

/// A maildrop of a [`ConfiguredStore`].
#[derive(Debug)]
pub enum ConfiguredDrop {
    Maildir(MaildirDrop),
}

/// A message being read from a [`ConfiguredStore`].
#[derive(Debug)]
pub enum ConfiguredBody {
    Maildir(MaildirBody),
}

/// Opens the store `config` names. Opening a Maildir store touches no file: each maildrop is
/// created when first used.
pub fn open(config: &StoreConfig) -> ConfiguredStore {
    match config {
        StoreConfig::Maildir { template } => {
            ConfiguredStore::Maildir(MaildirStore::new(template.clone()))
        }
    }
}

impl MailStore for ConfiguredStore {
    type Maildrop = ConfiguredDrop;

    async fn open(&self, user: &str, exclusive: bool) -> Result<ConfiguredDrop, StoreError> {
        match self {
            Self::Maildir(store) => store
                .open(user, exclusive)
                .await
                .map(ConfiguredDrop::Maildir),
        }
    }

    async fn deliver(&self, delivery: Delivery) -> Vec<Result<(), StoreError>> {
        match self {
            Self::Maildir(store) => store.deliver(delivery).await,
        }
    }

    async fn usage(&self, user: &str) -> Result<Usage, StoreError> {
        match self {
            Self::Maildir(store) => store.usage(user).await,
        }
    }
}

impl Maildrop for ConfiguredDrop {
    type Body = ConfiguredBody;

    fn messages(&self) -> &[MessageInfo] {
        match self {
            Self::Maildir(drop) => drop.messages(),
        }
    }

    async fn open_message(&mut self, index: usize) -> Result<ConfiguredBody, StoreError> {
        match self {
            Self::Maildir(drop) => drop.open_message(index).await.map(ConfiguredBody::Maildir),
        }
    }

    async fn quit(self, update: Update) -> Result<(), StoreError> {
        match self {
            Self::Maildir(drop) => drop.quit(update).await,
        }
    }
}

impl MessageBody for ConfiguredBody {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Maildir(body) => body.read(buf).await,
        }
    }
}
