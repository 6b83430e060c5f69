//! Event de-duplication: a failing object reports each distinct failure once; a success
//! clears it, so the next failure is news again.

use std::collections::BTreeMap;

/// The last failure reported per key.
#[derive(Debug, Default, Clone)]
pub struct Dedup<K: Ord> {
    last: BTreeMap<K, String>,
}

impl<K: Ord> Dedup<K> {
    pub fn new() -> Self {
        Dedup {
            last: BTreeMap::new(),
        }
    }

    /// Whether a failure with this message should be reported (it differs from the last one
    /// reported for the key); remembers it.
    pub fn failure(&mut self, key: K, message: &str) -> bool {
        if self.last.get(&key).is_some_and(|l| l == message) {
            return false;
        }
        self.last.insert(key, message.to_owned());
        true
    }

    /// The key is healthy again.
    pub fn success(&mut self, key: &K) {
        self.last.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_per_distinct_failure() {
        let mut d = Dedup::new();
        assert!(d.failure("a", "push rejected"));
        assert!(!d.failure("a", "push rejected"));
        assert!(d.failure("b", "push rejected"));
        assert!(d.failure("a", "auth failed"));
        d.success(&"a");
        assert!(d.failure("a", "auth failed"));
    }
}
