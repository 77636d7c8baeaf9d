//! Long texts cut into pieces the model speaks well. Chatterbox garbles or truncates past
//! roughly 300 characters (about 40 s of speech is its hard token limit), so a text is packed
//! into chunks of whole sentences up to a size, and a sentence longer than that is cut at a
//! clause, then a word, as a last resort mid-word.

use serde::Serialize;

/// The seeds' `MAX_CHUNK_CHARS`, and the range a job may choose from.
pub const DEFAULT_MAX_CHUNK_CHARS: usize = 300;
pub const MAX_CHUNK_CHARS_RANGE: (u64, u64) = (50, 1000);

/// How a chunk's text ends, which sets the pause before the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Boundary {
    Paragraph,
    Sentence,
    Clause,
    Word,
}

impl Boundary {
    /// Silence put after a chunk that ends this way, before the next one starts.
    pub fn pause_ms(self) -> f64 {
        match self {
            Boundary::Paragraph => 600.0,
            Boundary::Sentence => 300.0,
            Boundary::Clause => 150.0,
            Boundary::Word => 50.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextChunk {
    pub text: String,
    pub ends: Boundary,
}

/// Words that end in a full stop without ending a sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "no", "fig", "inc", "ltd",
    "co", "mt", "approx", "dept", "est", "gen", "gov", "rev", "sgt", "capt", "col", "lt",
];

fn ends_sentence(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？' | '।' | '؟')
}

/// Punctuation a sentence may be cut after.
fn ends_clause(c: char) -> bool {
    matches!(
        c,
        ',' | ';' | ':' | '—' | '–' | '，' | '、' | '；' | '：' | '،'
    )
}

/// Closing marks that belong to the sentence before them: `."` or `?)`.
fn closes(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | ')' | ']' | '”' | '’' | '»' | '」' | '』' | '）'
    )
}

/// Scripts written without spaces end a sentence at the mark itself.
fn is_fullwidth_stop(c: char) -> bool {
    matches!(c, '。' | '！' | '？')
}

/// `text`'s sentences, each with how it ends.
fn sentences(text: &str) -> Vec<TextChunk> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let boundary = if c == '\n' {
            // A blank line (or a line break after a sentence) is a paragraph; a lone line
            // break inside a sentence is just a space.
            let mut j = i + 1;
            while j < chars.len() && chars[j].is_whitespace() && chars[j] != '\n' {
                j += 1;
            }
            let blank_line = j < chars.len() && chars[j] == '\n';
            let before = chars[start..i].iter().rev().find(|c| !c.is_whitespace());
            (blank_line || before.is_some_and(|&c| ends_sentence(c) || closes(c)))
                .then_some((Boundary::Paragraph, i + 1))
        } else if ends_sentence(c) {
            let mut end = i + 1;
            while end < chars.len() && (ends_sentence(chars[end]) || closes(chars[end])) {
                end += 1;
            }
            let followed_by_space = end == chars.len() || chars[end].is_whitespace();
            let sentence_end = (followed_by_space || is_fullwidth_stop(c))
                && !(c == '.' && is_abbreviation(&chars[start..i]));
            if sentence_end {
                Some((Boundary::Sentence, end))
            } else {
                i = end;
                continue;
            }
        } else {
            None
        };
        match boundary {
            Some((ends, end)) => {
                push_trimmed(&mut out, &chars[start..end], ends);
                start = end;
                i = end;
            }
            None => i += 1,
        }
    }
    push_trimmed(&mut out, &chars[start..], Boundary::Sentence);
    out
}

/// Whether the word before a full stop is an abbreviation, dotted ("e.g", "p.m") or known, or
/// an initial ("J. R. R.").
fn is_abbreviation(before: &[char]) -> bool {
    let word: String = before
        .iter()
        .rev()
        .take_while(|c| !c.is_whitespace())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let word = word.trim_start_matches(|c: char| !c.is_alphanumeric());
    let single_initial = word.chars().count() == 1 && word.chars().all(char::is_uppercase);
    single_initial || word.contains('.') || ABBREVIATIONS.contains(&word.to_lowercase().as_str())
}

/// Adds the text with its whitespace collapsed, unless nothing speakable is left.
fn push_trimmed(out: &mut Vec<TextChunk>, chars: &[char], ends: Boundary) {
    let text = chars
        .iter()
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if text.chars().any(char::is_alphanumeric) {
        out.push(TextChunk { text, ends });
    } else if let Some(last) = out.last_mut() {
        // Stray punctuation or symbols go with the sentence before them.
        if !text.is_empty() {
            last.text.push(' ');
            last.text.push_str(&text);
        }
        if ends == Boundary::Paragraph {
            last.ends = ends;
        }
    }
}

