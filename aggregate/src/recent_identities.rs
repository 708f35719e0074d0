//! The sink's memory of the identities stored recently, so that most events need no ClickHouse query to learn
//! whether their identity is already stored (pure: no I/O).
//!
//! Why: the check against the store reads every stored event of the batch's subscriptions within a day of the
//! batch's timestamps. For live traffic that is the whole recent day of those subscriptions, read again at every
//! flush: the sink's cost grew with the day's volume, not with the batch. Each sink owns its partitions, and every
//! event of a subscription is on one partition, so once a sink has read a subscription's recent identities from the
//! store, it sees every later one itself.
//!
//! What it claims, per subscription: every stored identity whose event timestamp is at or after `complete_from` is
//! here (loaded by one query, then added as the sink stores them). An event whose reach (a day either side of its
//! timestamp, as the store check) starts before that bound is [`Lookup::Unknown`], and the caller asks the store.
//!
//! When the claim could be wrong it is dropped, not trusted: after a failed flush (ClickHouse may hold rows the sink
//! did not hear about) and after a rebalance (another sink may have written the partition), the caller clears it.
//! Should another writer slip past anyway, reads still count each identity once; the claim only saves queries.
//!
//! Identities are kept as 128-bit SipHash values of (organization, subscription, transaction id): two different
//! identities of one subscription are taken for each other with a probability near 2^-128 per pair.
//!
//! Two tiers: an exact map (about 50 bytes an identity, answers "stored, received at" without a query) up to
//! `max_entries`, then an [`IdentityFilter`] (15 bits an identity) whose "maybe" is [`Lookup::Unknown`]: new events
//! are still answered here, and duplicates, rare, ask the store. Only when both are full does a subscription lose its
//! claim.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use siphasher::sip128::{Hasher128, SipHasher13};
use uuid::Uuid;

use crate::identity_filter::IdentityFilter;

/// What is known of one identity at one event timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Stored, with a copy within the reach of the timestamp; `ingested_us` is the stored copy's receipt time.
    Stored { ingested_us: i64 },
    /// Not stored within the reach of the timestamp.
    New,
    /// Not known here: ask the store.
    Unknown,
}

/// How far before the present, beyond the reach, a subscription's stored identities are loaded and kept: events up
/// to an hour old are then answered here.
pub const MARGIN_MICROS: i64 = 3_600_000_000;

/// Generations of the filter tier, each of `max_entries` identities: eight times the exact map's identities, in
/// under a third of its memory.
pub const FILTER_GENERATIONS: usize = 8;

/// How often [`RecentIdentities::expire_due`] drops identities that fell out of the window.
const EXPIRE_EVERY_MICROS: i64 = 60_000_000;

#[derive(Debug, Clone, Copy)]
struct Stored {
    timestamp_us: i64,
    ingested_us: i64,
}

/// Stored identities of the subscriptions the sink has loaded; see the module comment.
#[derive(Debug)]
pub struct RecentIdentities {
    /// How far from an event's timestamp a stored copy counts as the same event (the store check's reach).
    reach_us: i64,
    /// Most identities kept in `ids`; the rest go to `filter`. When both are full, no subscription is loaded and one
    /// that cannot add its new identities loses its claim, until expiry makes room.
    max_entries: usize,
    /// Per subscription: the timestamp from which every stored identity is in `ids` or `filter`.
    complete_from: HashMap<(Uuid, String), i64>,
    ids: HashMap<u128, Stored, BuildHasherDefault<KeyIsHash>>,
    filter: IdentityFilter,
    /// When [`RecentIdentities::expire_due`] last expired (Unix microseconds).
    expired_at_us: Option<i64>,
}

/// The keys of `ids` are SipHash values already: hashing them again (the map's default SipHash showed as ~2 % of
/// the sink process under load) adds nothing, so the map takes their bits as they are.
#[derive(Default)]
struct KeyIsHash(u64);

impl Hasher for KeyIsHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = (n as u64) ^ ((n >> 64) as u64);
    }

    /// Only `u128` keys are hashed; anything else still gets a usable (if plain) hash.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
}

fn identity_hash(organization_id: Uuid, external_subscription_id: &str, transaction_id: &str) -> u128 {
    let mut h = SipHasher13::new();
    h.write(organization_id.as_bytes());
    // Lengths first, so ("a", "bc") and ("ab", "c") differ.
    h.write_usize(external_subscription_id.len());
    h.write(external_subscription_id.as_bytes());
    h.write(transaction_id.as_bytes());
    h.finish128().as_u128()
}

