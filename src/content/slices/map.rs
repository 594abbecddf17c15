//! The slice map of one object in flight: which slices are missing, claimed by an upstream
//! request, or held, and how many bytes of each have arrived. Pure bookkeeping (no I/O), so
//! the rules "ask what is asked first", "never ask a byte twice" and "what may a reader send"
//! are decided here and table-tested.

/// A run of consecutive slices claimed for one upstream request: bytes `from..to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// First slice of the run.
    pub first: usize,
    /// Last slice of the run (inclusive).
    pub last: usize,
    /// First byte to ask (the first byte of `first` not yet arrived).
    pub from: u64,
    /// One past the last byte to ask (the end of `last`).
    pub to: u64,
}

impl Run {
    /// The `Range` header value asking exactly this run.
    pub fn range_header(&self) -> String {
        format!("bytes={}-{}", self.from, self.to - 1)
    }
}

/// Bytes that arrived do not continue what a claimed slice holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bytes {from}+{len} do not continue a claimed slice")]
pub struct NotExpected {
    /// Offset of the bytes.
    pub from: u64,
    /// Their length.
    pub len: u64,
}

/// Slices of one object.
#[derive(Debug, Clone)]
pub struct SliceMap {
    size: u64,
    slice: u64,
    /// Bytes arrived in each slice, from its start.
    filled: Vec<u64>,
    /// Whether an upstream request is filling the slice.
    claimed: Vec<bool>,
    /// Slices completely held.
    held: usize,
}

impl SliceMap {
    /// An empty map of an object of `size` bytes cut into slices of `slice` bytes (> 0).
    pub fn new(size: u64, slice: u64) -> Self {
        let slice = slice.max(1);
        let n = size.div_ceil(slice) as usize;
        Self {
            size,
            slice,
            filled: vec![0; n],
            claimed: vec![false; n],
            held: 0,
        }
    }

    /// The object's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Number of slices.
    pub fn len(&self) -> usize {
        self.filled.len()
    }

    /// Whether the object has no bytes (and so no slices).
    pub fn is_empty(&self) -> bool {
        self.filled.is_empty()
    }

    /// Bytes `start..end` of slice `i`.
    pub fn bounds(&self, i: usize) -> (u64, u64) {
        let start = i as u64 * self.slice;
        (start, (start + self.slice).min(self.size))
    }

    fn slice_len(&self, i: usize) -> u64 {
        let (s, e) = self.bounds(i);
        e - s
    }

    fn is_held(&self, i: usize) -> bool {
        self.filled[i] == self.slice_len(i)
    }

    /// Whether slice `i` can be claimed: not held, not claimed.
    fn is_free(&self, i: usize) -> bool {
        !self.claimed[i] && !self.is_held(i)
    }

    /// Whether every byte has arrived.
    pub fn is_complete(&self) -> bool {
        self.held == self.len()
    }

    /// Whether any slice is claimed.
    pub fn any_claimed(&self) -> bool {
        self.claimed.iter().any(|c| *c)
    }

    /// Claims the free slices that bytes `start..=end` touch, as runs of at most `max_run`
    /// consecutive slices. A run only continues into a slice with no bytes yet, so a partly
    /// filled slice always starts its own run at its first missing byte (no byte is asked
    /// twice). Slices already claimed or held are left to their request.
    pub fn claim_range(&mut self, start: u64, end: u64, max_run: usize) -> Vec<Run> {
        let mut runs = Vec::new();
        if self.size == 0 || start > end || start >= self.size {
            return runs;
        }
        let end = end.min(self.size - 1);
        let (a, b) = ((start / self.slice) as usize, (end / self.slice) as usize);
        let mut i = a;
        while i <= b {
            if !self.is_free(i) {
                i += 1;
                continue;
            }
            let first = i;
            self.claimed[i] = true;
            i += 1;
            while i <= b && i - first < max_run.max(1) && self.is_free(i) && self.filled[i] == 0 {
                self.claimed[i] = true;
                i += 1;
            }
            runs.push(self.run(first, i - 1));
        }
        runs
    }

