//! Test harness: real upstream servers and the real gateway binary on
//! 127.0.0.1 with ephemeral ports, a temp data directory per gateway.

pub mod client;
pub mod gateway;
pub mod governance;
pub mod upstream;

pub use client::{open, send};
pub use gateway::Gateway;
pub use upstream::TestUpstream;
