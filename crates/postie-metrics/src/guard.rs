//! Counting a connection for as long as it is open.

use crate::registry::METRICS;

/// Counts a connection accepted on `listener` and open until dropped, however the task
/// holding it ends.
#[derive(Debug)]
pub struct OpenConnection(&'static str);

impl OpenConnection {
    pub fn new(listener: &'static str) -> Self {
        METRICS.connections.inc([listener]);
        METRICS.connections_open.inc([listener]);
        OpenConnection(listener)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        METRICS.connections_open.dec([self.0]);
    }
}
