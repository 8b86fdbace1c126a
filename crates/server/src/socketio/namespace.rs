//! Which namespaces exist and how each behaves: the `[socketio.namespaces]` tables (exact
//! names, and patterns ending with `*`), the root namespace that always exists, and the
//! conformance preset's `/` and `/custom`.

use std::{collections::HashSet, sync::Arc};

use super::{
    config::{NamespaceConfig, SocketIoConfig},
    rooms::valid_namespace,
};

/// Built-in handlers of the conformance preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Preset {
    /// No built-in handlers.
    None,
    /// `auth` on connect, `message` → `message-back`, `message-with-ack` acked.
    ConformanceRoot,
    /// `auth` on connect.
    ConformanceCustom,
}

/// A namespace's resolved behaviour.
#[derive(Debug)]
pub(crate) struct Behaviour {
    pub(crate) config: NamespaceConfig,
    pub(crate) relay_all: bool,
    pub(crate) relay: HashSet<String>,
    pub(crate) preset: Preset,
}

impl Behaviour {
    fn new(config: NamespaceConfig, preset: Preset) -> Arc<Self> {
        let relay_all = config.relay.iter().any(|e| e == "*");
        let relay = config.relay.iter().cloned().collect();
        Arc::new(Self {
            config,
            relay_all,
            relay,
            preset,
        })
    }

    /// Whether `event` is relayed.
    pub(crate) fn relays(&self, event: &str) -> bool {
        self.relay_all || self.relay.contains(event)
    }
}

/// Every namespace clients may connect to.
#[derive(Debug)]
pub(crate) struct Namespaces {
    exact: Vec<(String, Arc<Behaviour>)>,
    patterns: Vec<(String, Arc<Behaviour>)>,
}

impl Namespaces {
    pub(crate) fn new(config: &SocketIoConfig) -> Self {
        let mut exact = Vec::new();
        let mut patterns = Vec::new();
        for (name, ns) in &config.namespaces {
            match name.strip_suffix('*') {
                Some(prefix) => {
                    patterns.push((prefix.to_owned(), Behaviour::new(ns.clone(), Preset::None)))
                }
                None => exact.push((name.clone(), Behaviour::new(ns.clone(), Preset::None))),
            }
        }
        if config.conformance {
            exact.retain(|(n, _)| n != "/" && n != "/custom");
            exact.push((
                "/".to_owned(),
                Behaviour::new(NamespaceConfig::default(), Preset::ConformanceRoot),
            ));
            exact.push((
                "/custom".to_owned(),
                Behaviour::new(NamespaceConfig::default(), Preset::ConformanceCustom),
            ));
        }
        if !exact.iter().any(|(n, _)| n == "/") {
            exact.push((
                "/".to_owned(),
                Behaviour::new(NamespaceConfig::default(), Preset::None),
            ));
        }
        // Longest pattern first: the most specific wins.
        patterns.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        Self { exact, patterns }
    }

    /// The behaviour of a namespace that exists only through the embedding application's
    /// handlers: nothing declared.
    pub(crate) fn default_behaviour(&self) -> Arc<Behaviour> {
        Behaviour::new(NamespaceConfig::default(), Preset::None)
    }

    /// The behaviour of `namespace`, or `None` when it does not exist.
    pub(crate) fn resolve(&self, namespace: &str) -> Option<Arc<Behaviour>> {
        if !valid_namespace(namespace) {
            return None;
        }
        if let Some((_, b)) = self.exact.iter().find(|(n, _)| n == namespace) {
            return Some(b.clone());
        }
        self.patterns
            .iter()
            .find(|(prefix, _)| namespace.starts_with(prefix.as_str()))
            .map(|(_, b)| b.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_patterns_and_the_root() {
        let mut config = SocketIoConfig::default();
        config
            .namespaces
            .insert("/chat".into(), NamespaceConfig::default());
        config
            .namespaces
            .insert("/game-*".into(), NamespaceConfig::default());
        let ns = Namespaces::new(&config);
        assert!(ns.resolve("/").is_some());
        assert!(ns.resolve("/chat").is_some());
        assert!(ns.resolve("/game-12").is_some());
        assert!(ns.resolve("/other").is_none());
        assert!(ns.resolve("/game:1").is_none());
        assert!(ns.resolve("/custom").is_none());
        config.conformance = true;
        let ns = Namespaces::new(&config);
        assert_eq!(
            ns.resolve("/custom").map(|b| b.preset),
            Some(Preset::ConformanceCustom)
        );
    }
}
