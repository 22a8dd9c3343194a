//! postie's metrics: one process-wide registry, [`METRICS`], of counters, gauges and
//! histograms built from atomics, rendered in the Prometheus text format by [`render`].
//!
//! Written here rather than taken from a crate: postie has a dozen fixed metrics whose label
//! values are all `&'static str` from fixed sets, so the registry is a `static` that needs no
//! setup, no handle threaded through every shell, and no allocation per update; the text
//! format is fifty lines. Label values being `'static` bounds the number of series by
//! construction: no client input can create one.

#![forbid(unsafe_code)]

mod family;
mod guard;
mod histogram;
mod registry;
mod text;

pub use family::{Counter, Family, Gauge, Kind};
pub use guard::OpenConnection;
pub use histogram::Histogram;
pub use registry::{Metrics, METRICS};

/// The Prometheus text exposition (version 0.0.4) of every metric.
pub fn render() -> String {
    let mut out = String::with_capacity(8 * 1024);
    METRICS.render(&mut out);
    out
}