impl RecentIdentities {
    /// An exact map of `max_entries` identities and a filter of [`FILTER_GENERATIONS`] times as many.
    pub fn new(reach_us: i64, max_entries: usize) -> Self {
        Self::with_filter(reach_us, max_entries, FILTER_GENERATIONS)
    }

    /// An exact map of `max_entries` identities and a filter of `filter_generations` generations of as many.
    pub fn with_filter(reach_us: i64, max_entries: usize, filter_generations: usize) -> Self {
        RecentIdentities {
            reach_us,
            max_entries,
            complete_from: HashMap::new(),
            ids: HashMap::default(),
            filter: IdentityFilter::new(max_entries, filter_generations),
            expired_at_us: None,
        }
    }

    /// The earliest timestamp whose stored identities are kept at `now_us`: the reach and the margin before it. A
    /// subscription is loaded from there, and identities before it are expired.
    pub fn window_start(&self, now_us: i64) -> i64 {
        now_us - self.reach_us - MARGIN_MICROS
    }

    /// Identities kept exactly.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Identities kept in the filter tier.
    pub fn filtered(&self) -> usize {
        self.filter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.filter.is_empty()
    }

    /// The bound from which the subscription's stored identities are all known, if it was loaded.
    pub fn complete_from(&self, organization_id: Uuid, external_subscription_id: &str) -> Option<i64> {
        // A borrowed key cannot look up a (Uuid, String) map; one small allocation per subscription and batch.
        self.complete_from.get(&(organization_id, external_subscription_id.to_owned())).copied()
    }

    /// What is known of this identity for an event at `timestamp_us`, given its subscription's bound (from
    /// [`RecentIdentities::complete_from`], looked up once per subscription by the caller).
    pub fn lookup(
        &self,
        complete_from: Option<i64>,
        organization_id: Uuid,
        external_subscription_id: &str,
        transaction_id: &str,
        timestamp_us: i64,
    ) -> Lookup {
        let Some(from) = complete_from else { return Lookup::Unknown };
        if timestamp_us.saturating_sub(self.reach_us) < from {
            return Lookup::Unknown;
        }
        let key = identity_hash(organization_id, external_subscription_id, transaction_id);
        match self.ids.get(&key) {
            Some(s) if s.timestamp_us.abs_diff(timestamp_us) <= self.reach_us.unsigned_abs() => {
                Lookup::Stored { ingested_us: s.ingested_us }
            }
            // Maybe a copy the filter holds: only the store knows its timestamp and receipt.
            _ if self.filter.may_contain(key) => Lookup::Unknown,
            _ => Lookup::New,
        }
    }

    /// Records a subscription loaded from the store: `stored` holds every stored identity (transaction id,
    /// timestamp, receipt time of the copy reads keep) whose timestamp is at or after `from`.
    pub fn load<'a>(
        &mut self,
        organization_id: Uuid,
        external_subscription_id: &str,
        from: i64,
        stored: impl IntoIterator<Item = (&'a str, i64, i64)>,
    ) {
        let mut complete = true;
        for (tx, timestamp_us, ingested_us) in stored {
            complete &=
                self.insert(identity_hash(organization_id, external_subscription_id, tx), timestamp_us, ingested_us);
        }
        // The caller loads no more than `room`; should it, the subscription is not claimed.
        if complete {
            self.complete_from.insert((organization_id, external_subscription_id.to_owned()), from);
        }
    }

    /// Whether another subscription may be loaded. Full, the caller asks the store for unloaded subscriptions
    /// instead; expiry makes room again.
    pub fn has_room(&self) -> bool {
        self.room() > 0
    }

    /// How many more identities fit, in both tiers.
    pub fn room(&self) -> usize {
        self.max_entries.saturating_sub(self.ids.len()) + self.filter.room()
    }

    /// Records an identity just stored (both tables hold it).
    pub fn add(
        &mut self,
        organization_id: Uuid,
        external_subscription_id: &str,
        transaction_id: &str,
        timestamp_us: i64,
        ingested_us: i64,
    ) {
        let key = identity_hash(organization_id, external_subscription_id, transaction_id);
        if !self.insert(key, timestamp_us, ingested_us) {
            // Full: the subscription's claim cannot be kept complete, so it is dropped (its events go to the store)
            // rather than everything forgotten, which made every later flush reload every subscription at once.
            self.complete_from.remove(&(organization_id, external_subscription_id.to_owned()));
        }
    }

