//! The T3 text front-ends of chatterbox-tts 0.1.7: `punc_norm` (tts.py, mtl_tts.py,
//! tts_turbo.py), models/tokenizers/tokenizer.py, and the GPT-2 tokenizer Turbo loads through
//! transformers. [`TextTokenizer::encode`] is the whole path from request text to the T3 text
//! ids. What differs from the reference is listed in tokenizer.rs and docs/parity-text.md.

pub mod punc_norm;
pub mod tokenizer;
pub mod turbo;

use std::path::PathBuf;

pub use punc_norm::{PuncNormVariant, punc_norm};
pub use tokenizer::{EnTokenizer, MTLTokenizer, SUPPORTED_LANGUAGES};
pub use turbo::TurboTokenizer;

/// `T3Config.start_text_token`: put in front of English and multilingual text.
pub const START_TEXT_TOKEN: u32 = 255;
/// `T3Config.stop_text_token`: put after English and multilingual text.
pub const STOP_TEXT_TOKEN: u32 = 0;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("tokenizer file {path} has no {token} token")]
    MissingToken { path: PathBuf, token: String },
    #[error(
        "unsupported language_id '{0}'; supported languages: ar, da, de, el, en, es, fi, fr, he, \
         hi, it, ja, ko, ms, nl, no, pl, pt, ru, sv, sw, tr, zh"
    )]
    UnsupportedLanguage(String),
    #[error("tokenizing the text failed: {0}")]
    Encode(String),
}

/// `ids` between SOT and EOT, as tts.py and mtl_tts.py pad the text tokens.
pub fn with_sot_eot(ids: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(ids.len() + 2);
    out.push(START_TEXT_TOKEN);
    out.extend_from_slice(ids);
    out.push(STOP_TEXT_TOKEN);
    out
}

/// The text tokenizer of one model variant.
pub enum TextTokenizer {
    English(EnTokenizer),
    Multilingual(MTLTokenizer),
    Turbo(TurboTokenizer),
}

impl TextTokenizer {
    /// Request text to T3 text ids: the variant's `punc_norm`, its tokenizer, and SOT/EOT where
    /// the reference adds them (English and multilingual; Turbo adds none). `language` is used
    /// by the multilingual variant only (validated and lower-cased as `generate` does); the
    /// others have no language and ignore it.
    pub fn encode(&self, text: &str, language: Option<&str>) -> Result<Vec<u32>, TokenizerError> {
        match self {
            Self::English(tokenizer) => {
                let text = punc_norm(text, PuncNormVariant::English);
                Ok(with_sot_eot(&tokenizer.encode(&text)?))
            }
            Self::Multilingual(tokenizer) => {
                let text = punc_norm(text, PuncNormVariant::Multilingual);
                Ok(with_sot_eot(&tokenizer.encode(&text, language)?))
            }
            Self::Turbo(tokenizer) => tokenizer.encode(&punc_norm(text, PuncNormVariant::Turbo)),
        }
    }
}
