//! The Prometheus registry shared by all components. Each component
//! registers its own families (bounded labels only); the admin listener
//! serves the text exposition.

use prometheus::{Encoder, Registry, TextEncoder};

/// Owns the registry; cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// A fresh, empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The registry components register their families in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition (format 0.0.4) of every family.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|err| prometheus::Error::Msg(err.to_string()))
    }
}
