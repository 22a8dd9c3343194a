//! Running as root only as long as binding ports needs it: `user = "postie"` makes `serve`
//! switch to that user (its group and supplementary groups too) once every listener is
//! bound. Root without it is refused unless `--allow-root` says so.

use std::ffi::{CStr, CString};

use anyhow::{bail, Context, Result};

/// A system user, as the password database has it.
#[derive(Debug, Clone)]
pub struct SystemUser {
    pub name: String,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
}

/// What to do about privileges, decided before anything is bound.
#[derive(Debug)]
pub enum Plan {
    /// Not root, or root allowed: stay as we are.
    Stay,
    /// Root: become this user after binding.
    DropTo(SystemUser),
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Checks the `user` setting against who we are.
pub fn plan(user: Option<&str>, allow_root: bool, config: &std::path::Path) -> Result<Plan> {
    let config = config.display();
    let Some(name) = user else {
        if is_root() && !allow_root {
            bail!(
                "postie serve was started as root without a user to run as: add user = \"postie\" to {config} \
                 (postie binds its ports, then runs as that user; create it with `useradd --system postie`), \
                 or pass --allow-root to keep running as root"
            );
        }
        return Ok(Plan::Stay);
    };
    let target = lookup(name)?.with_context(|| {
        format!("{config}: user = {name:?}: no such user: create it with `useradd --system {name}`, or name another")
    })?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == target.uid {
        return Ok(Plan::Stay);
    }
    if euid != 0 {
        bail!(
            "{config}: user = {name:?}, but postie was started as uid {euid}, which cannot become another user: \
             start it as root (it binds its ports and then runs as {name}) or as {name} itself"
        );
    }
    if target.uid == 0 {
        bail!("{config}: user = {name:?} is root: name an unprivileged user such as \"postie\", or use --allow-root without user");
    }
    Ok(Plan::DropTo(target))
}

/// Becomes `user` for good: supplementary groups, group, then user (the order that leaves
/// no way back), and checks that root cannot be regained. glibc applies each change to
/// every thread of the process.
pub fn drop_to(user: &SystemUser) -> Result<()> {
    let name = CString::new(user.name.as_str()).context("user name contains a NUL byte")?;
    // SAFETY: plain system calls with valid arguments; `name` outlives the call.
    unsafe {
        if libc::initgroups(name.as_ptr(), user.gid) != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot set the groups of {}", user.name));
        }
        if libc::setgid(user.gid) != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot switch to group {}", user.gid));
        }
        if libc::setuid(user.uid) != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot switch to user {}", user.name));
        }
        if libc::setuid(0) == 0 || libc::geteuid() != user.uid || libc::getegid() != user.gid {
            bail!(
                "switching to user {} did not drop root: refusing to serve",
                user.name
            );
        }
    }
    Ok(())
}

/// The user named `name`, if it exists.
pub fn lookup(name: &str) -> Result<Option<SystemUser>> {
    let c_name = CString::new(name).context("user name contains a NUL byte")?;
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value for getpwnam_r to fill in.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; the strings it sets point into `buffer`,
    // which outlives their use below.
    let status = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if status != 0 {
        return Err(std::io::Error::from_raw_os_error(status))
            .with_context(|| format!("cannot look up user {name}"));
    }
    if found.is_null() {
        return Ok(None);
    }
    // SAFETY: on success pw_name points to a NUL-terminated string inside `buffer`.
    let name = unsafe { CStr::from_ptr(entry.pw_name) }
        .to_string_lossy()
        .into_owned();
    Ok(Some(SystemUser {
        name,
        uid: entry.pw_uid,
        gid: entry.pw_gid,
    }))
}
