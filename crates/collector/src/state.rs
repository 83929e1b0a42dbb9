//! The state the HTTP handlers share: the config served, what it shows, the store, the
//! admin token and the per-address limits.

use crate::error::{unavailable, Refusal};
use crate::limit::Limits;
use crate::store::Store;
use crate::texts::Shown;
use std::sync::Arc;
use unticked_core::compiled::Compiled;
use unticked_core::config::Config;
use unticked_core::record;

/// Shared by the handlers.
pub struct Collector {
    pub config: Config,
    pub shown: Shown,
    pub store: Store,
    /// The bearer token of the admin endpoints; `None` turns them off.
    pub admin_token: Option<String>,
    /// What each client address may do: posts a second, records a day, wrong admin tokens.
    pub limits: Limits,
    /// The origins whose pages may write.
    pub writers: crate::http::Writers,
    /// What consent over time needs: the config's hash, its compiled sheets, where the
    /// collector's links point, and the secret of the shop's account tokens.
    pub lifecycle: crate::lifecycle::Settings,
    /// The config compiled (its sheets: the account form's and the preference page's rows).
    pub compiled: Compiled,
}

impl Collector {
    pub fn new(
        config: Config,
        store: Store,
        admin_token: Option<String>,
        limits: Limits,
        writers: crate::http::Writers,
        lifecycle: crate::lifecycle::Settings,
    ) -> Arc<Collector> {
        let compiled = unticked_core::compiled::compile(&config, &lifecycle.config_sha256);
        Arc::new(Collector {
            shown: Shown::compiled(&compiled),
            compiled,
            lifecycle,
            config,
            store,
            admin_token: admin_token.filter(|t| !t.is_empty()),
            limits,
            writers,
        })
    }

    /// The receipt of the record at `index`: the same whenever it is asked for, since it
    /// names the checkpoint the record was first committed with.
    pub(crate) fn receipt(&self, id: &str, index: u64) -> Result<serde_json::Value, Refusal> {
        let checkpoint = self
            .store
            .checkpoint_covering(index)
            .map_err(unavailable)?
            .ok_or_else(|| unavailable("no checkpoint covers the record"))?;
        let (leaf, proof) = self
            .store
            .inclusion(index, checkpoint.size)
            .ok_or_else(|| unavailable("the tree lacks the record"))?;
        Ok(serde_json::json!({
            "id": id,
            "index": index,
            "leaf_hash": record::hex(&leaf),
            "inclusion": proof.iter().map(|h| record::hex(h)).collect::<Vec<_>>(),
            "checkpoint": checkpoint.to_json(self.store.origin(), &self.store.public_key()),
        }))
    }
}
