//! Port of chatterbox/models/tokenizers/tokenizer.py (chatterbox-tts 0.1.7): `EnTokenizer`,
//! `MTLTokenizer` and the per-language text preparation behind it.
//!
//! The `tokenizer.json` files go through the `tokenizers` crate, the library the Python
//! `tokenizers` package wraps, so the BPE itself is the reference's own code.
//!
//! Differences from the reference, all where it calls an optional Python package:
//! * `zh`: the reference segments with spacy_pkuseg when installed and then inserts a space
//!   between words, which becomes `[SPACE]`; here, as in the reference without pkuseg, the
//!   text is not segmented. The Cangjie codes themselves match.
//! * `ja`: the reference converts kanji to hiragana with pykakasi when installed; here, as in
//!   the reference without it, the (lower-cased, NFKD) text passes unchanged.
//! * `he` (dicta_onnx diacritics) and `ru` (russian_text_stresser stress marks): unchanged, as
//!   in the reference without those packages.
//! * The Cangjie table is read from the checkpoint directory; the reference downloads it from
//!   the hub and, when that fails, carries on without it (as `from_file` does when the file is
//!   absent). A table that is present but malformed is an error here rather than a warning.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;
use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_normalization::UnicodeNormalization;

use super::TokenizerError;
use super::punc_norm::is_py_space;

const SOT: &str = "[START]";
const EOT: &str = "[STOP]";
const SPACE: &str = "[SPACE]";

/// `SUPPORTED_LANGUAGES` of mtl_tts.py: id and name.
pub const SUPPORTED_LANGUAGES: [(&str, &str); 23] = [
    ("ar", "Arabic"),
    ("da", "Danish"),
    ("de", "German"),
    ("el", "Greek"),
    ("en", "English"),
    ("es", "Spanish"),
    ("fi", "Finnish"),
    ("fr", "French"),
    ("he", "Hebrew"),
    ("hi", "Hindi"),
    ("it", "Italian"),
    ("ja", "Japanese"),
    ("ko", "Korean"),
    ("ms", "Malay"),
    ("nl", "Dutch"),
    ("no", "Norwegian"),
    ("pl", "Polish"),
    ("pt", "Portuguese"),
    ("ru", "Russian"),
    ("sv", "Swedish"),
    ("sw", "Swahili"),
    ("tr", "Turkish"),
    ("zh", "Chinese"),
];

/// The language id the way `ChatterboxMultilingualTTS.generate` takes it: lower-cased and
/// checked against [`SUPPORTED_LANGUAGES`]. An empty id means "no language", as Python's
/// falsy `language_id` does.
pub fn language_id(language: Option<&str>) -> Result<Option<String>, TokenizerError> {
    let Some(language) = language.filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let lower = language.to_lowercase();
    if SUPPORTED_LANGUAGES.iter().any(|(id, _)| *id == lower) {
        Ok(Some(lower))
    } else {
        Err(TokenizerError::UnsupportedLanguage(language.to_string()))
    }
}

/// Loads a `tokenizer.json` and checks the SOT/EOT tokens the reference asserts.
fn load(path: &Path) -> Result<Tokenizer, TokenizerError> {
    let tokenizer = Tokenizer::from_file(path).map_err(|e| TokenizerError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    for token in [SOT, EOT] {
        if tokenizer.token_to_id(token).is_none() {
            return Err(TokenizerError::MissingToken {
                path: path.to_path_buf(),
                token: token.to_string(),
            });
        }
    }
    Ok(tokenizer)
}

/// ' ' -> `[SPACE]`, then the BPE; no special tokens are added (the files have no
/// post-processor, and SOT/EOT are the caller's).
fn encode_spaced(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>, TokenizerError> {
    tokenizer
        .encode(text.replace(' ', SPACE), true)
        .map(|encoding| encoding.get_ids().to_vec())
        .map_err(|e| TokenizerError::Encode(e.to_string()))
}

/// The English T3 tokenizer (`tokenizer.json` of ResembleAI/chatterbox).
pub struct EnTokenizer {
    tokenizer: Tokenizer,
}

impl EnTokenizer {
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        Ok(Self {
            tokenizer: load(path)?,
        })
    }

    /// `EnTokenizer.encode`: ids without SOT/EOT.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        encode_spaced(&self.tokenizer, text)
    }
}

/// The multilingual T3 tokenizer (`grapheme_mtl_merged_expanded_v1.json`) with the Cangjie
/// table Chinese is written in.
pub struct MTLTokenizer {
    tokenizer: Tokenizer,
    cangjie: CangjieConverter,
}

impl MTLTokenizer {
    /// The Cangjie table's file name in the checkpoint (the hub file the reference fetches).
    pub const CANGJIE_FILE: &str = "Cangjie5_TC.json";