    /// Claims the first free slice at or after slice `cursor`, wrapping to 0: what the
    /// background fill fetches next. `None` when every slice is claimed or held.
    pub fn claim_next(&mut self, cursor: usize) -> Option<Run> {
        let n = self.len();
        let i = (0..n)
            .map(|k| (cursor + k) % n)
            .find(|&i| self.is_free(i))?;
        self.claimed[i] = true;
        Some(self.run(i, i))
    }

    fn run(&self, first: usize, last: usize) -> Run {
        Run {
            first,
            last,
            from: self.bounds(first).0 + self.filled[first],
            to: self.bounds(last).1,
        }
    }

    /// Records bytes `from..from+len` as arrived. They must continue the claimed slices they
    /// fall in (an upstream request writes its run in order). A slice that becomes full is
    /// held and no longer claimed.
    pub fn record(&mut self, from: u64, len: u64) -> Result<(), NotExpected> {
        let bad = NotExpected { from, len };
        if from.checked_add(len).is_none_or(|e| e > self.size) {
            return Err(bad);
        }
        // Check first, then apply: a bad record changes nothing.
        let mut pos = from;
        let end = from + len;
        while pos < end {
            let i = (pos / self.slice) as usize;
            let (s, e) = self.bounds(i);
            if !self.claimed[i] || s + self.filled[i] != pos {
                return Err(bad);
            }
            pos = e.min(end);
        }
        let mut pos = from;
        while pos < end {
            let i = (pos / self.slice) as usize;
            let (s, e) = self.bounds(i);
            let upto = e.min(end);
            self.filled[i] = upto - s;
            if upto == e {
                self.claimed[i] = false;
                self.held += 1;
            }
            pos = upto;
        }
        Ok(())
    }

    /// Gives back the claims of `run` that are not held (its request failed); bytes that
    /// arrived stay, and the next claim starts after them.
    pub fn release(&mut self, run: &Run) {
        for i in run.first..=run.last.min(self.len().saturating_sub(1)) {
            if !self.is_held(i) {
                self.claimed[i] = false;
            }
        }
    }

    /// One past the last byte of the contiguous bytes available from `pos` (`pos` itself when
    /// byte `pos` has not arrived).
    pub fn available_from(&self, pos: u64) -> u64 {
        let mut pos = pos;
        while pos < self.size {
            let i = (pos / self.slice) as usize;
            let (s, e) = self.bounds(i);
            let have = s + self.filled[i];
            if have <= pos {
                return pos;
            }
            if have < e {
                return have;
            }
            pos = e;
        }
        pos.min(self.size)
    }

    /// The contiguous bytes held from offset 0 (what the hasher may read).
    pub fn prefix(&self) -> u64 {
        self.available_from(0)
    }

