//! Facts that never change once they exist (a schedule's concert, seats and prices), read from
//! the database once per process and then answered from memory.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, RwLock},
};

/// A bounded map of facts loaded on first use. A fact not found is not remembered: it may still
/// be on its way. When full, it starts again empty (the facts are re-read as they are asked for).
#[derive(Debug)]
pub struct Memo<K, V> {
    map: Arc<RwLock<HashMap<K, V>>>,
    capacity: usize,
}

impl<K, V> Clone for Memo<K, V> {
    fn clone(&self) -> Self {
        Self { map: self.map.clone(), capacity: self.capacity }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Memo<K, V> {
    /// A memo of at most `capacity` facts.
    pub fn new(capacity: usize) -> Self {
        Self { map: Arc::default(), capacity: capacity.max(1) }
    }

    /// The fact for `key`, from memory or else from `load` (remembered if found).
    pub async fn get<E, F>(&self, key: &K, load: F) -> Result<Option<V>, E>
    where
        F: Future<Output = Result<Option<V>, E>>,
    {
        if let Some(known) = self.map.read().ok().and_then(|m| m.get(key).cloned()) {
            return Ok(Some(known));
        }
        let Some(found) = load.await? else { return Ok(None) };
        if let Ok(mut m) = self.map.write() {
            if m.len() >= self.capacity {
                m.clear();
            }
            m.insert(key.clone(), found.clone());
        }
        Ok(Some(found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loads_once_forgets_misses_and_stays_bounded() {
        let memo: Memo<u32, u32> = Memo::new(2);
        let loaded = std::sync::atomic::AtomicU32::new(0);
        let load = |v: Option<u32>| {
            loaded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move { Ok::<_, ()>(v) }
        };
        assert_eq!(memo.get(&1, load(Some(10))).await, Ok(Some(10)));
        assert_eq!(memo.get(&1, load(Some(99))).await, Ok(Some(10)), "answered from memory");
        assert_eq!(memo.get(&2, load(None)).await, Ok(None));
        assert_eq!(memo.get(&2, load(Some(20))).await, Ok(Some(20)), "a miss is not remembered");
        assert_eq!(memo.get(&3, load(Some(30))).await, Ok(Some(30)));
        assert_eq!(memo.map.read().unwrap().len(), 1, "full: started again");
        assert_eq!(loaded.load(std::sync::atomic::Ordering::Relaxed), 5);
    }
}
