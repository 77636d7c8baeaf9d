//! The conditioning of recently used reference clips, keyed by their content, so a voice used
//! again skips the speaker encoders, the tokenizer and (through the kept T3 prefix) most of
//! the prefill.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::audio::Clip;

/// A clip's identity: its sample rate and samples, plus what else shapes its conditioning.
pub fn clip_key(clip: &Clip, salt: impl Hash) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    clip.sample_rate.hash(&mut hasher);
    for sample in &clip.samples {
        sample.to_bits().hash(&mut hasher);
    }
    salt.hash(&mut hasher);
    hasher.finish()
}

/// Least-recently-used entries first; a handful of voices, so a vector is enough.
pub struct VoiceCache<T> {
    capacity: usize,
    entries: Vec<(u64, Arc<T>)>,
}

impl<T> VoiceCache<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Vec::new(),
        }
    }

    pub fn get_or_insert_with<E>(
        &mut self,
        key: u64,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        if let Some(at) = self.entries.iter().position(|(k, _)| *k == key) {
            let entry = self.entries.remove(at);
            let value = Arc::clone(&entry.1);
            self.entries.push(entry);
            return Ok(value);
        }
        let value = Arc::new(make()?);
        if self.capacity > 0 {
            if self.entries.len() == self.capacity {
                self.entries.remove(0);
            }
            self.entries.push((key, Arc::clone(&value)));
        }
        Ok(value)
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_recently_used() {
        let mut cache = VoiceCache::new(2);
        let made = std::cell::Cell::new(0);
        let get = |cache: &mut VoiceCache<u64>, key| {
            *cache
                .get_or_insert_with(key, || {
                    made.set(made.get() + 1);
                    Ok::<_, ()>(key * 10)
                })
                .unwrap()
        };
        assert_eq!(get(&mut cache, 1), 10);
        get(&mut cache, 2);
        get(&mut cache, 1);
        get(&mut cache, 3); // evicts 2
        get(&mut cache, 1);
        get(&mut cache, 2);
        assert_eq!(made.get(), 4);
    }

    #[test]
    fn keys_follow_content_and_salt() {
        let clip = Clip {
            samples: vec![0.1, 0.2],
            sample_rate: 24000,
        };
        let other = Clip {
            sample_rate: 16000,
            ..clip.clone()
        };
        assert_eq!(clip_key(&clip, true), clip_key(&clip.clone(), true));
        assert_ne!(clip_key(&clip, true), clip_key(&clip, false));
        assert_ne!(clip_key(&clip, true), clip_key(&other, true));
    }
}
