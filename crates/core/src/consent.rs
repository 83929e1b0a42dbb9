//! Consent over time: where a subject's consent to each purpose stands now, as one pure
//! function of their records (DESIGN.md, "Consent over time"). Everything that answers "may
//! we contact them" (the admin endpoints, the preference page, the one-click unsubscribe,
//! the account form) asks [`standing`], and nothing else decides it.
//!
//! ```
//! use unticked_core::consent::{standing, Now, Terms};
//! use unticked_core::config::{Channel, Retention};
//! use unticked_core::record::State;
//!
//! let terms = [Terms { id: "email-offers".into(), version: 2, channel: Channel::Email, retention: Retention::UntilWithdrawn }];
//! let given_v1 = unticked_core::consent::Event::test("r1", 1_000, &[("email-offers", 1, State::Given)]);
//! let now = standing(&terms, &[given_v1], 2_000);
//! assert!(matches!(now[0].now, Now::Outdated { version: 1, current: 2, .. }));
//! ```

use alloc::{string::String, vec::Vec};

use crate::config::{Channel, Config, Retention};
use crate::record::{Act, ConsentRecord, Signer, State};
use crate::vocabulary::{Provenance, Source};

/// What the state function needs of a purpose as the config defines it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    pub id: String,
    /// The purpose's version now: consent given under an older one is [`Now::Outdated`] (R11).
    pub version: u32,
    pub channel: Channel,
    /// How long a consent lasts once given (Art. 13(2)(a)): [`Now::Expired`] after it.
    pub retention: Retention,
}

impl Terms {
    /// The terms of every purpose of `config`, in its order.
    pub fn of(config: &Config) -> Vec<Terms> {
        config
            .purposes
            .iter()
            .map(|p| Terms {
                id: p.id.clone(),
                version: p.version,
                channel: p.channel,
                retention: p.retention,
            })
            .collect()
    }
}

/// One purpose of one record, as the state function reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub purpose: String,
    pub version: u32,
    pub state: State,
}

/// One record of the subject, reduced to what decides their consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The record's id.
    pub record: String,
    /// When the decision was made (`captured_at`, ms since the epoch).
    pub at: u64,
    /// The way in ([`Source`]): the checkout, the newsletter, the shop's account page, the
    /// collector's preference page, a one-click unsubscribe…
    pub source: Source,
    /// Who signed the record: the shopper's browser, or the collector for a step taken
    /// without JavaScript.
    pub signer: Signer,
    pub entries: Vec<Entry>,
    /// The channels of the contacts the record discloses: an import applies to the
    /// purposes on them.
    pub channels: Vec<Channel>,
    /// The collector's step the record states (a confirmation, an import, an assisted
    /// consent, a rectification), if any.
    pub act: Option<Act>,
    /// Set by the collector when the record is a signup from a form that asks for double
    /// opt-in (the config it was made under says so): until this time (ms) its consents on
    /// the e-mail channel wait for the subject to confirm them, and lapse after it.
    pub awaits: Option<u64>,
}

impl Event {
    /// The event a consent record is.
    pub fn of(record: &ConsentRecord) -> Event {
        Event {
            record: record.id.clone(),
            at: record.captured_at,
            source: record.source,
            signer: record.signer,
            entries: record
                .purposes
                .iter()
                .map(|p| Entry {
                    purpose: p.id.clone(),
                    version: p.version,
                    state: p.state,
                })
                .collect(),
            channels: record.subjects.iter().map(|s| s.channel).collect(),
            #[cfg(feature = "verify")]
            act: record.act.clone(),
            #[cfg(not(feature = "verify"))]
            act: None,
            awaits: None,
        }
    }

    /// A checkout event with these `(purpose, version, state)` entries: for examples and tests.
    pub fn test(record: &str, at: u64, entries: &[(&str, u32, State)]) -> Event {
        Event {
            record: String::from(record),
            at,
            source: Source::Checkout,
            signer: Signer::Browser,
            entries: entries
                .iter()
                .map(|(purpose, version, state)| Entry {
                    purpose: String::from(*purpose),
                    version: *version,
                    state: *state,
                })
                .collect(),
            channels: Vec::new(),
            act: None,
            awaits: None,
        }
    }
}

