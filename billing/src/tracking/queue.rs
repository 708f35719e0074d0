//! The bounded queue between API calls and the sender. Pushing never waits and never fails: when the queue is full
//! the oldest message makes room (tracking must not slow a request), and the caller counts the drop.

use std::collections::VecDeque;

#[derive(Debug)]
pub struct Bounded<T> {
    items: VecDeque<T>,
    capacity: usize,
}

impl<T> Bounded<T> {
    pub fn new(capacity: usize) -> Self {
        Bounded { items: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// Appends `item`; returns how many older items were dropped to make room (0 or 1).
    pub fn push(&mut self, item: T) -> usize {
        let mut dropped = 0;
        while self.items.len() >= self.capacity {
            self.items.pop_front();
            dropped += 1;
        }
        self.items.push_back(item);
        dropped
    }

    /// Takes up to `max` items, oldest first.
    pub fn take(&mut self, max: usize) -> Vec<T> {
        let n = max.min(self.items.len());
        self.items.drain(..n).collect()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_its_oldest_and_says_so() {
        let mut q = Bounded::new(3);
        assert_eq!(q.push(1) + q.push(2) + q.push(3), 0);
        assert_eq!(q.push(4), 1);
        assert_eq!(q.push(5), 1);
        assert_eq!(q.take(10), vec![3, 4, 5]);
        assert!(q.is_empty());
    }

    #[test]
    fn take_hands_out_the_oldest_first_in_bounded_batches() {
        let mut q = Bounded::new(10);
        for i in 0..7 {
            q.push(i);
        }
        assert_eq!(q.take(3), vec![0, 1, 2]);
        assert_eq!(q.len(), 4);
        assert_eq!(q.take(3), vec![3, 4, 5]);
        assert_eq!(q.take(3), vec![6]);
        assert_eq!(q.take(3), Vec::<i32>::new());
    }
}
