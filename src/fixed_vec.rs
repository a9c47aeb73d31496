//! Fixed-capacity containers whose storage is one heap allocation made at
//! construction: [`FixedVec`] and [`FixedDeque`].
//!
//! Same contract as `heapless::Vec`/`heapless::Deque` (the capacity `N` is a
//! compile-time constant; a push into a full container fails and hands the
//! value back; nothing ever grows or reallocates, so nothing allocates per
//! packet), but the elements live on the heap: the daemon's big tables (knock
//! progress, grants, forwards, bans, the replay cache) are then never built
//! or moved on the stack, whose touched pages would stay resident for the
//! daemon's life, and their untouched capacity is not resident either.
//!
//! Owns only storage; the tables own their policies (eviction, expiry).

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};

/// A vector of at most `N` elements, allocated once with room for `N`.
pub struct FixedVec<T, const N: usize> {
    items: Vec<T>,
}

impl<T, const N: usize> FixedVec<T, N> {
    /// An empty vector (allocates room for `N` elements, touches none).
    pub fn new() -> Self {
        FixedVec {
            items: Vec::with_capacity(N),
        }
    }

    /// Appends `item`, or hands it back when `N` elements are held.
    pub fn push(&mut self, item: T) -> Result<(), T> {
        if self.items.len() >= N {
            return Err(item);
        }
        // Within the capacity reserved in new(): no reallocation.
        self.items.push(item);
        Ok(())
    }

    /// True when `N` elements are held.
    pub fn is_full(&self) -> bool {
        self.items.len() >= N
    }

    /// Removes element `i` (panics if out of bounds), replacing it with the last.
    pub fn swap_remove(&mut self, i: usize) -> T {
        self.items.swap_remove(i)
    }

    /// Keeps the elements for which `keep` is true (in order).
    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        self.items.retain(keep);
    }

    /// Removes every element (keeps the allocation).
    pub fn clear(&mut self) {
        self.items.clear();
    }
}

impl<T, const N: usize> Default for FixedVec<T, N> {
    fn default() -> Self {
        FixedVec::new()
    }
}

impl<T: Clone, const N: usize> Clone for FixedVec<T, N> {
    fn clone(&self) -> Self {
        // `Vec::clone` would allocate only `len`: keep the full capacity.
        let mut items = Vec::with_capacity(N);
        items.extend_from_slice(&self.items);
        FixedVec { items }
    }
}

impl<T: core::fmt::Debug, const N: usize> core::fmt::Debug for FixedVec<T, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.items.fmt(f)
    }
}

impl<T, const N: usize> Deref for FixedVec<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items
    }
}

impl<T, const N: usize> DerefMut for FixedVec<T, N> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.items
    }
}

impl<'a, T, const N: usize> IntoIterator for &'a FixedVec<T, N> {
    type Item = &'a T;
    type IntoIter = core::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

/// A double-ended queue of at most `N` elements, allocated once with room for `N`.
pub struct FixedDeque<T, const N: usize> {
    items: VecDeque<T>,
}

impl<T, const N: usize> FixedDeque<T, N> {
    /// An empty queue (allocates room for `N` elements, touches none).
    pub fn new() -> Self {
        FixedDeque {
            items: VecDeque::with_capacity(N),
        }
    }

    /// Appends `item` at the back, or hands it back when `N` elements are held.
    pub fn push_back(&mut self, item: T) -> Result<(), T> {
        if self.items.len() >= N {
            return Err(item);
        }
        // Within the capacity reserved in new(): no reallocation.
        self.items.push_back(item);
        Ok(())
    }

    /// Removes the front element.
    pub fn pop_front(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    /// Elements held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// True when `N` elements are held.
    pub fn is_full(&self) -> bool {
        self.items.len() >= N
    }
}

impl<T, const N: usize> Default for FixedDeque<T, N> {
    fn default() -> Self {
        FixedDeque::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_vec_refuses_and_hands_the_item_back() {
        let mut v: FixedVec<u32, 3> = FixedVec::new();
        for i in 0..3 {
            assert_eq!(v.push(i), Ok(()));
        }
        assert!(v.is_full());
        assert_eq!(v.push(9), Err(9));
        assert_eq!(&v[..], &[0, 1, 2]);
        assert_eq!(v.swap_remove(0), 0);
        assert_eq!(&v[..], &[2, 1]);
        v.retain(|&x| x != 2);
        assert_eq!(&v[..], &[1]);
        let c = v.clone();
        assert_eq!(c.items.capacity(), v.items.capacity());
        assert!(c.items.capacity() >= 3);
        v.clear();
        assert!(v.is_empty() && !v.is_full());
    }

    #[test]
    fn a_full_deque_refuses_and_keeps_fifo_order() {
        let mut q: FixedDeque<u32, 2> = FixedDeque::new();
        assert_eq!(q.push_back(1), Ok(()));
        assert_eq!(q.push_back(2), Ok(()));
        assert!(q.is_full());
        assert_eq!(q.push_back(3), Err(3));
        assert_eq!(q.pop_front(), Some(1));
        assert_eq!(q.push_back(3), Ok(()));
        assert_eq!(
            (q.pop_front(), q.pop_front(), q.pop_front()),
            (Some(2), Some(3), None)
        );
        assert!(q.is_empty());
    }

    #[test]
    fn pushes_up_to_the_capacity_never_reallocate() {
        let mut v: FixedVec<u64, 1000> = FixedVec::new();
        let start = v.items.as_ptr();
        while v.push(7).is_ok() {}
        assert_eq!(v.len(), 1000);
        assert_eq!(v.items.as_ptr(), start);
    }
}
