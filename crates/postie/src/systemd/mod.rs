//! What systemd offers a service, written against the documented protocols with std and
//! libc (a dependency would bring nothing these hundred lines do not): readiness
//! notification (sd_notify) and socket activation (LISTEN_FDS).

mod activation;
mod notify;

pub use activation::Activated;
pub use notify::Notifier;