    /// The tokenizer, with `Cangjie5_TC.json` from the same directory when it is there.
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        let cangjie = path
            .parent()
            .map(|dir| dir.join(Self::CANGJIE_FILE))
            .filter(|p| p.is_file());
        if cangjie.is_none() {
            tracing::warn!(
                "{} not found next to {}: Chinese characters are tokenized without Cangjie codes",
                Self::CANGJIE_FILE,
                path.display()
            );
        }
        Self::new(path, cangjie.as_deref())
    }

    /// The tokenizer with an explicit Cangjie table, or none (the reference's behaviour when
    /// the table cannot be fetched).
    pub fn new(path: &Path, cangjie: Option<&Path>) -> Result<Self, TokenizerError> {
        Ok(Self {
            tokenizer: load(path)?,
            cangjie: match cangjie {
                Some(file) => CangjieConverter::from_file(file)?,
                None => CangjieConverter::default(),
            },
        })
    }

    /// `MTLTokenizer.encode` with the reference defaults (lowercase, NFKD): ids without
    /// SOT/EOT. `language` is validated and lower-cased as `generate` does.
    pub fn encode(&self, text: &str, language: Option<&str>) -> Result<Vec<u32>, TokenizerError> {
        let language = language_id(language)?;
        let text: String = text.to_lowercase().nfkd().collect();
        let text = match language.as_deref() {
            Some("zh") => self.cangjie.convert(&text),
            Some("ko") => korean_normalize(&text),
            _ => text,
        };
        let text = match &language {
            Some(id) => format!("[{id}]{text}"),
            None => text,
        };
        encode_spaced(&self.tokenizer, &text)
    }
}

/// `korean_normalize`: Hangul syllables to conjoining Jamo, then Python's `strip()`. NFKD has
/// already decomposed the assigned syllables; the arithmetic also covers U+D7A4..U+D7AF as the
/// reference's range check does.
fn korean_normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if !('\u{ac00}'..='\u{d7af}').contains(&c) {
            out.push(c);
            continue;
        }
        let base = c as u32 - 0xAC00;
        let jamo = [
            Some(0x1100 + base / (21 * 28)),
            Some(0x1161 + (base % (21 * 28)) / 28),
            (!base.is_multiple_of(28)).then_some(0x11A7 + base % 28),
        ];
        out.extend(jamo.into_iter().flatten().filter_map(char::from_u32));
    }
    out.trim_matches(is_py_space).to_string()
}

/// `ChineseCangjieConverter` without the segmenter: every `Lo` character found in the table
/// becomes `[cj_x]…[cj_.]`.
#[derive(Default)]
struct CangjieConverter {
    /// Code plus the glyph's index among the glyphs sharing that code ("" for the first),
    /// resolved at load time exactly as `_cangjie_encode` does per call.
    codes: HashMap<char, String>,
}

impl CangjieConverter {
    fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        let invalid = |reason: String| TokenizerError::File {
            path: PathBuf::from(path),
            reason,
        };
        let raw = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
        let entries: Vec<String> = serde_json::from_str(&raw)
            .map_err(|e| invalid(format!("expected a JSON list of strings: {e}")))?;
        // word2cj keeps the last code of a word; cj2word lists every word per code in order.
        let mut word2cj: HashMap<&str, &str> = HashMap::new();
        let mut cj2word: HashMap<&str, Vec<&str>> = HashMap::new();
        for (i, entry) in entries.iter().enumerate() {
            let mut fields = entry.split('\t');
            let (Some(word), Some(code)) = (fields.next(), fields.next()) else {
                return Err(invalid(format!(
                    "entry {i} is not 'glyph<TAB>code': {entry:?}"
                )));
            };
            word2cj.insert(word, code);
            cj2word.entry(code).or_default().push(word);
        }
        let mut codes = HashMap::new();
        for (word, code) in word2cj {
            let mut chars = word.chars();
            let (Some(glyph), None) = (chars.next(), chars.next()) else {
                continue; // a lookup is per character, so longer words never match
            };
            let index = cj2word[code].iter().position(|w| *w == word).unwrap_or(0);
            let suffix = if index > 0 {
                index.to_string()
            } else {
                String::new()
            };
            codes.insert(glyph, format!("{code}{suffix}"));
        }
        Ok(Self { codes })
    }

    fn convert(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match self.codes.get(&c) {
                Some(code) if get_general_category(c) == GeneralCategory::OtherLetter => {
                    for symbol in code.chars() {
                        out.push_str(&format!("[cj_{symbol}]"));
                    }
                    out.push_str("[cj_.]");
                }
                _ => out.push(c),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_are_validated_and_lower_cased() {
        assert_eq!(language_id(Some("FR")).unwrap().as_deref(), Some("fr"));
        assert_eq!(language_id(Some("")).unwrap(), None);
        assert_eq!(language_id(None).unwrap(), None);
        let err = language_id(Some("xx")).unwrap_err().to_string();
        assert!(err.contains("'xx'") && err.contains("zh"), "{err}");
    }

    #[test]
    fn hangul_becomes_jamo() {
        assert_eq!(korean_normalize(" 한 "), "\u{1112}\u{1161}\u{11ab}");
        assert_eq!(korean_normalize("가"), "\u{1100}\u{1161}");
        assert_eq!(korean_normalize("\u{d7af}"), "\u{1113}\u{1161}\u{11b2}");
    }
}
