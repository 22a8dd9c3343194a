//! The issuer's signing keys: found through its discovery document, cached, and fetched again
//! when a token names a key the cache does not hold (the provider rotated its keys) or when
//! the cache is old (so a key the provider dropped stops working here too). Fetches for
//! unknown key ids are rate-limited: anyone can make up a key id, and each would otherwise
//! cost a request to the provider.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::http;
use crate::TokenError;

/// Keys older than this are fetched again before use.
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// Fetches for unknown key ids allowed at once…
pub const REFETCH_BURST: u32 = 4;
/// …and one more each time this passes.
pub const REFETCH_EVERY: Duration = Duration::from_secs(60);

/// One verification key with the algorithm the provider bound it to, if any.
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) decoding: DecodingKey,
    pub(crate) algorithm: Option<Algorithm>,
}

struct Keys {
    by_id: HashMap<String, Key>,
    /// Keys without a `kid`: usable only by tokens without one, when there is exactly one.
    unnamed: Vec<Key>,
    fetched: Instant,
}

struct Cache {
    jwks_uri: Option<String>,
    keys: Option<Keys>,
    /// Unknown-key fetches left, refilled by one each `REFETCH_EVERY` up to `REFETCH_BURST`.
    refetches: u32,
    refilled: Instant,
}

pub(crate) struct KeySource {
    issuer: String,
    cache: Mutex<Cache>,
}

impl KeySource {
    pub(crate) fn new(issuer: String) -> Self {
        KeySource {
            issuer,
            cache: Mutex::new(Cache {
                jwks_uri: None,
                keys: None,
                refetches: REFETCH_BURST,
                refilled: Instant::now(),
            }),
        }
    }

    /// The key `kid` names (or the one unnamed key for a token without `kid`). One lookup at a
    /// time: a burst of logins with a new key id costs one fetch.
    pub(crate) async fn key(
        &self,
        client: &reqwest::Client,
        kid: Option<&str>,
    ) -> Result<Key, TokenError> {
        let mut cache = self.cache.lock().await;
        let stale = cache
            .keys
            .as_ref()
            .is_none_or(|keys| keys.fetched.elapsed() > KEYS_MAX_AGE);
        if stale {
            match self.fetch(client, &mut cache).await {
                Ok(()) => {}
                // Keys a little old are better than refusing every login while the provider
                // is unreachable; none at all leave nothing to check with.
                Err(error) if cache.keys.is_some() => {
                    warn!(%error, "keeping the cached signing keys of the OAuth issuer")
                }
                Err(error) => return Err(error),
            }
        }
        if let Some(key) = find(&cache, kid) {
            return Ok(key);
        }
        if !stale && cache.take_refetch() {
            self.fetch(client, &mut cache).await?;
            if let Some(key) = find(&cache, kid) {
                return Ok(key);
            }
        }
        Err(TokenError::Refused(match kid {
            Some(kid) => {
                format!("it is signed with key {kid:?}, which the issuer does not publish")
            }
            None => "it names no key (kid) and the issuer publishes more than one".into(),
        }))
    }

    async fn fetch(&self, client: &reqwest::Client, cache: &mut Cache) -> Result<(), TokenError> {
        let jwks_uri = match &cache.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let uri = self.discover(client).await?;
                cache.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let document = http::json(client.get(&jwks_uri), &format!("the JWKS {jwks_uri}")).await?;
        let set: JwkSet = serde_json::from_value(document).map_err(|e| {
            TokenError::Unavailable(format!("the JWKS {jwks_uri} is not a key set: {e}"))
        })?;
        let mut keys = Keys {
            by_id: HashMap::new(),
            unnamed: Vec::new(),
            fetched: Instant::now(),
        };
        for jwk in &set.keys {
            let Some(key) = verification_key(jwk) else {
                continue;
            };
            match &jwk.common.key_id {
                Some(kid) => {
                    keys.by_id.insert(kid.clone(), key);
                }
                None => keys.unnamed.push(key),
            }
        }
        info!(jwks = %jwks_uri, keys = keys.by_id.len() + keys.unnamed.len(), "fetched the OAuth issuer's signing keys");
        cache.keys = Some(keys);
        Ok(())
    }

    /// The `jwks_uri` of the issuer's discovery document, which must name the same issuer.
    async fn discover(&self, client: &reqwest::Client) -> Result<String, TokenError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let document = http::json(client.get(&url), &url).await?;
        let named = document.get("issuer").and_then(|v| v.as_str());
        if named != Some(self.issuer.as_str()) {
            return Err(TokenError::Unavailable(format!(
                "{url} names the issuer {named:?}, not {:?}: set [oauth] issuer to the provider's issuer exactly",
                self.issuer
            )));
        }
        document
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| TokenError::Unavailable(format!("{url} has no jwks_uri")))
    }
}

impl Cache {
    fn take_refetch(&mut self) -> bool {
        let earned = self.refilled.elapsed().as_secs() / REFETCH_EVERY.as_secs();
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            self.refetches = self.refetches.saturating_add(earned).min(REFETCH_BURST);
            self.refilled = Instant::now();
        }
        if self.refetches == 0 {
            return false;
        }
        self.refetches -= 1;
        true
    }
}

fn find(cache: &Cache, kid: Option<&str>) -> Option<Key> {
    let keys = cache.keys.as_ref()?;
    match kid {
        Some(kid) => keys.by_id.get(kid).cloned(),
        None if keys.by_id.len() + keys.unnamed.len() == 1 => keys
            .by_id
            .values()
            .chain(keys.unnamed.iter())
            .next()
            .cloned(),
        None => None,
    }
}

/// A signing key postie can check with: public-key algorithms only (a shared secret would be
/// the provider's, not a verification key), and not one meant for encryption.
fn verification_key(jwk: &Jwk) -> Option<Key> {
    use jsonwebtoken::jwk::PublicKeyUse;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let algorithm = match jwk.common.key_algorithm {
        Some(alg) => Some(alg.to_string().parse::<Algorithm>().ok()?),
        None => None,
    };
    if algorithm.is_some_and(|alg| !crate::verifier::asymmetric(alg)) {
        return None;
    }
    let decoding = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        decoding,
        algorithm,
    })
}