/// What an unconfirmed consent waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Awaiting {
    /// The subject to use the link e-mailed to them after signing up (double opt-in): the
    /// signup gave the purpose under `version`.
    Confirmation { version: u32 },
    /// An imported contact to answer the re-permission link: nothing was ever given.
    Answer { provenance: Provenance },
}

/// A pause of processing for one purpose (Art. 18), since `since` (ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    pub purpose: String,
    pub since: u64,
}

/// Where a subject's consent to one purpose stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Now {
    /// No record of the subject asks about this purpose.
    Unasked,
    /// Given (or renewed) by `record` under the purpose's current `version`, and standing.
    Given { record: String, version: u32, at: u64 },
    /// Refused (the box left unticked) and never given.
    Refused { record: String, at: u64 },
    /// Withdrawn (Art. 7(3)) by `record`, at `at`, through `path`.
    Withdrawn {
        record: String,
        at: u64,
        path: Source,
        signer: Signer,
    },
    /// Given under `version`, older than the purpose's `current` one: the change needs
    /// consent again, for this purpose alone (R11; EDPB 05/2020 ¶110–111).
    Outdated {
        record: String,
        version: u32,
        current: u32,
        at: u64,
    },
    /// Given at `at`, and the purpose's retention ended at `ended` (Art. 5(1)(e), 13(2)(a)).
    Expired {
        record: String,
        version: u32,
        at: u64,
        ended: u64,
    },
    /// Not in force yet: a double opt-in signup waiting for its confirmation, or an
    /// imported contact waiting for an answer, since `at` (by `record`) and until `until`,
    /// when it becomes [`Now::Expired`].
    Unconfirmed {
        record: String,
        at: u64,
        until: u64,
        awaiting: Awaiting,
    },
    /// Processing for this purpose is paused (Art. 18(1)) since `since`; `under` is where
    /// the consent stands otherwise, and stands again when the restriction is lifted.
    Restricted { since: u64, under: alloc::boxed::Box<Now> },
}

impl Now {
    /// The one answer to "may we contact them for this purpose".
    pub fn may_contact(&self) -> bool {
        matches!(self, Now::Given { .. })
    }

    /// Whether a preference page asks for this purpose again, unticked, with the current
    /// wording: a consent that stood once and no longer does by itself (R11).
    pub fn asks_again(&self) -> bool {
        matches!(self, Now::Outdated { .. } | Now::Expired { .. })
    }

    /// The state's name, as the admin API and the docs spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Now::Unasked => "unasked",
            Now::Given { .. } => "given",
            Now::Refused { .. } => "refused",
            Now::Withdrawn { .. } => "withdrawn",
            Now::Outdated { .. } => "outdated",
            Now::Expired { .. } => "expired",
            Now::Unconfirmed { .. } => "unconfirmed",
            Now::Restricted { .. } => "restricted",
        }
    }

    /// What a new tick of the box records: `renewed` where consent stood once under terms
    /// that changed or ran out (DPV `dpv:RenewedConsentGiven`), `given` otherwise.
    pub fn tick_records(&self) -> State {
        if self.asks_again() {
            State::Renewed
        } else {
            State::Given
        }
    }
}

/// One purpose's standing for a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub purpose: String,
    pub channel: Channel,
    pub now: Now,
}

