//! The state the HTTP handlers share: the config served, every config version known and
//! what each shows, the store, the admin token and the per-address limits.

use crate::error::{unavailable, Refusal};
use crate::history::History;
use crate::limit::Limits;
use crate::records::Accepted;
use crate::store::{Appended, Store, StoreError};
use std::sync::Arc;
use unticked_core::compiled::Compiled;
use unticked_core::config::Config;
use unticked_core::record;

/// Shared by the handlers.
pub struct Collector {
    /// The config served now.
    pub config: Config,
    /// Every config version served, the current one included: what a record is checked
    /// against is the version it names (crate::history).
    pub history: History,
    pub store: Store,
    /// The bearer token of the admin endpoints; `None` turns them off.
    pub admin_token: Option<String>,
    /// What each client address may do: posts a second, records a day, wrong admin tokens.
    pub limits: Limits,
    /// The origins whose pages may write.
    pub writers: crate::http::Writers,
    /// What consent over time needs: where the collector's links point, and the secret of
    /// the shop's account tokens.
    pub lifecycle: crate::lifecycle::Settings,
    /// The config compiled (its sheets: the account form's and the preference page's rows).
    pub compiled: Compiled,
    /// The server-only settings: webhooks, the SMTP relay, the staff token.
    pub server: crate::settings::ServerSettings,
}

impl Collector {
    /// The state over `store`, serving `config`, whose text hashes to `config_sha256`; every
    /// version `store` holds is loaded beside it ([`History::load`]).
    #[allow(clippy::too_many_arguments)] // each is one part of the state, named at the call
    pub fn new(
        config: Config,
        config_sha256: &str,
        store: Store,
        admin_token: Option<String>,
        limits: Limits,
        writers: crate::http::Writers,
        lifecycle: crate::lifecycle::Settings,
        server: crate::settings::ServerSettings,
    ) -> Arc<Collector> {
        let compiled = unticked_core::compiled::compile(&config, config_sha256);
        Arc::new(Collector {
            history: History::load(&store, config_sha256, config.clone()),
            compiled,
            lifecycle,
            config,
            store,
            admin_token: admin_token.filter(|t| !t.is_empty()),
            limits,
            writers,
            server,
        })
    }

    /// Appends an accepted record to the log, with what follows from it written in the
    /// same transaction ([`crate::effects::of`]): every record goes in through here.
    pub async fn append(&self, accepted: Accepted) -> Result<Appended, StoreError> {
        let effects = crate::effects::of(self, &accepted);
        self.store
            .append_with(
                accepted.opened.record.id.clone(),
                accepted.bytes,
                accepted.disclosures,
                accepted.birthday,
                effects,
            )
            .await
    }

    /// The texts the config served now shows (the preferences form's among them).
    pub fn shown_now(&self) -> &crate::texts::Shown {
        &self
            .history
            .version(self.history.current())
            .expect("the history holds the config it serves")
            .shown
    }

    /// SHA-256 of the config served now: what a record made now names.
    pub fn config_sha256(&self) -> &str {
        self.history.current()
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