    /// Whether every byte of `start..end` has arrived.
    pub fn has(&self, start: u64, end: u64) -> bool {
        start >= end || self.available_from(start) >= end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1024;

    /// A 10-slice map of 1 KiB slices, the last one 100 bytes short.
    fn map() -> SliceMap {
        SliceMap::new(10 * K - 100, K)
    }

    fn runs(v: &[(usize, usize, u64, u64)]) -> Vec<Run> {
        v.iter()
            .map(|&(first, last, from, to)| Run {
                first,
                last,
                from,
                to,
            })
            .collect()
    }

    #[test]
    fn geometry() {
        let m = map();
        assert_eq!(m.len(), 10);
        assert_eq!(m.bounds(0), (0, K));
        assert_eq!(m.bounds(9), (9 * K, 10 * K - 100));
        assert_eq!(SliceMap::new(0, K).len(), 0);
        assert!(SliceMap::new(0, K).is_complete());
        assert_eq!(SliceMap::new(K, K).len(), 1);
        assert_eq!(SliceMap::new(K + 1, K).len(), 2);
    }

    #[test]
    fn claim_range_table() {
        // (setup claims as ranges, asked range, max_run, expected runs)
        type Case = (
            &'static [(u64, u64)],
            (u64, u64),
            usize,
            &'static [(usize, usize, u64, u64)],
        );
        let cases: &[Case] = &[
            // Nothing held: one run over the touched slices, ends at slice bounds.
            (&[], (1500, 2500), 8, &[(1, 2, K, 3 * K)]),
            // A closed 1-slice range on slice bounds asks exactly that slice.
            (&[], (4 * K, 5 * K - 1), 8, &[(4, 4, 4 * K, 5 * K)]),
            // Runs are cut at max_run.
            (
                &[],
                (0, 5 * K - 1),
                2,
                &[(0, 1, 0, 2 * K), (2, 3, 2 * K, 4 * K), (4, 4, 4 * K, 5 * K)],
            ),
            // A slice claimed by someone else splits the run; it is not asked again.
            (
                &[(2 * K, 2 * K)],
                (0, 4 * K - 1),
                8,
                &[(0, 1, 0, 2 * K), (3, 3, 3 * K, 4 * K)],
            ),
            // Everything claimed: nothing to ask.
            (&[(0, 10 * K)], (100, 9000), 8, &[]),
            // The end is clamped to the object; the short last slice ends at the size.
            (&[], (9 * K, 20 * K), 8, &[(9, 9, 9 * K, 10 * K - 100)]),
            // A range past the end asks nothing.
            (&[], (10 * K, 11 * K), 8, &[]),
        ];
        for (pre, (a, b), max_run, want) in cases {
            let mut m = map();
            for (s, e) in *pre {
                m.claim_range(*s, *e, 100);
            }
            assert_eq!(
                m.claim_range(*a, *b, *max_run),
                runs(want),
                "{pre:?} {a}-{b}"
            );
        }
    }

    #[test]
    fn partly_filled_slice_starts_its_own_run_at_its_first_missing_byte() {
        let mut m = map();
        let r = m.claim_range(0, 3 * K - 1, 8);
        assert_eq!(r, runs(&[(0, 2, 0, 3 * K)]));
        // 1.5 slices arrive, then the request fails.
        m.record(0, K + 512).unwrap();
        m.release(&r[0]);
        // Asked again: from slice 1's first missing byte on (slice 2, empty, joins the run).
        assert_eq!(
            m.claim_range(0, 3 * K - 1, 8),
            runs(&[(1, 2, K + 512, 3 * K)])
        );
        // A partly filled slice in the middle of an ask also splits the run before it.
        let mut m = map();
        let r = m.claim_range(5 * K, 5 * K, 8);
        m.record(5 * K, 10).unwrap();
        m.release(&r[0]);
        assert_eq!(
            m.claim_range(4 * K, 7 * K - 1, 8),
            runs(&[(4, 4, 4 * K, 5 * K), (5, 6, 5 * K + 10, 7 * K)])
        );
    }

    #[test]
    fn claim_next_wraps_and_skips_claimed_and_held() {
        let mut m = map();
        m.claim_range(3 * K, 4 * K - 1, 8);
        assert_eq!(m.claim_next(3), Some(runs(&[(4, 4, 4 * K, 5 * K)])[0]));
        let r = m.claim_range(9 * K, 9 * K, 8);
        m.record(9 * K, K - 100).unwrap();
        assert!(r.len() == 1 && m.is_held_for_test(9));
        assert_eq!(m.claim_next(9), Some(runs(&[(0, 0, 0, K)])[0]));
        let mut all = vec![];
        while let Some(r) = m.claim_next(0) {
            all.push(r.first);
        }
        assert_eq!(all, vec![1, 2, 5, 6, 7, 8]);
    }

    #[test]
    fn record_checks_continuity_and_claims() {
        let mut m = map();
        // Not claimed.
        assert!(m.record(0, 10).is_err());
        m.claim_range(0, 2 * K - 1, 8);
        // Not at the slice's fill point.
        assert!(m.record(5, 10).is_err());
        // Past the end of the object.
        assert!(m.record(9 * K, 2 * K).is_err());
        // Crossing into an unclaimed slice: refused and nothing changes.
        assert!(m.record(K, 2 * K).is_err());
        assert_eq!(m.available_from(0), 0);
        // Across a slice bound within the run.
        m.record(0, K + 10).unwrap();
        assert_eq!(m.available_from(0), K + 10);
        // The same bytes again are refused (a byte is written once).
        assert!(m.record(0, 10).is_err());
        assert!(m.record(K + 10, K - 10).is_ok());
        assert!(!m.any_claimed());
    }

    #[test]
    fn available_from_and_prefix_table() {
        let mut m = map();
        // Hold slices 0, 1 and 3 fully and 5 partly.
        for (s, e, n) in [
            (0, 2 * K - 1, 2 * K),
            (3 * K, 3 * K, K),
            (5 * K, 5 * K, 300),
        ] {
            m.claim_range(s, e, 8);
            m.record(s, n).unwrap();
        }
        let table: &[(u64, u64)] = &[
            (0, 2 * K),
            (700, 2 * K),
            (2 * K, 2 * K),
            (2 * K + 5, 2 * K + 5),
            (3 * K, 4 * K),
            (4 * K, 4 * K),
            (5 * K, 5 * K + 300),
            (5 * K + 299, 5 * K + 300),
            (5 * K + 300, 5 * K + 300),
            (10 * K, 10 * K - 100),
        ];
        for &(pos, want) in table {
            assert_eq!(m.available_from(pos), want, "from {pos}");
        }
        assert_eq!(m.prefix(), 2 * K);
        assert!(m.has(3 * K, 4 * K) && !m.has(3 * K, 4 * K + 1) && m.has(9, 9));
        assert!(!m.is_complete());
    }

    #[test]
    fn shuffled_asks_and_background_fill_cover_every_byte_once() {
        // An oracle independent of the map: which bytes arrived, and how often each was asked
        // while it had already arrived (must be never).
        let size = 1000 * K + 17;
        let mut m = SliceMap::new(size, 4 * K);
        let mut arrived = vec![0u8; size as usize];
        let mut deliver = |m: &mut SliceMap, from: u64, to: u64| {
            m.record(from, to - from).unwrap();
            for x in &mut arrived[from as usize..to as usize] {
                *x += 1;
            }
        };
        let n3 = size / (3 * K);
        let order: Vec<u64> = (0..n3).map(|i| (i * 7919) % n3).collect();
        let mut cursor = 0;
        for (n, o) in order.iter().enumerate() {
            let (a, b) = (o * 3 * K, o * 3 * K + 3 * K - 1);
            let mut runs = m.claim_range(a, b, 2);
            if n % 3 == 0 {
                if let Some(r) = m.claim_next(cursor) {
                    cursor = r.last + 1;
                    runs.push(r);
                }
            }
            for r in runs {
                // Deliver in two pieces, the second sometimes lost (request fails, released).
                let mid = r.from + (r.to - r.from) / 2;
                deliver(&mut m, r.from, mid);
                if n % 5 == 0 {
                    m.release(&r);
                } else {
                    deliver(&mut m, mid, r.to);
                }
            }
        }
        while let Some(r) = m.claim_next(cursor) {
            cursor = r.last + 1;
            deliver(&mut m, r.from, r.to);
        }
        assert!(m.is_complete());
        assert_eq!(m.prefix(), size);
        assert!(
            arrived.iter().all(|&c| c == 1),
            "every byte arrived exactly once"
        );
    }

    impl SliceMap {
        fn is_held_for_test(&self, i: usize) -> bool {
            self.is_held(i)
        }
    }
}
