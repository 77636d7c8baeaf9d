//! The Turbo text tokenizer: what `AutoTokenizer.from_pretrained(ckpt_dir)` builds in
//! tts_turbo.py (chatterbox-tts 0.1.7) from ResembleAI/chatterbox-turbo's GPT-2 files, called
//! as `tokenizer(text, padding=True, truncation=True)`.
//!
//! A byte-level BPE over `vocab.json` + `merges.txt` with the added tokens of
//! `added_tokens.json` / `tokenizer_config.json` (the 19 paralinguistic tags, 50257..50275),
//! or a `tokenizer.json` when the directory has one, as transformers prefers it too. Single
//! sequences are never padded; `truncation=True` cuts them at `model_max_length` (1024).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use super::TokenizerError;

/// The fields of `tokenizer_config.json` that change ids.
#[derive(Default, Deserialize)]
struct TokenizerConfig {
    #[serde(default)]
    add_prefix_space: bool,
    model_max_length: Option<serde_json::Value>,
    #[serde(default)]
    added_tokens_decoder: BTreeMap<String, AddedTokenConfig>,
}

#[derive(Deserialize)]
struct AddedTokenConfig {
    content: String,
    #[serde(default)]
    special: bool,
    #[serde(default)]
    lstrip: bool,
    #[serde(default)]
    rstrip: bool,
    #[serde(default)]
    single_word: bool,
    #[serde(default = "yes")]
    normalized: bool,
}

fn yes() -> bool {
    true
}

pub struct TurboTokenizer {
    tokenizer: Tokenizer,
    max_length: Option<usize>,
}

impl TurboTokenizer {
    /// Loads the tokenizer files of a chatterbox-turbo checkpoint directory.
    pub fn from_dir(dir: &Path) -> Result<Self, TokenizerError> {
        let config: TokenizerConfig = read_json(&dir.join("tokenizer_config.json"), true)?;
        // transformers' default model_max_length (1e30) and absent values mean no limit.
        let max_length = config
            .model_max_length
            .as_ref()
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| usize::try_from(n).ok());
        let tokenizer_json = dir.join("tokenizer.json");
        let tokenizer = if tokenizer_json.is_file() {
            Tokenizer::from_file(&tokenizer_json).map_err(|e| file_error(&tokenizer_json, e))?
        } else {
            byte_level_bpe(dir, &config)?
        };
        Ok(Self {
            tokenizer,
            max_length,
        })
    }

    /// Ids as `tokenizer(text, padding=True, truncation=True).input_ids[0]`; no SOT/EOT.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?
            .get_ids()
            .to_vec();
        if let Some(max) = self.max_length {
            ids.truncate(max);
        }
        Ok(ids)
    }

    /// `len(tokenizer)`: the base vocabulary plus the added tokens (50276 for Turbo).
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }
}

fn file_error(path: &Path, reason: impl ToString) -> TokenizerError {
    TokenizerError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Reads a JSON file; an optional one that is absent reads as the default.
fn read_json<T: for<'de> Deserialize<'de> + Default>(
    path: &Path,
    optional: bool,
) -> Result<T, TokenizerError> {
    if optional && !path.exists() {
        return Ok(T::default());
    }
    let raw = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
    serde_json::from_str(&raw).map_err(|e| file_error(path, e))
}

/// The tokenizer transformers' GPT-2 converter builds: BPE without prefixes or suffixes, a
/// byte-level pre-tokenizer with GPT-2's regex, then the added tokens in id order.
fn byte_level_bpe(dir: &Path, config: &TokenizerConfig) -> Result<Tokenizer, TokenizerError> {
    let vocab = dir.join("vocab.json");
    let merges = dir.join("merges.txt");
    for path in [&vocab, &merges] {
        if !path.is_file() {
            return Err(file_error(path, "not found"));
        }
    }
    let bpe = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
        .build()
        .map_err(|e| file_error(&vocab, format!("with {}: {e}", merges.display())))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(config.add_prefix_space, false, true)));

    let added_path = dir.join("added_tokens.json");
    let added: BTreeMap<String, u32> = read_json(&added_path, true)?;
    let mut tokens: BTreeMap<u32, AddedToken> = added
        .into_iter()
        .map(|(content, id)| (id, AddedToken::from(content, false).normalized(true)))
        .collect();
    let config_path = dir.join("tokenizer_config.json");
    for (id, token) in &config.added_tokens_decoder {
        let id: u32 = id
            .parse()
            .map_err(|_| file_error(&config_path, format!("added token id {id:?}")))?;
        let added = AddedToken::from(token.content.clone(), token.special)
            .lstrip(token.lstrip)
            .rstrip(token.rstrip)
            .single_word(token.single_word)
            .normalized(token.normalized);
        tokens.insert(id, added);
    }
    // Added one at a time in id order, each new token takes the next free id; check that it
    // is the id the files give it, as transformers refuses non-consecutive added ids.
    for (id, token) in tokens {
        let content = token.content.clone();
        let added = if token.special {
            tokenizer.add_special_tokens([token])
        } else {
            tokenizer.add_tokens([token])
        };
        added.map_err(|e| file_error(&added_path, e))?;
        let got = tokenizer.token_to_id(&content);
        if got != Some(id) {
            return Err(file_error(
                &added_path,
                format!("added token {content:?} should have id {id}, got {got:?}"),
            ));
        }
    }
    Ok(tokenizer)
}
