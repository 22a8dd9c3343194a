//! Read-modify-write of a passwd-file for `postie user`: under an exclusive lock on
//! `<file>.lock`, through a temporary file renamed over the original, keeping every other
//! line byte for byte, the file mode and (when allowed) the owner.

use std::ffi::OsString;
use std::fs::{self, File, Metadata, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::parse::user_field;
use super::validate_user_name;
use crate::{random, AuthError, PasswordHash};

/// Mode of a passwd-file created from scratch: it holds password hashes.
const NEW_FILE_MODE: u32 = 0o600;

/// Adds `name` with the stored password `hash` (`{SCHEME}data`), or replaces the password of
/// an existing user, keeping that user's other fields. Creates the file if it is missing.
pub fn set_user(path: impl AsRef<Path>, name: &str, hash: &str) -> Result<(), AuthError> {
    validate_user_name(name)?;
    if hash.contains(':') || hash.chars().any(char::is_control) {
        return Err(AuthError::MalformedHash(
            "a passwd-file field cannot hold ':' or control characters".into(),
        ));
    }
    PasswordHash::parse(hash)?;
    edit(path.as_ref(), |lines| {
        let position = lines
            .iter()
            .position(|line| user_field(line) == Some(name.as_bytes()));
        match position {
            Some(index) => lines[index] = with_password(&lines[index], hash),
            None => lines.push(format!("{name}:{hash}").into_bytes()),
        }
        (true, ())
    })
}

/// Removes every line of `name`; `false` if there was none (or no file).
pub fn remove_user(path: impl AsRef<Path>, name: &str) -> Result<bool, AuthError> {
    validate_user_name(name)?;
    edit(path.as_ref(), |lines| {
        let before = lines.len();
        lines.retain(|line| user_field(line) != Some(name.as_bytes()));
        let removed = lines.len() != before;
        (removed, removed)
    })
}

/// User names in file order; a missing file has none. Needs no lock: writers replace the file
/// whole.
pub fn list_users(path: impl AsRef<Path>) -> Result<Vec<String>, AuthError> {
    let path = path.as_ref();
    let contents = match fs::read(path) {
        Ok(contents) => contents,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AuthError::io(path, e)),
    };
    Ok(contents
        .split(|&b| b == b'\n')
        .filter_map(user_field)
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect())
}

/// `name:hash` followed by whatever came after the old password field.
fn with_password(line: &[u8], hash: &str) -> Vec<u8> {
    let mut fields = line.splitn(3, |&b| b == b':');
    let mut out = fields.next().unwrap_or_default().to_vec();
    out.push(b':');
    out.extend_from_slice(hash.as_bytes());
    fields.next();
    if let Some(rest) = fields.next() {
        out.push(b':');
        out.extend_from_slice(rest);
    }
    out
}

/// Runs `change` on the file's lines; it says whether it changed them, and only then is the
/// file rewritten.
pub(crate) fn edit<T>(
    path: &Path,
    change: impl FnOnce(&mut Vec<Vec<u8>>) -> (bool, T),
) -> Result<T, AuthError> {
    // Edit the file a symlink points to, rather than replacing the link with a file.
    let path = match fs::canonicalize(path) {
        Ok(target) => target,
        Err(e) if e.kind() == io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(AuthError::io(path, e)),
    };
    let lock_path = sibling(&path, ".lock");
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(NEW_FILE_MODE)
        .open(&lock_path)
        .map_err(|e| AuthError::io(&lock_path, e))?;
    lock.lock().map_err(|e| AuthError::io(&lock_path, e))?;

    let (contents, original) = match File::open(&path) {
        Ok(mut file) => {
            let meta = file.metadata().map_err(|e| AuthError::io(&path, e))?;
            let mut contents = Vec::new();
            io::Read::read_to_end(&mut file, &mut contents).map_err(|e| AuthError::io(&path, e))?;
            (contents, Some(meta))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), None),
        Err(e) => return Err(AuthError::io(&path, e)),
    };
    let mut lines: Vec<Vec<u8>> = contents
        .split(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    if lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    let (changed, result) = change(&mut lines);
    if changed {
        let mut new_contents = lines.join(&b'\n');
        new_contents.push(b'\n');
        replace(&path, &new_contents, original.as_ref())?;
    }
    // The lock is released when `lock` is closed, after the rename.
    drop(lock);
    Ok(result)
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

fn replace(path: &Path, contents: &[u8], original: Option<&Metadata>) -> Result<(), AuthError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let temp = sibling(path, &format!(".{}.tmp", hex::encode(random::bytes::<6>())));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(NEW_FILE_MODE)
        .open(&temp)
        .map_err(|e| AuthError::io(&temp, e))?;
    let written = (|| {
        let mode = original.map_or(NEW_FILE_MODE, |meta| meta.mode() & 0o7777);
        // Explicitly, since the umask may have narrowed the mode given at creation.
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(|e| AuthError::io(&temp, e))?;
        if let Some(original) = original {
            keep_owner(&file, original, path);
        }
        file.write_all(contents)
            .map_err(|e| AuthError::io(&temp, e))?;
        file.sync_all().map_err(|e| AuthError::io(&temp, e))?;
        fs::rename(&temp, path).map_err(|e| AuthError::io(path, e))?;
        // The rename is only durable once the directory entry is.
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| AuthError::io(dir, e))
    })();
    if written.is_err() {
        // Best effort: after a successful rename the temporary name is already gone.
        let _ = fs::remove_file(&temp);
    }
    written
}