/// Where a subject's consent stands now, for every purpose of `terms` (in its order), from
/// their `events` in log order, at `now_ms`.
///
/// - Decisions apply in the order they were made (`at`), the log's order breaking ties, so
///   that a checkout record delivered late from a shopper's outbox does not undo a
///   withdrawal made after it.
/// - `given` and `renewed` give; `withdrawn` withdraws (Art. 7(3)).
/// - `refused` (a box left unticked) never takes back a consent that stands: withdrawing is
///   an act of its own (Art. 7(3)), and a later checkout where the shopper did not tick
///   again is no withdrawal. Nor does it hide a withdrawal. It is the standing
///   only where nothing was ever given or withdrawn.
/// - A consent given under an older version than the purpose's current one is `outdated`
///   (R11); one given longer ago than the purpose's retention is `expired`. Expiry wins:
///   after it no consent exists to update.
/// - Purposes the records name but `terms` no longer has are left out: nobody may be
///   contacted for a purpose the site owner no longer has.
/// - A signup from a double opt-in form ([`Event::awaits`]) gives its e-mail purposes only
///   once the subject confirms them ([`Act::Confirms`]): until then they are `unconfirmed`,
///   and `expired` after the deadline. A consent that already stands is not put back to
///   waiting by a new signup.
/// - An import ([`Act::Imported`]) makes every purpose on the contact's channels that was
///   never asked `unconfirmed`, until its answer or its deadline: never `given`.
pub fn standing(terms: &[Terms], events: &[Event], now_ms: u64) -> Vec<Standing> {
    let mut ordered: Vec<&Event> = events.iter().collect();
    // A stable sort: equal times keep the log's order.
    ordered.sort_by_key(|e| e.at);
    terms
        .iter()
        .map(|t| Standing {
            purpose: t.id.clone(),
            channel: t.channel,
            now: settle(t, decided(t, &ordered), now_ms),
        })
        .collect()
}

/// `standing` with the subject's restrictions (Art. 18) applied: a restricted purpose is
/// [`Now::Restricted`], whatever it was, and nobody may be contacted for it.
pub fn restricted(standing: Vec<Standing>, restrictions: &[Restriction]) -> Vec<Standing> {
    standing
        .into_iter()
        .map(|s| match restrictions.iter().find(|r| r.purpose == s.purpose) {
            Some(r) => Standing {
                now: Now::Restricted {
                    since: r.since,
                    under: alloc::boxed::Box::new(s.now),
                },
                ..s
            },
            None => s,
        })
        .collect()
}

/// Whether a contact may be reached on a channel now: the one answer the audience and
/// suppression lists give a mailing tool (issue 15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach<'a> {
    /// At least one of the asked purposes on the channel stands given: these.
    Contact(Vec<&'a Standing>),
    /// None may be used, and each of these stands in the way, with its reason
    /// ([`Now::name`]: withdrawn, refused, expired, outdated, unconfirmed, restricted).
    Suppress(Vec<&'a Standing>),
    /// Nothing was ever asked of the contact for these purposes: on neither list.
    Unknown,
}

/// Where a contact stands for `channel` (and only `purpose`, when one is named), from its
/// [`standing`] after [`restricted`]. A contact is on the audience while any purpose of the
/// channel may be used (Art. 6(1)(a): consent is per purpose, so the line names them), and on
/// the suppression list when none may be and some decision or pause stands in the way: the
/// two lists never share a contact, so a tool that loads both is never told two things.
pub fn reach<'a>(standing: &'a [Standing], channel: Channel, purpose: Option<&str>) -> Reach<'a> {
    let asked: Vec<&Standing> = standing
        .iter()
        .filter(|s| s.channel == channel && purpose.is_none_or(|p| p == s.purpose))
        .collect();
    let given: Vec<&Standing> = asked.iter().copied().filter(|s| s.now.may_contact()).collect();
    if !given.is_empty() {
        return Reach::Contact(given);
    }
    let blocked: Vec<&Standing> = asked.into_iter().filter(|s| !matches!(s.now, Now::Unasked)).collect();
    if blocked.is_empty() {
        Reach::Unknown
    } else {
        Reach::Suppress(blocked)
    }
}

