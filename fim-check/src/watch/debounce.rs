//! The debouncer: a path is examined once it has been quiet for a while, so
//! a file being written is hashed (and reported) once, after it settles.
//!
//! `IN_MODIFY` arrives for every `write()`; the path is due `WRITING` after
//! the last one. A close after writing, an attribute change, a create or a
//! delete mean the object has probably settled: due `SETTLED` after it (a
//! later write pushes it back again). Both are well under the 1 s promise.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Quiet time after the last `write()` while a file may still be open.
pub const WRITING: Duration = Duration::from_millis(400);
/// Quiet time after a close, rename, create, delete or attribute change.
pub const SETTLED: Duration = Duration::from_millis(50);

#[derive(Debug, Default)]
pub struct Debouncer {
    due: HashMap<Vec<u8>, Instant>,
    /// The earliest due time (recomputed lazily).
    next: Option<Instant>,
}

impl Debouncer {
    /// (Re)arms `path`: due `quiet` after `now`, replacing an earlier due time.
    pub fn touch(&mut self, path: &[u8], now: Instant, quiet: Duration) {
        let at = now + quiet;
        match self.due.get_mut(path) {
            Some(t) => *t = at,
            None => {
                self.due.insert(path.to_vec(), at);
            }
        }
        self.next = Some(self.next.map_or(at, |n| n.min(at)));
    }

    /// When the next path falls due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.next
    }

    pub fn len(&self) -> usize {
        self.due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }

    /// Removes and returns the paths due at `now`, sorted.
    pub fn take_due(&mut self, now: Instant) -> Vec<Vec<u8>> {
        if self.next.is_none_or(|n| n > now) {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut next: Option<Instant> = None;
        self.due.retain(|p, at| {
            if *at <= now {
                out.push(p.clone());
                false
            } else {
                next = Some(next.map_or(*at, |n| n.min(*at)));
                true
            }
        });
        self.next = next;
        out.sort();
        out
    }

    /// Forgets everything (a full check covers it).
    pub fn clear(&mut self) {
        self.due.clear();
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_due_once_after_the_last_touch() {
        let mut d = Debouncer::default();
        let t0 = Instant::now();
        for i in 0..100 {
            d.touch(b"/etc/f", t0 + Duration::from_millis(i), WRITING);
        }
        let last = t0 + Duration::from_millis(99);
        assert!(d
            .take_due(last + WRITING - Duration::from_millis(1))
            .is_empty());
        assert_eq!(d.take_due(last + WRITING), vec![b"/etc/f".to_vec()]);
        assert!(d.is_empty() && d.next_due().is_none());
    }

    #[test]
    fn a_close_settles_sooner_than_a_write() {
        let mut d = Debouncer::default();
        let t0 = Instant::now();
        d.touch(b"/a", t0, WRITING);
        d.touch(b"/a", t0, SETTLED);
        d.touch(b"/b", t0, WRITING);
        assert_eq!(d.take_due(t0 + SETTLED), vec![b"/a".to_vec()]);
        assert_eq!(d.next_due(), Some(t0 + WRITING));
    }
}
