//! Text front-ends against the reference (tools/parity/cases/text.py): punc_norm strings and
//! token ids must be identical, for the tokenizers alone ("raw") and for the whole
//! `TextTokenizer::encode` path ("ids": punc_norm, tokenizer, SOT/EOT where the reference pads).
//! The tokenizer files are tests/fixtures/tokenizers/ (provenance in its README.md).

use std::path::{Path, PathBuf};

use chatterbox_worker::model::tokenizers::{
    EnTokenizer, MTLTokenizer, PuncNormVariant, TextTokenizer, TokenizerError, TurboTokenizer,
    punc_norm,
};
use serde::Deserialize;

use crate::fixture::Fixture;

#[derive(Deserialize)]
struct Config {
    kind: String,
    tokenizer: Option<String>,
    cangjie: Option<String>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    text: String,
    language: Option<String>,
    #[serde(default)]
    raw: bool,
    english: Option<String>,
    multilingual: Option<String>,
    turbo: Option<String>,
}

fn files() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizers")
}

fn expected(f: &Fixture, name: &str) -> Vec<u32> {
    let ids: Vec<i64> = f.output(name).to_vec1().unwrap();
    ids.into_iter()
        .map(|id| u32::try_from(id).unwrap())
        .collect()
}

/// One tokenizer under test: the raw encoder and the full path.
struct Subject {
    tokenizer: TextTokenizer,
}

impl Subject {
    fn load(config: &Config) -> Subject {
        let path = files().join(config.tokenizer.as_deref().unwrap());
        let tokenizer = match config.kind.as_str() {
            "english" => TextTokenizer::English(EnTokenizer::from_file(&path).unwrap()),
            "multilingual" => {
                let cangjie = config.cangjie.as_ref().map(|c| files().join(c));
                TextTokenizer::Multilingual(MTLTokenizer::new(&path, cangjie.as_deref()).unwrap())
            }
            "turbo" => TextTokenizer::Turbo(TurboTokenizer::from_dir(&path).unwrap()),
            other => panic!("unknown text fixture kind {other}"),
        };
        Subject { tokenizer }
    }

    fn raw(&self, text: &str, language: Option<&str>) -> Result<Vec<u32>, TokenizerError> {
        match &self.tokenizer {
            TextTokenizer::English(t) => t.encode(text),
            TextTokenizer::Multilingual(t) => t.encode(text, language),
            TextTokenizer::Turbo(t) => t.encode(text),
        }
    }
}

#[test]
fn text_front_ends_match_the_reference() {
    let mut failures = Vec::new();
    for f in Fixture::all("text") {
        let config: Config = f.config();
        let mut checked = 0;
        if config.kind == "punc_norm" {
            for case in &config.cases {
                for (variant, want) in [
                    (PuncNormVariant::English, &case.english),
                    (PuncNormVariant::Multilingual, &case.multilingual),
                    (PuncNormVariant::Turbo, &case.turbo),
                ] {
                    let want = want.as_deref().unwrap();
                    let got = punc_norm(&case.text, variant);
                    if got != want {
                        failures.push(format!("{variant:?} {:?}: {got:?} != {want:?}", case.text));
                    }
                    checked += 1;
                }
            }
            println!("{}: {checked} punc_norm strings", f.case);
            continue;
        }
        let subject = Subject::load(&config);
        for case in &config.cases {
            let language = case.language.as_deref();
            let mut compare = |what: &str, got: Result<Vec<u32>, TokenizerError>| {
                let want = expected(&f, &format!("{}.{what}", case.name));
                match got {
                    Ok(got) if got == want => {}
                    got => failures.push(format!(
                        "{} {} {what} {:?} ({language:?}):\n  ours {got:?}\n  ref  {want:?}",
                        f.case, case.name, case.text
                    )),
                }
                checked += 1;
            };
            if case.raw {
                compare("raw", subject.raw(&case.text, language));
            }
            compare("ids", subject.tokenizer.encode(&case.text, language));
        }
        println!("{}: {checked} id sequences", f.case);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Inputs no request should be able to turn into a panic: every tokenizer returns ids (or, for
/// a bad language, an error naming it).
#[test]
fn hostile_text_does_not_panic() {
    let dir = files();
    let tokenizers = [
        TextTokenizer::English(EnTokenizer::from_file(&dir.join("en/tokenizer.json")).unwrap()),
        TextTokenizer::Multilingual(
            MTLTokenizer::from_file(&dir.join("mtl/mtl_tokenizer.json")).unwrap(),
        ),
        TextTokenizer::Turbo(TurboTokenizer::from_dir(&dir.join("turbo")).unwrap()),
    ];
    let long = "a".repeat(100_000);
    let long_words = "word ".repeat(20_000);
    let long_cjk = "你好".repeat(50_000);
    let inputs = [
        "",
        " ",
        "     ",
        "\0",
        "\0\0 \0",
        "\u{301}",
        "\u{301}\u{301}\u{20dd}",
        "\u{feff}",
        "[",
        "[SPACE",
        "[cj_",
        "\u{ac00}\u{d7af}",
        "\u{10ffff}",
        &long,
        &long_words,
        &long_cjk,
    ];
    for tokenizer in &tokenizers {
        for text in inputs {
            for language in [None, Some("zh"), Some("ko"), Some("ja")] {
                let ids = tokenizer.encode(text, language).unwrap();
                assert!(!ids.is_empty(), "{:?}: no ids", text.get(..20));
            }
        }
    }
    let TextTokenizer::Turbo(turbo) = &tokenizers[2] else {
        unreachable!()
    };
    assert_eq!(turbo.vocab_size(), 50276);
    assert_eq!(tokenizers[2].encode(&long_words, None).unwrap().len(), 1024);
    let err = tokenizers[1].encode("hi", Some("xx")).unwrap_err();
    assert!(
        matches!(err, TokenizerError::UnsupportedLanguage(ref l) if l == "xx"),
        "{err}"
    );
    let missing = EnTokenizer::from_file(&dir.join("nope/tokenizer.json"))
        .err()
        .unwrap();
    assert!(
        missing.to_string().contains("nope/tokenizer.json"),
        "{missing}"
    );
}
