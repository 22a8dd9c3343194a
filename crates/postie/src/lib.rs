//! The configuration file of `postie`, as a library so that the fuzz targets (crate
//! postie-fuzz) parse it exactly as the binary does. Everything else lives in the binary.

pub mod config;
mod hostname;
mod oauth;