/// Root editing a file owned by the mail server's user must not hand it to root. Only root may
/// give files away, so anyone else keeps ownership of what they write, with a warning.
fn keep_owner(file: &File, original: &Metadata, path: &Path) {
    let Ok(current) = file.metadata() else { return };
    if (current.uid(), current.gid()) == (original.uid(), original.gid()) {
        return;
    }
    if let Err(e) = std::os::unix::fs::fchown(file, Some(original.uid()), Some(original.gid())) {
        tracing::warn!(
            "{}: could not keep owner {}:{} ({e}); the file now belongs to {}:{}",
            path.display(),
            original.uid(),
            original.gid(),
            current.uid(),
            current.gid()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "{PLAIN}pw";

    #[test]
    fn creates_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        set_user(&path, "alice", HASH).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "alice:{PLAIN}pw\n");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(list_users(&path).unwrap(), ["alice"]);
    }

    #[test]
    fn keeps_other_lines_fields_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let original =
            "# postie users\n\nalice:{PLAIN}a:1:2::/home/a::quota=1G\nbroken line\nbob:{PLAIN}b";
        fs::write(&path, original).unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o640)).unwrap();

        set_user(&path, "alice", "{PLAIN}new").unwrap();
        set_user(&path, "carol", "{PLAIN}c").unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "# postie users\n\nalice:{PLAIN}new:1:2::/home/a::quota=1G\nbroken line\nbob:{PLAIN}b\ncarol:{PLAIN}c\n"
        );
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
        assert_eq!(
            list_users(&path).unwrap(),
            ["alice", "broken line", "bob", "carol"]
        );

        assert!(remove_user(&path, "bob").unwrap());
        assert!(!remove_user(&path, "bob").unwrap());
        assert_eq!(
            list_users(&path).unwrap(),
            ["alice", "broken line", "carol"]
        );
        // No temporary files are left behind; the lock file stays.
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["users", "users.lock"]);
    }

    #[test]
    fn missing_file_has_no_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        assert!(list_users(&path).unwrap().is_empty());
        assert!(!remove_user(&path, "alice").unwrap());
        assert!(!path.exists());
    }

    #[test]
    fn rejects_bad_names_and_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        assert!(matches!(
            set_user(&path, "a b", HASH),
            Err(AuthError::InvalidUserName { .. })
        ));
        assert!(set_user(&path, "alice", "{PLAIN}a:b").is_err());
        assert!(set_user(&path, "alice", "{PLAIN}a\nbob:{PLAIN}x").is_err());
        assert!(set_user(&path, "alice", "{MD5}abc").is_err());
        assert!(!path.exists());
    }

    #[test]
    fn edits_through_a_symlink_keep_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real");
        let link = dir.path().join("users");
        fs::write(&target, "alice:{PLAIN}a\n").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        set_user(&link, "bob", HASH).unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(list_users(&target).unwrap(), ["alice", "bob"]);
    }

    #[test]
    fn concurrent_edits_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for j in 0..10 {
                        set_user(&path, &format!("u{i}-{j}"), HASH).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(list_users(&path).unwrap().len(), 80);
    }
}
