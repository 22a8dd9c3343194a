//! Open connections counted in total and per client address, shared by all listeners of a
//! door.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Counts open connections in total and per client address. The maxima may change while
/// running (POP3 takes new ones on reload).
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: AtomicUsize,
    max_per_address: AtomicUsize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// A slot held for the life of one connection.
#[derive(Debug)]
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    address: Option<IpAddr>,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ServerFull,
    AddressFull,
}

impl Refusal {
    /// The reason as the `connections_refused` metric labels it.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::ServerFull => "server_full",
            Refusal::AddressFull => "address_full",
        }
    }
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            max_total: AtomicUsize::new(max_total),
            max_per_address: AtomicUsize::new(max_per_address),
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// New maxima; connections open beyond them stay open.
    pub fn set_maxima(&self, max_total: usize, max_per_address: usize) {
        self.max_total.store(max_total, Ordering::Relaxed);
        self.max_per_address
            .store(max_per_address, Ordering::Relaxed);
    }

    /// A slot for one more connection, counted against `address` too when it is given.
    pub fn admit(self: &Arc<Self>, address: Option<IpAddr>) -> Result<ConnectionSlot, Refusal> {
        let mut guard = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_address) = &mut *guard;
        if *total >= self.max_total.load(Ordering::Relaxed) {
            return Err(Refusal::ServerFull);
        }
        if let Some(ip) = address {
            let count = per_address.entry(ip).or_insert(0);
            if *count >= self.max_per_address.load(Ordering::Relaxed) {
                return Err(Refusal::AddressFull);
            }
            *count += 1;
        }
        *total += 1;
        Ok(ConnectionSlot {
            limits: Arc::clone(self),
            address,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut guard = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_address) = &mut *guard;
        *total -= 1;
        let Some(ip) = self.address else { return };
        if let Some(count) = per_address.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                per_address.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_and_total_limits() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limits.admit(Some(a)).unwrap();
        let _second = limits.admit(Some(a)).unwrap();
        assert_eq!(limits.admit(Some(a)).err(), Some(Refusal::AddressFull));
        let _third = limits.admit(Some(b)).unwrap();
        assert_eq!(limits.admit(Some(b)).err(), Some(Refusal::ServerFull));
        drop(first);
        assert!(limits.admit(Some(a)).is_ok());
    }

    #[test]
    fn connections_without_an_address_count_only_in_the_total() {
        let limits = ConnectionLimits::new(3, 1);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let _local = limits.admit(None).unwrap();
        let _another = limits.admit(None).unwrap();
        let from_a = limits.admit(Some(a)).unwrap();
        assert_eq!(limits.admit(None).err(), Some(Refusal::ServerFull));
        drop(from_a);
        assert!(limits.admit(Some(a)).is_ok());
    }

    #[test]
    fn new_maxima_apply_to_the_next_connection() {
        let limits = ConnectionLimits::new(10, 1);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let _first = limits.admit(Some(a)).unwrap();
        assert_eq!(limits.admit(Some(a)).err(), Some(Refusal::AddressFull));
        limits.set_maxima(10, 2);
        assert!(limits.admit(Some(a)).is_ok());
    }
}
