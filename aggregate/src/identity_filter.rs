//! A compact, approximate set of identity hashes: where the sink's memory of stored identities goes once its exact
//! map is full (pure: no I/O).
//!
//! Why: an exact entry costs about 50 bytes, so the exact map holds a day of a few hundred events per second. Past
//! that, a subscription whose identities no longer fit lost its claim and every flush re-read its day from
//! ClickHouse. A Bloom filter keeps an identity in 15 bits and answers "surely not stored" or "maybe": new events
//! (nearly all of them) are still answered without a query, and only the maybes (duplicates, and about 0.07 % of
//! new events per generation) ask the store.
//!
//! Identities go into generations of a fixed size, filled one after the other. A generation is dropped once every
//! identity in it has fallen out of the window (its latest event timestamp is before the cutoff), so memory
//! follows the window. With every generation full, [`IdentityFilter::insert`] refuses and the caller drops the
//! subscription's claim, as the exact map alone did.

use std::collections::VecDeque;

/// Bits per identity and probes per lookup: a false "maybe" for about 0.07 % of absent identities per generation
/// ((1 - e^(-10/15))^10).
const BITS_PER_ITEM: usize = 15;
const PROBES: u64 = 10;

#[derive(Debug)]
struct Generation {
    bits: Vec<u64>,
    items: usize,
    /// The latest event timestamp in it: once before the cutoff, everything in it is.
    latest_us: i64,
}

impl Generation {
    fn new(capacity: usize) -> Self {
        let words = (capacity * BITS_PER_ITEM).div_ceil(64).max(1);
        Generation { bits: vec![0; words], items: 0, latest_us: i64::MIN }
    }

    /// The bit positions of a key: double hashing over its two halves (they are independent SipHash bits already).
    fn positions(&self, key: u128) -> impl Iterator<Item = usize> + use<> {
        let m = (self.bits.len() * 64) as u64;
        let (h1, h2) = (key as u64, ((key >> 64) as u64) | 1);
        (0..PROBES).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % m) as usize)
    }

    fn insert(&mut self, key: u128, timestamp_us: i64) {
        for p in self.positions(key) {
            self.bits[p / 64] |= 1 << (p % 64);
        }
        self.items += 1;
        self.latest_us = self.latest_us.max(timestamp_us);
    }

    fn may_contain(&self, key: u128) -> bool {
        self.positions(key).all(|p| self.bits[p / 64] & (1 << (p % 64)) != 0)
    }
}

/// Generations of Bloom filters over identity hashes; see the module comment.
#[derive(Debug)]
pub struct IdentityFilter {
    per_generation: usize,
    max_generations: usize,
    generations: VecDeque<Generation>,
}

impl IdentityFilter {
    /// Room for `max_generations` generations of `per_generation` identities each; none is allocated until used.
    /// Generations of no identities make a filter that holds none.
    pub fn new(per_generation: usize, max_generations: usize) -> Self {
        let max_generations = if per_generation == 0 { 0 } else { max_generations };
        IdentityFilter { per_generation: per_generation.max(1), max_generations, generations: VecDeque::new() }
    }

    /// Adds an identity stored with an event at `timestamp_us`; false when every generation is full (it is not
    /// kept, and the caller can no longer claim to know every identity of its subscription).
    pub fn insert(&mut self, key: u128, timestamp_us: i64) -> bool {
        let current_full = self.generations.back().is_none_or(|g| g.items >= self.per_generation);
        if current_full {
            if self.generations.len() >= self.max_generations {
                return false;
            }
            self.generations.push_back(Generation::new(self.per_generation));
        }
        match self.generations.back_mut() {
            Some(g) => {
                g.insert(key, timestamp_us);
                true
            }
            None => false,
        }
    }

    /// False: this identity was surely not inserted (or its generation has expired). True: maybe.
    pub fn may_contain(&self, key: u128) -> bool {
        self.generations.iter().any(|g| g.may_contain(key))
    }

    /// How many more identities fit.
    pub fn room(&self) -> usize {
        let unused = self.max_generations.saturating_sub(self.generations.len()) * self.per_generation;
        let current = self.generations.back().map_or(0, |g| self.per_generation.saturating_sub(g.items));
        unused + current
    }

    /// Identities held (counting a repeated one each time).
    pub fn len(&self) -> usize {
        self.generations.iter().map(|g| g.items).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the generations whose identities all have a timestamp before `cutoff_us`.
    pub fn expire(&mut self, cutoff_us: i64) {
        self.generations.retain(|g| g.latest_us >= cutoff_us);
    }

    pub fn clear(&mut self) {
        self.generations.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Well-spread keys, as SipHash gives.
    fn key(i: u64) -> u128 {
        let mut h = siphasher::sip128::SipHasher13::new();
        std::hash::Hasher::write_u64(&mut h, i);
        siphasher::sip128::Hasher128::finish128(&h).as_u128()
    }

    #[test]
    fn what_was_inserted_is_always_found() {
        let mut f = IdentityFilter::new(1_000, 3);
        for i in 0..3_000 {
            assert!(f.insert(key(i), 5));
        }
        assert!((0..3_000).all(|i| f.may_contain(key(i))));
        assert_eq!(f.len(), 3_000);
        assert_eq!(f.room(), 0);
        assert!(!f.insert(key(3_000), 5), "every generation is full");
        assert_eq!(f.len(), 3_000, "a refused identity is not counted");
    }

    #[test]
    fn false_maybes_are_rare() {
        let mut f = IdentityFilter::new(20_000, 1);
        for i in 0..20_000 {
            f.insert(key(i), 0);
        }
        let false_maybes = (1_000_000..1_100_000).filter(|&i| f.may_contain(key(i))).count();
        // Expected about 0.07 %: 70 in 100k.
        assert!(false_maybes < 200, "{false_maybes} false maybes in 100k");
    }

    #[test]
    fn a_generation_expires_once_all_of_it_is_before_the_cutoff() {
        let mut f = IdentityFilter::new(2, 4);
        f.insert(key(1), 10);
        f.insert(key(2), 30);
        f.insert(key(3), 20);
        assert_eq!(f.room(), 5);
        f.expire(25);
        assert!(f.may_contain(key(1)), "its generation still holds an identity at 30");
        f.expire(31);
        assert!(f.is_empty());
        assert!(!f.may_contain(key(1)) && !f.may_contain(key(3)));
        assert_eq!(f.room(), 8);
        f.insert(key(4), 40);
        f.clear();
        assert!(!f.may_contain(key(4)));
    }

    #[test]
    fn no_generations_means_no_room() {
        for mut f in [IdentityFilter::new(10, 0), IdentityFilter::new(0, 8)] {
            assert_eq!(f.room(), 0);
            assert!(!f.insert(key(1), 0));
            assert!(!f.may_contain(key(1)));
        }
    }
}
