//! The passwd-file line format:
//! `user:password[:uid:gid:gecos:home:shell:extra fields]`.

use std::collections::HashMap;
use std::path::Path;

use crate::{AuthError, PasswordHash, UserRecord};

/// Users by exact name; the first line for a name wins, as in Dovecot.
pub(crate) type Users = HashMap<String, UserRecord>;

pub(crate) fn parse_file(path: &Path, contents: &[u8]) -> Result<Users, AuthError> {
    let mut users = Users::new();
    for (index, line) in contents.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        let record = parse_line(line).map_err(|reason| AuthError::PasswdFile {
            path: path.to_path_buf(),
            line: number,
            reason,
        })?;
        let Some(record) = record else { continue };
        if users.contains_key(&record.name) {
            tracing::warn!(
                "{}:{number}: user {:?} already defined above; this line is ignored",
                path.display(),
                record.name
            );
            continue;
        }
        users.insert(record.name.clone(), record);
    }
    Ok(users)
}

/// `None` for blank and comment lines.
pub(crate) fn parse_line(line: &[u8]) -> Result<Option<UserRecord>, String> {
    let Some(line) = content(line) else {
        return Ok(None);
    };
    let line = std::str::from_utf8(line).map_err(|_| "line is not valid UTF-8".to_string())?;
    // The extra fields may themselves hold ':' (quota rules do), so they take the rest.
    let mut fields = line.splitn(8, ':');
    let name = fields.next().unwrap_or_default();
    if name.is_empty() {
        return Err("empty user name".into());
    }
    let password = fields
        .next()
        .filter(|password| !password.is_empty())
        .ok_or_else(|| format!("user {name:?} has no password field"))?;
    let password = PasswordHash::parse(password).map_err(|e| format!("user {name:?}: {e}"))?;
    let mut optional = || {
        fields
            .next()
            .filter(|field| !field.is_empty())
            .map(str::to_string)
    };
    Ok(Some(UserRecord {
        name: name.to_string(),
        password,
        uid: optional(),
        gid: optional(),
        gecos: optional(),
        home: optional(),
        shell: optional(),
        extra: optional()
            .map(|extra| extra.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        app_passwords: Default::default(),
    }))
}

/// The line without its CR, or `None` for a blank or comment line.
pub(crate) fn content(line: &[u8]) -> Option<&[u8]> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) || line.starts_with(b"#") {
        None
    } else {
        Some(line)
    }
}

/// The user-name field of a user line, as raw bytes.
pub(crate) fn user_field(line: &[u8]) -> Option<&[u8]> {
    let line = content(line)?;
    line.split(|&b| b == b':').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_all_fields() {
        let record = parse_line(
            b"bob:{PLAIN}secret:1000:100:Bob B:/home/bob:/bin/sh:userdb_quota_rule=*:storage=1G  allow_nets=10.0.0.0/8\r",
        )
        .unwrap()
        .unwrap();
        assert_eq!(record.name, "bob");
        assert!(record.password.verify(b"secret"));
        assert_eq!(record.uid.as_deref(), Some("1000"));
        assert_eq!(record.gid.as_deref(), Some("100"));
        assert_eq!(record.gecos.as_deref(), Some("Bob B"));
        assert_eq!(record.home.as_deref(), Some("/home/bob"));
        assert_eq!(record.shell.as_deref(), Some("/bin/sh"));
        assert_eq!(
            record.extra,
            ["userdb_quota_rule=*:storage=1G", "allow_nets=10.0.0.0/8"]
        );
    }

    #[test]
    fn short_lines_and_empty_fields() {
        let record = parse_line("jürgen:{PLAIN}x::::/home/j".as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(record.name, "jürgen");
        assert_eq!(record.uid, None);
        assert_eq!(record.home.as_deref(), Some("/home/j"));
        assert!(record.extra.is_empty());
    }

    #[test]
    fn skips_comments_and_blank_lines() {
        for line in [&b""[..], b"   ", b"\r", b"# alice:{PLAIN}x", b"#"] {
            assert!(parse_line(line).unwrap().is_none());
        }
    }

    #[test]
    fn reports_malformed_lines() {
        for line in [
            &b"alice"[..],
            b"alice:",
            b":{PLAIN}x",
            b"alice:{MD5}x",
            b"alice:{SHA512-CRYPT}garbage",
            b"alice:\xff",
        ] {
            assert!(parse_line(line).is_err(), "{line:?}");
        }
    }

    #[test]
    fn file_errors_name_the_line_and_first_duplicate_wins() {
        let path = Path::new("/etc/postie/users");
        let users = parse_file(path, b"# users\na:{PLAIN}1\n\na:{PLAIN}2\n").unwrap();
        assert!(users["a"].password.verify(b"1"));

        let err = parse_file(path, b"a:{PLAIN}1\n# fine\nb\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/postie/users:3: user \"b\" has no password field"
        );
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn line() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..80),
            "[a-zé#: ]{0,8}:\\{(PLAIN|SSHA256|SCRAM-SHA-256|PBKDF2|BLF-CRYPT|crypt|X)\\}[$a-zA-Z0-9+/=,:. ]{0,60}"
                .prop_map(String::into_bytes),
            "[a-z]{1,8}:\\$(6|5|2y|argon2id)\\$[$a-zA-Z0-9+/=,.]{0,100}(:[^\n]{0,20}){0,9}"
                .prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(contents in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_file(Path::new("users"), &contents);
        }

        #[test]
        fn never_panics_on_plausible_lines(lines in proptest::collection::vec(line(), 0..12)) {
            let contents = lines.join(&b'\n');
            if let Ok(users) = parse_file(Path::new("users"), &contents) {
                for (name, record) in users {
                    prop_assert_eq!(&name, &record.name);
                    prop_assert!(!name.is_empty());
                }
            }
            for line in &lines {
                let _ = user_field(line);
            }
        }
    }
}