/// The last decision that stands for the purpose of `terms`, before versions and
/// retention are applied.
fn decided(terms: &Terms, ordered: &[&Event]) -> Now {
    let purpose = terms.id.as_str();
    let mut now = Now::Unasked;
    for event in ordered {
        if let Some(Act::Imported { provenance, until, .. }) = &event.act {
            if matches!(now, Now::Unasked) && event.channels.contains(&terms.channel) {
                now = Now::Unconfirmed {
                    record: event.record.clone(),
                    at: event.at,
                    until: *until,
                    awaiting: Awaiting::Answer {
                        provenance: *provenance,
                    },
                };
            }
        }
        for entry in event.entries.iter().filter(|e| e.purpose == purpose) {
            now = match entry.state {
                State::Given | State::Renewed => match event.awaits {
                    Some(_) if matches!(now, Now::Given { .. }) => continue,
                    Some(until) if terms.channel == Channel::Email => Now::Unconfirmed {
                        record: event.record.clone(),
                        at: event.at,
                        until,
                        awaiting: Awaiting::Confirmation { version: entry.version },
                    },
                    _ => Now::Given {
                        record: event.record.clone(),
                        version: entry.version,
                        at: event.at,
                    },
                },
                State::Withdrawn => Now::Withdrawn {
                    record: event.record.clone(),
                    at: event.at,
                    path: event.source,
                    signer: event.signer,
                },
                State::Refused
                    if !matches!(
                        now,
                        Now::Unasked
                            | Now::Refused { .. }
                            | Now::Unconfirmed {
                                awaiting: Awaiting::Answer { .. },
                                ..
                            }
                    ) =>
                {
                    continue
                }
                State::Refused => Now::Refused {
                    record: event.record.clone(),
                    at: event.at,
                },
            };
        }
    }
    now
}

/// A standing consent checked against the purpose's terms now.
fn settle(terms: &Terms, decided: Now, now_ms: u64) -> Now {
    let (record, version, at) = match decided {
        Now::Given { record, version, at } => (record, version, at),
        // A confirmation or an answer that never came: the signup or the import lapsed.
        Now::Unconfirmed {
            record,
            at,
            until,
            awaiting,
        } if now_ms >= until => {
            let version = match awaiting {
                Awaiting::Confirmation { version } => version,
                Awaiting::Answer { .. } => terms.version,
            };
            return Now::Expired {
                record,
                version,
                at,
                ended: until,
            };
        }
        other => return other,
    };
    if let Retention::Months(months) = terms.retention {
        let ended = add_months(at, months);
        if now_ms >= ended {
            return Now::Expired {
                record,
                version,
                at,
                ended,
            };
        }
    }
    if version < terms.version {
        return Now::Outdated {
            record,
            version,
            current: terms.version,
            at,
        };
    }
    Now::Given { record, version, at }
}

const DAY_MS: u64 = 86_400_000;