    /// Keeps an identity, exactly while there is room, else in the filter; false when neither has room.
    fn insert(&mut self, key: u128, timestamp_us: i64, ingested_us: i64) -> bool {
        if let Some(entry) = self.ids.get_mut(&key) {
            // The earliest receipt is the copy reads keep.
            if ingested_us < entry.ingested_us {
                *entry = Stored { timestamp_us, ingested_us };
            }
            return true;
        }
        if self.ids.len() < self.max_entries {
            self.ids.insert(key, Stored { timestamp_us, ingested_us });
            return true;
        }
        self.filter.insert(key, timestamp_us)
    }

    /// Forgets identities with a timestamp before `cutoff_us`; every subscription is then complete from there at
    /// most.
    pub fn expire(&mut self, cutoff_us: i64) {
        self.ids.retain(|_, s| s.timestamp_us >= cutoff_us);
        self.filter.expire(cutoff_us);
        for from in self.complete_from.values_mut() {
            *from = (*from).max(cutoff_us);
        }
    }

    /// Once a minute (by `now_us`), forgets identities before the window ([`RecentIdentities::window_start`]).
    pub fn expire_due(&mut self, now_us: i64) {
        match self.expired_at_us {
            Some(at) if now_us - at < EXPIRE_EVERY_MICROS => {}
            _ => {
                self.expired_at_us = Some(now_us);
                self.expire(self.window_start(now_us));
            }
        }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.ids.clear();
        self.filter.clear();
        self.complete_from.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;

    fn org() -> Uuid {
        Uuid::from_u128(7)
    }

    #[test]
    fn an_unloaded_subscription_is_unknown() {
        let r = RecentIdentities::new(DAY, 100);
        assert_eq!(r.complete_from(org(), "s"), None);
        assert_eq!(r.lookup(None, org(), "s", "t1", 10 * DAY), Lookup::Unknown);
    }

    #[test]
    fn a_loaded_subscription_answers_within_its_bound() {
        let mut r = RecentIdentities::new(DAY, 100);
        r.load(org(), "s", 5 * DAY, [("t1", 6 * DAY, 11)]);
        let from = r.complete_from(org(), "s");
        assert_eq!(from, Some(5 * DAY));
        assert_eq!(r.lookup(from, org(), "s", "t1", 6 * DAY + 5), Lookup::Stored { ingested_us: 11 });
        assert_eq!(r.lookup(from, org(), "s", "t2", 6 * DAY), Lookup::New);
        // Its reach starts before the bound: a stored copy there would not be known.
        assert_eq!(r.lookup(from, org(), "s", "t2", 6 * DAY - 1), Lookup::Unknown);
        // Another subscription, or another organization, is another identity.
        assert_eq!(r.lookup(r.complete_from(org(), "x"), org(), "x", "t1", 6 * DAY), Lookup::Unknown);
        let other = Uuid::from_u128(8);
        r.load(other, "s", 5 * DAY, []);
        assert_eq!(r.lookup(r.complete_from(other, "s"), other, "s", "t1", 6 * DAY), Lookup::New);
    }

    #[test]
    fn a_copy_beyond_the_reach_is_another_event() {
        let mut r = RecentIdentities::new(DAY, 100);
        r.load(org(), "s", 0, []);
        r.add(org(), "s", "t1", 2 * DAY, 5);
        let from = r.complete_from(org(), "s");
        assert_eq!(r.lookup(from, org(), "s", "t1", 3 * DAY), Lookup::Stored { ingested_us: 5 });
        assert_eq!(r.lookup(from, org(), "s", "t1", 3 * DAY + 1), Lookup::New);
    }

    #[test]
    fn the_earliest_receipt_is_kept() {
        let mut r = RecentIdentities::new(DAY, 100);
        r.load(org(), "s", 0, [("t1", 2 * DAY, 9), ("t1", 2 * DAY, 4)]);
        r.add(org(), "s", "t1", 2 * DAY, 7);
        assert_eq!(r.lookup(Some(0), org(), "s", "t1", 2 * DAY), Lookup::Stored { ingested_us: 4 });
    }

    #[test]
    fn ids_are_not_confused_across_the_separator() {
        let mut r = RecentIdentities::new(DAY, 100);
        r.load(org(), "a", 0, [("bc", 2 * DAY, 1)]);
        r.load(org(), "ab", 0, []);
        assert_eq!(r.lookup(Some(0), org(), "ab", "c", 2 * DAY), Lookup::New);
    }

    #[test]
    fn expiry_moves_the_bound() {
        let mut r = RecentIdentities::new(DAY, 3);
        r.load(org(), "s", 0, [("t1", DAY, 1), ("t2", 3 * DAY, 1)]);
        r.expire(2 * DAY);
        assert_eq!(r.len(), 1);
        let from = r.complete_from(org(), "s");
        assert_eq!(from, Some(2 * DAY));
        assert_eq!(r.lookup(from, org(), "s", "t1", 2 * DAY), Lookup::Unknown);
        assert_eq!(r.lookup(from, org(), "s", "t2", 3 * DAY), Lookup::Stored { ingested_us: 1 });
        r.expire_due(10 * DAY);
        assert!(r.is_empty(), "the first call expires before the window");
        r.add(org(), "s", "t3", 3 * DAY, 1);
        r.expire_due(10 * DAY + EXPIRE_EVERY_MICROS - 1);
        assert_eq!(r.len(), 1, "not again within the minute");
        r.expire_due(10 * DAY + EXPIRE_EVERY_MICROS);
        assert!(r.is_empty());
    }

    #[test]
    fn when_full_a_subscription_loses_its_claim_and_nothing_else_is_forgotten() {
        let mut r = RecentIdentities::with_filter(DAY, 3, 0);
        r.load(org(), "s", 2 * DAY, [("t1", 3 * DAY, 1)]);
        r.load(org(), "u", 2 * DAY, [("u1", 3 * DAY, 1)]);
        r.add(org(), "s", "t2", 3 * DAY, 2);
        assert!(!r.has_room());
        // A third subscription would not be loaded by the store (the caller checks `has_room`); an add for a
        // loaded one that does not fit drops that subscription's claim only.
        r.add(org(), "s", "t3", 3 * DAY, 2);
        assert_eq!(r.len(), 3);
        let (s, u) = (r.complete_from(org(), "s"), r.complete_from(org(), "u"));
        assert_eq!(s, None);
        assert_eq!(r.lookup(s, org(), "s", "t3", 3 * DAY), Lookup::Unknown, "t3 was stored, so ask the store");
        assert_eq!(r.lookup(u, org(), "u", "u1", 3 * DAY), Lookup::Stored { ingested_us: 1 });
        assert_eq!(r.lookup(u, org(), "u", "u2", 3 * DAY), Lookup::New);
        // Expiry makes room; the subscription is then loaded again when next seen.
        r.expire(4 * DAY);
        assert!(r.has_room());
    }

    #[test]
    fn past_the_exact_map_the_filter_answers_new_events_and_sends_maybes_to_the_store() {
        // Two exact entries, then one filter generation of two.
        let mut r = RecentIdentities::with_filter(DAY, 2, 1);
        r.load(org(), "s", 2 * DAY, [("t1", 3 * DAY, 1), ("t2", 3 * DAY, 2), ("t3", 3 * DAY, 3)]);
        assert_eq!((r.len(), r.filtered(), r.room()), (2, 1, 1));
        let from = r.complete_from(org(), "s");
        assert_eq!(from, Some(2 * DAY), "all three are known, one of them only approximately");
        assert_eq!(r.lookup(from, org(), "s", "t1", 3 * DAY), Lookup::Stored { ingested_us: 1 });
        assert_eq!(r.lookup(from, org(), "s", "t3", 3 * DAY), Lookup::Unknown, "maybe stored: ask the store");
        // Absent identities are surely new (at 15 bits an identity a false maybe among these few would be a
        // one-in-a-thousand event; the keys are fixed, so the test is deterministic).
        for tx in ["t4", "t5", "t6", "t7"] {
            assert_eq!(r.lookup(from, org(), "s", tx, 3 * DAY), Lookup::New, "{tx}");
        }
        r.add(org(), "s", "t4", 3 * DAY, 4);
        assert_eq!(r.lookup(from, org(), "s", "t4", 3 * DAY), Lookup::Unknown);
        assert!(!r.has_room());
        // Both tiers full: the subscription's claim goes, as with the exact map alone.
        r.add(org(), "s", "t5", 3 * DAY, 5);
        assert_eq!(r.complete_from(org(), "s"), None);
        // Expiry empties the filter's generation once all of it is out of the window.
        r.expire(4 * DAY);
        assert!(r.is_empty());
        assert_eq!(r.room(), 4);
    }
}
