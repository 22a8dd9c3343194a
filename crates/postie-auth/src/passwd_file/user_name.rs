use crate::AuthError;

pub const MAX_USER_NAME_LEN: usize = 255;

/// Checks a name before it is written into a passwd-file. Reading is more lenient: any
/// non-empty UTF-8 first field is a user, as in Dovecot.
pub fn validate_user_name(name: &str) -> Result<(), AuthError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_USER_NAME_LEN {
        "it is longer than 255 bytes"
    } else if name.contains(':') {
        "':' separates passwd-file fields"
    } else if name.starts_with('#') {
        "a line starting with '#' is a comment"
    } else if name.chars().any(char::is_control) {
        "it contains a control character"
    } else if name.chars().any(char::is_whitespace) {
        "it contains whitespace"
    } else {
        return Ok(());
    };
    Err(AuthError::InvalidUserName {
        name: name.to_string(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_utf8_names() {
        for name in [
            "alice",
            "bob@example.org",
            "jürgen",
            "用户",
            &"x".repeat(255),
        ] {
            validate_user_name(name).unwrap();
        }
    }

    #[test]
    fn rejects_names_that_would_break_the_file() {
        for name in [
            "",
            "a:b",
            "#root",
            "a b",
            "a\tb",
            "a\nb",
            "a\u{0}b",
            "a\u{a0}b",
            &"x".repeat(256),
        ] {
            assert!(validate_user_name(name).is_err(), "{name:?}");
        }
    }
}