/// A sentence longer than `max_chars` cut at the last clause mark that fits, else the last
/// space, else at `max_chars` itself.
fn cut_long(sentence: TextChunk, max_chars: usize, out: &mut Vec<TextChunk>) {
    let mut rest: Vec<char> = sentence.text.chars().collect();
    while rest.len() > max_chars {
        let window = &rest[..=max_chars];
        let clause = window[..max_chars]
            .iter()
            .rposition(|&c| ends_clause(c))
            .filter(|&at| window[at + 1].is_whitespace() || !window[at].is_ascii())
            .filter(|&at| at > 0);
        let (cut, ends) = match clause {
            Some(at) => (at + 1, Boundary::Clause),
            None => match window
                .iter()
                .rposition(|c| c.is_whitespace())
                .filter(|&at| at > 0)
            {
                Some(at) => (at, Boundary::Word),
                None => (max_chars, Boundary::Word),
            },
        };
        let head: String = rest[..cut].iter().collect();
        out.push(TextChunk {
            text: head.trim().to_string(),
            ends,
        });
        rest = rest[cut..]
            .iter()
            .copied()
            .skip_while(|c| c.is_whitespace())
            .collect();
    }
    if !rest.is_empty() {
        out.push(TextChunk {
            text: rest.into_iter().collect(),
            ends: sentence.ends,
        });
    }
}

/// `text` as chunks of at most `max_chars` characters, whole sentences packed together where
/// they fit. Empty when the text has nothing to say.
pub fn split(text: &str, max_chars: usize) -> Vec<TextChunk> {
    let max_chars = max_chars.max(1);
    let mut pieces = Vec::new();
    for sentence in sentences(text) {
        cut_long(sentence, max_chars, &mut pieces);
    }
    let mut chunks: Vec<TextChunk> = Vec::new();
    for piece in pieces {
        match chunks.last_mut() {
            // Sentences pack together; a paragraph or a cut sentence starts afresh after it.
            Some(last)
                if last.ends == Boundary::Sentence
                    && last.text.chars().count() + 1 + piece.text.chars().count() <= max_chars =>
            {
                last.text.push(' ');
                last.text.push_str(&piece.text);
                last.ends = piece.ends;
            }
            _ => chunks.push(piece),
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(chunks: &[TextChunk]) -> Vec<&str> {
        chunks.iter().map(|c| c.text.as_str()).collect()
    }

    #[test]
    fn short_text_is_one_chunk() {
        let chunks = split("  Hello there.  How are you?  ", 300);
        assert_eq!(texts(&chunks), ["Hello there. How are you?"]);
        assert_eq!(chunks[0].ends, Boundary::Sentence);
        assert!(split(" \n ... ", 300).is_empty());
    }

    #[test]
    fn sentences_pack_up_to_the_limit() {
        let chunks = split("One two three. Four five six! Seven eight nine? Ten.", 30);
        assert_eq!(
            texts(&chunks),
            ["One two three. Four five six!", "Seven eight nine? Ten."]
        );
        assert!(chunks.iter().all(|c| c.ends == Boundary::Sentence));
    }

    #[test]
    fn abbreviations_initials_and_decimals_do_not_end_sentences() {
        let text = "Dr. Smith met J. R. Tolkien at 3.5 p.m. on Main St. today. Then they left.";
        let chunks = split(text, 62);
        assert_eq!(
            texts(&chunks),
            [
                "Dr. Smith met J. R. Tolkien at 3.5 p.m. on Main St. today.",
                "Then they left."
            ]
        );
    }

    #[test]
    fn quotes_stay_with_their_sentence_and_paragraphs_end_chunks() {
        let chunks = split("He said \"stop.\" She ran.\n\nNew part here", 300);
        assert_eq!(
            texts(&chunks),
            ["He said \"stop.\" She ran.", "New part here"]
        );
        assert_eq!(chunks[0].ends, Boundary::Paragraph);
        // A line break inside a sentence is only a space.
        assert_eq!(
            texts(&split("a line\nwrapped here.", 300)),
            ["a line wrapped here."]
        );
    }

    #[test]
    fn long_sentences_cut_at_clauses_then_words_then_anywhere() {
        let chunks = split("alpha beta gamma, delta epsilon zeta eta theta", 25);
        assert_eq!(
            texts(&chunks),
            ["alpha beta gamma,", "delta epsilon zeta eta", "theta"]
        );
        assert_eq!(
            chunks.iter().map(|c| c.ends).collect::<Vec<_>>(),
            [Boundary::Clause, Boundary::Word, Boundary::Sentence]
        );
        let chunks = split(&"x".repeat(120), 50);
        assert_eq!(
            chunks.iter().map(|c| c.text.len()).collect::<Vec<_>>(),
            [50, 50, 20]
        );
    }

    #[test]
    fn every_chunk_fits_and_no_word_is_lost() {
        let text = "Il était une fois, dans un pays lointain; un roi. 你好。今天天气很好！\
                    Ünïcödé wörds… and more words here? Yes."
            .repeat(20);
        for max in [50, 80, 300] {
            let chunks = split(&text, max);
            assert!(chunks.iter().all(|c| c.text.chars().count() <= max));
            let joined: String = chunks.iter().map(|c| c.text.as_str()).collect();
            let letters = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
            assert_eq!(letters(&joined), letters(&text));
        }
    }
}
