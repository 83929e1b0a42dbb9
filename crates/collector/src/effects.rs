//! What follows from a new record, written in the same transaction as the record
//! ([`crate::store::Effect`]): the events the site owner's webhooks subscribe to, the
//! confirmation e-mail of a double opt-in signup. Each part adds its own here.

use crate::records::Accepted;
use crate::state::Collector;
use crate::store::Effect;

/// The effects of appending `accepted`, for the collector's settings now.
pub fn of(collector: &Collector, accepted: &Accepted) -> Vec<Effect> {
    let mut effects = crate::webhooks::effects(collector, accepted);
    effects.extend(crate::optin::effect(collector, accepted));
    effects
}
