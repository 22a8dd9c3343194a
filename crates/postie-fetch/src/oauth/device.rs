//! The device authorization grant (RFC 8628): the provider gives a code the user types on
//! another device at its verification address, and postie polls the token endpoint until the
//! user has signed in there, at the interval the provider asks for, slowing down when told.

use std::time::{Duration, Instant};

use super::http::{FormAnswer, Http};
use super::tokens::Grant;
use super::{OAuthError, SignInSettings};

/// The interval when the provider names none (RFC 8628 section 3.2).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// What `slow_down` adds to the interval (RFC 8628 section 3.5).
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// What the user is shown.
#[derive(Debug, Clone)]
pub struct UserCode {
    pub user_code: String,
    pub verification_uri: String,
    /// The address with the code in it, when the provider gives one.
    pub verification_uri_complete: Option<String>,
}

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Signs in `account` with the device grant; `show` tells the user what to type where.
pub fn sign_in(
    settings: &SignInSettings,
    account: &str,
    show: &mut dyn FnMut(&UserCode),
) -> Result<Grant, OAuthError> {
    let http = Http::new()?;
    let endpoints = settings.endpoints(&http)?;
    let Some(device_endpoint) = endpoints.device_authorization else {
        return Err(OAuthError::Settings(format!(
            "the provider offers no device sign-in (its discovery document names no device_authorization_endpoint); run `postie fetch login {account}` without --device"
        )));
    };
    let client = settings.client_fields()?;
    let mut form = vec![("scope", settings.scopes().to_owned())];
    form.extend(client.iter().cloned());
    let what = format!("the device authorization request at {device_endpoint}");
    let json = match http.post_form(&device_endpoint, &form, &what)? {
        FormAnswer::Granted(json) => json,
        FormAnswer::Refused { error, description } => {
            return Err(OAuthError::SignInRefused {
                account: account.into(),
                error,
                description,
            })
        }
    };
    let text = |key: &str| json.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let missing = |key: &str| OAuthError::BadAnswer {
        what: what.clone(),
        reason: format!("it holds no {key}"),
    };
    let device_code = text("device_code").ok_or_else(|| missing("device_code"))?;
    // Microsoft's v2.0 endpoint says verification_uri; some older ones verification_url.
    let verification_uri = text("verification_uri")
        .or_else(|| text("verification_url"))
        .ok_or_else(|| missing("verification_uri"))?;
    show(&UserCode {
        user_code: text("user_code").ok_or_else(|| missing("user_code"))?,
        verification_uri,
        verification_uri_complete: text("verification_uri_complete"),
    });
    let mut interval = json
        .get("interval")
        .and_then(|v| v.as_u64())
        .map_or(DEFAULT_INTERVAL, Duration::from_secs);
    let expires_in = json
        .get("expires_in")
        .and_then(|v| v.as_u64())
        .unwrap_or(600);
    let deadline = Instant::now() + Duration::from_secs(expires_in);

    let mut form = vec![
        ("grant_type", DEVICE_CODE_GRANT.to_owned()),
        ("device_code", device_code),
    ];
    form.extend(client);
    let what = format!("the token request at {}", endpoints.token);
    loop {
        std::thread::sleep(interval);
        match http.post_form(&endpoints.token, &form, &what)? {
            FormAnswer::Granted(json) => return Grant::from_json(&json, &what),
            FormAnswer::Refused { error, .. } if error == "authorization_pending" => {}
            FormAnswer::Refused { error, .. } if error == "slow_down" => {
                interval += SLOW_DOWN_STEP;
            }
            FormAnswer::Refused { error, description } => {
                return Err(OAuthError::SignInRefused {
                    account: account.into(),
                    error,
                    description,
                })
            }
        }
        if Instant::now() >= deadline {
            return Err(OAuthError::SignInRefused {
                account: account.into(),
                error: "expired_token".into(),
                description: ": the code was not entered in time".into(),
            });
        }
    }
}
