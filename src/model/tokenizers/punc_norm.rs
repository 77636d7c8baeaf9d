//! `punc_norm` of chatterbox-tts 0.1.7 (tts.py, mtl_tts.py and tts_turbo.py): the text clean-up
//! each variant runs before tokenizing. The three copies differ only in their replacement lists
//! and sentence enders, so one function takes the variant.

/// Which reference copy of `punc_norm` to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PuncNormVariant {
    /// tts.py
    English,
    /// mtl_tts.py: also accepts the CJK enders 、，。？！
    Multilingual,
    /// tts_turbo.py: leaves `...`, ` - ` and `;` alone
    Turbo,
}

/// What the reference returns for empty text (it then speaks this sentence).
pub const EMPTY_TEXT_MESSAGE: &str = "You need to add some text for me to talk.";

const FULL_REPLACEMENTS: &[(&str, &str)] = &[
    ("...", ", "),
    ("…", ", "),
    (":", ","),
    (" - ", ", "),
    (";", ", "),
    ("—", "-"),
    ("–", "-"),
    (" ,", ","),
    ("“", "\""),
    ("”", "\""),
    ("‘", "'"),
    ("’", "'"),
];

const TURBO_REPLACEMENTS: &[(&str, &str)] = &[
    ("…", ", "),
    (":", ","),
    ("—", "-"),
    ("–", "-"),
    (" ,", ","),
    ("“", "\""),
    ("”", "\""),
    ("‘", "'"),
    ("’", "'"),
];

const ENDERS: &[&str] = &[".", "!", "?", "-", ","];
const MTL_ENDERS: &[&str] = &[".", "!", "?", "-", ",", "、", "，", "。", "？", "！"];

/// Python's `str.isspace`: Unicode White_Space plus the four ASCII separators U+001C..U+001F,
/// which Python counts (bidi class B/S) and Rust's `char::is_whitespace` does not.
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The reference `punc_norm`, character for character.
pub fn punc_norm(text: &str, variant: PuncNormVariant) -> String {
    let mut chars = text.chars();
    let Some(first) = chars.next() else {
        return EMPTY_TEXT_MESSAGE.to_string();
    };
    // `text[0].islower()` looks at one code point; Rust's `is_lowercase` is the same Unicode
    // Lowercase property, and `to_uppercase` the same full mapping (ß -> SS) as `str.upper`.
    let text: String = if first.is_lowercase() {
        first.to_uppercase().chain(chars).collect()
    } else {
        text.to_string()
    };

    let mut text = text
        .split(is_py_space)
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");

    let replacements = match variant {
        PuncNormVariant::English | PuncNormVariant::Multilingual => FULL_REPLACEMENTS,
        PuncNormVariant::Turbo => TURBO_REPLACEMENTS,
    };
    for (old, new) in replacements {
        text = text.replace(old, new);
    }

    let mut text = text.trim_end_matches(' ').to_string();
    let enders = match variant {
        PuncNormVariant::Multilingual => MTL_ENDERS,
        PuncNormVariant::English | PuncNormVariant::Turbo => ENDERS,
    };
    if !enders.iter().any(|ender| text.ends_with(ender)) {
        text.push('.');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_reference_rules() {
        use PuncNormVariant::*;
        assert_eq!(punc_norm("", English), EMPTY_TEXT_MESSAGE);
        assert_eq!(punc_norm("   ", Turbo), ".");
        assert_eq!(punc_norm("ß  x... y", English), "SS x,  y.");
        assert_eq!(punc_norm("ß  x... y", Turbo), "SS x... y.");
        assert_eq!(punc_norm(" a - b;", English), "a, b,");
        assert_eq!(punc_norm("a\u{1c}b", English), "A b.");
        assert_eq!(punc_norm("好。", Multilingual), "好。");
        assert_eq!(punc_norm("好。", English), "好。.");
    }
}