/// `at` plus `months` calendar months (UTC), the day of the month kept where the target
/// month has it and the month's last day otherwise: "24 months from your consent" ends on
/// the same date two years on.
pub fn add_months(at: u64, months: u32) -> u64 {
    let days = (at / DAY_MS) as i64;
    let in_day = at % DAY_MS;
    let (y, m, d) = civil_from_days(days);
    let total = y * 12 + i64::from(m - 1) + i64::from(months);
    let (ty, tm) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
    let day = d.min(days_in_month(ty, tm));
    (days_from_civil(ty, tm, day) as u64) * DAY_MS + in_day
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil calendar algorithms (proleptic Gregorian, days since 1970-01-01,
// http://howardhinnant.github.io/date_algorithms.html).

/// The UTC date (year, month 1–12, day 1–31) of a day counted from 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PURPOSES: [&str; 3] = ["email-offers", "sms-offers", "catalogue-post"];

    fn terms(versions: [u32; 3], retention: Retention) -> Vec<Terms> {
        PURPOSES
            .iter()
            .zip(versions)
            .zip([Channel::Email, Channel::Sms, Channel::Post])
            .map(|((id, version), channel)| Terms {
                id: String::from(*id),
                version,
                channel,
                retention,
            })
            .collect()
    }

    fn state() -> impl Strategy<Value = State> {
        prop_oneof![
            Just(State::Given),
            Just(State::Refused),
            Just(State::Withdrawn),
            Just(State::Renewed)
        ]
    }

    /// Events with distinct times, one to three purposes each, versions 1–3.
    fn events() -> impl Strategy<Value = Vec<Event>> {
        proptest::collection::vec(
            (
                proptest::collection::btree_map(0usize..3, (1u32..=3, state()), 1..=3),
                1u64..1_000,
            ),
            0..12,
        )
        .prop_map(|items| {
            items
                .into_iter()
                .enumerate()
                .map(|(i, (entries, gap))| {
                    let entries: Vec<(&str, u32, State)> =
                        entries.into_iter().map(|(p, (v, s))| (PURPOSES[p], v, s)).collect();
                    // Times strictly increase with the index, so "made after" is the index.
                    Event::test(&alloc::format!("r{i}"), 1_000_000 * (i as u64 + 1) + gap, &entries)
                })
                .collect()
        })
    }

    /// The entries of `purpose`, in the order the events were made.
    fn entries_of<'e>(events: &'e [Event], purpose: &str) -> Vec<(&'e Event, &'e Entry)> {
        let mut out: Vec<_> = events
            .iter()
            .flat_map(|e| e.entries.iter().filter(|x| x.purpose == purpose).map(move |x| (e, x)))
            .collect();
        out.sort_by_key(|(e, _)| e.at);
        out
    }

    const LATER: u64 = 100_000_000;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every purpose of the terms has exactly one standing, in the terms' order.
        #[test]
        fn every_purpose_has_one_standing(events in events()) {
            let t = terms([1, 1, 1], Retention::UntilWithdrawn);
            let now = standing(&t, &events, LATER);
            prop_assert_eq!(now.iter().map(|s| s.purpose.as_str()).collect::<Vec<_>>(), PURPOSES.to_vec());
        }

        /// The last give or withdrawal made decides; refusals only stand where nothing was given.
        #[test]
        fn the_last_give_or_withdrawal_decides(events in events()) {
            let t = terms([3, 3, 3], Retention::UntilWithdrawn);
            for s in standing(&t, &events, LATER) {
                let entries = entries_of(&events, &s.purpose);
                let last_act = entries.iter().rev().find(|(_, x)| x.state != State::Refused);
                match (last_act, &s.now) {
                    (None, Now::Unasked) => prop_assert!(entries.is_empty()),
                    (None, Now::Refused { record, .. }) => {
                        prop_assert_eq!(record, &entries.last().unwrap().0.record);
                    }
                    (Some((e, x)), Now::Withdrawn { record, at, .. }) => {
                        prop_assert_eq!(x.state, State::Withdrawn);
                        prop_assert_eq!((record, *at), (&e.record, e.at));
                    }
                    (Some((e, x)), Now::Given { record, version, .. } | Now::Outdated { record, version, .. }) => {
                        prop_assert!(matches!(x.state, State::Given | State::Renewed));
                        prop_assert_eq!((record, *version), (&e.record, x.version));
                    }
                    (act, now) => prop_assert!(false, "{:?} gave {:?}", act, now),
                }
            }
        }

        /// A refusal never takes back a consent that stands.
        #[test]
        fn a_refusal_never_takes_back_a_consent(events in events(), purpose in 0usize..3) {
            let t = terms([3, 3, 3], Retention::UntilWithdrawn);
            let before = standing(&t, &events, LATER);
            let mut more = events.clone();
            more.push(Event::test("late", 1_000_000 * 100, &[(PURPOSES[purpose], 3, State::Refused)]));
            let after = standing(&t, &more, LATER);
            if before[purpose].now.may_contact() {
                prop_assert_eq!(&after[purpose].now, &before[purpose].now);
            }
        }

        /// A withdrawal made last always ends consent, whatever came before.
        #[test]
        fn a_withdrawal_made_last_always_ends_consent(events in events(), purpose in 0usize..3) {
            let t = terms([1, 2, 3], Retention::Months(24));
            let mut more = events.clone();
            more.push(Event::test("out", 1_000_000 * 100, &[(PURPOSES[purpose], 1, State::Withdrawn)]));
            let now = standing(&t, &more, LATER);
            let withdrawn = matches!(&now[purpose].now, Now::Withdrawn { record, .. } if record == "out");
            prop_assert!(withdrawn);
            prop_assert!(!now[purpose].now.may_contact());
        }

        /// The log's order does not matter when the times differ: what was decided later wins,
        /// so a record delivered late from an outbox never undoes a later withdrawal.
        #[test]
        fn the_order_of_delivery_does_not_matter(events in events(), seed in any::<u64>()) {
            let t = terms([2, 2, 2], Retention::Months(1));
            let mut shuffled = events.clone();
            // A deterministic shuffle from the seed.
            let mut x = seed | 1;
            for i in (1..shuffled.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                shuffled.swap(i, (x % (i as u64 + 1)) as usize);
            }
            prop_assert_eq!(standing(&t, &events, LATER), standing(&t, &shuffled, LATER));
        }

        /// A version bump makes that purpose alone outdated for a subject who gave the old
        /// version; the other purposes stand as they did (R11).
        #[test]
        fn a_version_bump_outdates_that_purpose_alone(events in events(), purpose in 0usize..3) {
            let t = terms([3, 3, 3], Retention::UntilWithdrawn);
            let before = standing(&t, &events, LATER);
            let mut versions = [3, 3, 3];
            versions[purpose] = 4;
            let after = standing(&terms(versions, Retention::UntilWithdrawn), &events, LATER);
            for i in 0..3 {
                if i != purpose {
                    prop_assert_eq!(&after[i].now, &before[i].now);
                } else if let Now::Given { record, version, at } | Now::Outdated { record, version, at, .. } = &before[i].now {
                    prop_assert_eq!(&after[i].now, &Now::Outdated { record: record.clone(), version: *version, current: 4, at: *at });
                } else {
                    prop_assert_eq!(&after[i].now, &before[i].now);
                }
            }
        }

        /// Renewing an outdated purpose under its current version clears it, and nothing else.
        #[test]
        fn renewing_clears_outdated(events in events(), purpose in 0usize..3) {
            let t = terms([4, 4, 4], Retention::UntilWithdrawn);
            let before = standing(&t, &events, LATER);
            let mut more = events.clone();
            more.push(Event::test("renew", 1_000_000 * 100, &[(PURPOSES[purpose], 4, before[purpose].now.tick_records())]));
            let after = standing(&t, &more, LATER);
            let renewed = matches!(&after[purpose].now, Now::Given { record, version: 4, .. } if record == "renew");
            prop_assert!(renewed);
            for i in (0..3).filter(|i| *i != purpose) {
                prop_assert_eq!(&after[i].now, &before[i].now);
            }
        }

        /// A consent given is expired exactly from its retention's end on.
        #[test]
        fn consent_expires_at_the_end_of_its_retention(at in 0u64..4_000_000_000_000, months in 1u32..120, after in 0u64..10_000_000_000) {
            let t = alloc::vec![Terms { id: "p".into(), version: 1, channel: Channel::Phone, retention: Retention::Months(months) }];
            let given = [Event::test("g", at, &[("p", 1, State::Given)])];
            let ended = add_months(at, months);
            prop_assert!(ended > at + u64::from(months) * 27 * DAY_MS);
            let standing_before = matches!(standing(&t, &given, ended - 1)[0].now, Now::Given { .. });
            prop_assert!(standing_before);
            prop_assert_eq!(&standing(&t, &given, ended + after)[0].now, &Now::Expired { record: "g".into(), version: 1, at, ended });
        }

        /// The calendar arithmetic agrees with itself: days to a date and back.
        #[test]
        fn civil_dates_round_trip(days in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn months_are_calendar_months() {
        let day = |y, m, d| days_from_civil(y, m, d) as u64 * DAY_MS;
        assert_eq!(add_months(day(2026, 12, 2) + 5, 24), day(2028, 12, 2) + 5);
        assert_eq!(add_months(day(2024, 1, 31), 1), day(2024, 2, 29));
        assert_eq!(add_months(day(2023, 1, 31), 1), day(2023, 2, 28));
        assert_eq!(add_months(day(2026, 11, 30), 3), day(2027, 2, 28));
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn a_withdrawal_names_its_way_in_and_its_signer() {
        let t = terms([1, 1, 1], Retention::UntilWithdrawn);
        let mut out = Event::test("w", 20, &[("sms-offers", 1, State::Withdrawn)]);
        out.source = Source::Unsubscribe;
        out.signer = Signer::Collector;
        let given = Event::test(
            "g",
            10,
            &[("email-offers", 1, State::Given), ("sms-offers", 1, State::Given)],
        );
        let now = standing(&t, &[given, out], 30);
        assert!(now[0].now.may_contact());
        assert_eq!(
            now[1].now,
            Now::Withdrawn {
                record: "w".into(),
                at: 20,
                path: Source::Unsubscribe,
                signer: Signer::Collector
            }
        );
        assert_eq!(now[2].now, Now::Unasked);
    }
}

#[cfg(test)]
mod opt_in_tests {
    use super::*;

    fn email_terms() -> Vec<Terms> {
        alloc::vec![
            Terms {
                id: "email-offers".into(),
                version: 1,
                channel: Channel::Email,
                retention: Retention::Months(24)
            },
            Terms {
                id: "sms-offers".into(),
                version: 1,
                channel: Channel::Sms,
                retention: Retention::UntilWithdrawn
            },
        ]
    }

    fn signup(awaits: u64) -> Event {
        let mut e = Event::test(
            "signup",
            10,
            &[("email-offers", 1, State::Given), ("sms-offers", 1, State::Given)],
        );
        e.awaits = Some(awaits);
        e
    }

    #[test]
    fn a_double_opt_in_signup_waits_for_its_confirmation_on_the_email_channel_only() {
        let now = standing(&email_terms(), &[signup(1_000)], 500);
        assert_eq!(
            now[0].now,
            Now::Unconfirmed {
                record: "signup".into(),
                at: 10,
                until: 1_000,
                awaiting: Awaiting::Confirmation { version: 1 }
            }
        );
        assert!(!now[0].now.may_contact());
        assert!(now[1].now.may_contact(), "an SMS consent is not confirmed by e-mail");
    }

    #[test]
    fn a_confirmation_gives_and_a_missing_one_lapses() {
        let mut confirm = Event::test("confirm", 600, &[("email-offers", 1, State::Given)]);
        confirm.signer = Signer::Collector;
        confirm.act = Some(Act::Confirms("signup".into()));
        let now = standing(&email_terms(), &[signup(1_000), confirm], 2_000);
        assert_eq!(
            now[0].now,
            Now::Given {
                record: "confirm".into(),
                version: 1,
                at: 600
            }
        );
        let lapsed = standing(&email_terms(), &[signup(1_000)], 1_000);
        assert_eq!(
            lapsed[0].now,
            Now::Expired {
                record: "signup".into(),
                version: 1,
                at: 10,
                ended: 1_000
            }
        );
    }

    #[test]
    fn a_new_signup_does_not_put_a_standing_consent_back_to_waiting() {
        let given = Event::test("given", 5, &[("email-offers", 1, State::Given)]);
        let now = standing(&email_terms(), &[given, signup(1_000)], 500);
        assert_eq!(
            now[0].now,
            Now::Given {
                record: "given".into(),
                version: 1,
                at: 5
            }
        );
    }

    fn import(until: u64) -> Event {
        let mut e = Event::test("import", 10, &[]);
        e.source = Source::Import;
        e.signer = Signer::Collector;
        e.channels = alloc::vec![Channel::Email];
        e.act = Some(Act::Imported {
            provenance: Provenance::Unknown,
            collected_at: None,
            until,
        });
        e
    }

    #[test]
    fn an_import_is_never_a_consent_and_asks_on_its_channels_only() {
        let now = standing(&email_terms(), &[import(1_000)], 500);
        assert_eq!(
            now[0].now,
            Now::Unconfirmed {
                record: "import".into(),
                at: 10,
                until: 1_000,
                awaiting: Awaiting::Answer {
                    provenance: Provenance::Unknown
                }
            }
        );
        assert!(!now[0].now.may_contact());
        assert_eq!(now[1].now, Now::Unasked);
        assert!(matches!(
            standing(&email_terms(), &[import(1_000)], 1_000)[0].now,
            Now::Expired { ended: 1_000, .. }
        ));
    }

    #[test]
    fn an_imported_contact_answers_by_giving_or_refusing_and_an_import_never_downgrades() {
        let mut answer = Event::test("answer", 20, &[("email-offers", 1, State::Refused)]);
        answer.source = Source::Import;
        assert!(matches!(
            standing(&email_terms(), &[import(1_000), answer.clone()], 500)[0].now,
            Now::Refused { .. }
        ));
        answer.entries[0].state = State::Given;
        assert!(standing(&email_terms(), &[import(1_000), answer], 5_000)[0]
            .now
            .may_contact());
        let given = Event::test("given", 5, &[("email-offers", 1, State::Given)]);
        assert!(standing(&email_terms(), &[given, import(1_000)], 500)[0]
            .now
            .may_contact());
    }

    #[test]
    fn a_restriction_pauses_one_purpose_whatever_it_was() {
        let given = Event::test(
            "given",
            5,
            &[("email-offers", 1, State::Given), ("sms-offers", 1, State::Given)],
        );
        let now = restricted(
            standing(&email_terms(), &[given], 50),
            &[Restriction {
                purpose: "sms-offers".into(),
                since: 40,
            }],
        );
        assert!(now[0].now.may_contact());
        assert!(!now[1].now.may_contact());
        assert_eq!(now[1].now.name(), "restricted");
        let Now::Restricted { under, since: 40 } = &now[1].now else {
            panic!("{:?}", now[1].now)
        };
        assert!(under.may_contact());
    }
}

#[cfg(test)]
mod reach_tests {
    use super::*;

    fn on(purpose: &str, channel: Channel, now: Now) -> Standing {
        Standing {
            purpose: purpose.into(),
            channel,
            now,
        }
    }

    fn given(record: &str) -> Now {
        Now::Given {
            record: record.into(),
            version: 1,
            at: 5,
        }
    }

    fn withdrawn() -> Now {
        Now::Withdrawn {
            record: "w".into(),
            at: 9,
            path: Source::Unsubscribe,
            signer: Signer::Collector,
        }
    }

    #[test]
    fn a_contact_with_one_purpose_given_on_the_channel_is_on_the_audience_with_that_purpose_only() {
        let s = [
            on("email-offers", Channel::Email, withdrawn()),
            on("birthday-greetings", Channel::Email, given("b")),
            on("sms-offers", Channel::Sms, given("s")),
        ];
        let Reach::Contact(purposes) = reach(&s, Channel::Email, None) else {
            panic!("expected the audience")
        };
        assert_eq!(purposes, [&s[1]]);
        // Asked for the withdrawn purpose alone, the same contact is suppressed, with why.
        assert_eq!(
            reach(&s, Channel::Email, Some("email-offers")),
            Reach::Suppress(alloc::vec![&s[0]])
        );
    }

    #[test]
    fn a_restricted_consent_suppresses_and_an_unasked_purpose_lists_nobody() {
        let s = restricted(
            alloc::vec![
                on("email-offers", Channel::Email, given("e")),
                on("post", Channel::Post, Now::Unasked)
            ],
            &[Restriction {
                purpose: "email-offers".into(),
                since: 7,
            }],
        );
        let Reach::Suppress(why) = reach(&s, Channel::Email, None) else {
            panic!("a restricted purpose may not be used")
        };
        assert_eq!(why[0].now.name(), "restricted");
        assert_eq!(reach(&s, Channel::Post, None), Reach::Unknown);
        assert_eq!(reach(&s, Channel::Sms, None), Reach::Unknown);
    }
}
