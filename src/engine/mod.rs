//! The Chatterbox engine: which model is configured and where its loading stands. The model
//! itself, its thread and its caches arrive with the engine port; until then the engine is never
//! loaded.

pub mod checkpoints;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// The Chatterbox variant a worker serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// ResembleAI/chatterbox-turbo: GPT-2 backbone, 2-step flow; the default.
    Turbo,
    /// ResembleAI/chatterbox: the English Llama backbone.
    English,
    /// The 23-language checkpoint.
    Multilingual,
}

impl ModelKind {
    pub const NAMES: &'static str = "turbo, english (or standard), multilingual";
}

impl FromStr for ModelKind {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim().to_ascii_lowercase().as_str() {
            "turbo" | "chatterbox-turbo" => Ok(Self::Turbo),
            "english" | "standard" | "chatterbox" => Ok(Self::English),
            "multilingual" | "mtl" | "chatterbox-multilingual" => Ok(Self::Multilingual),
            other => Err(format!(
                "unknown Chatterbox model {other:?}; expected one of: {}",
                Self::NAMES
            )),
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Turbo => "turbo",
            Self::English => "english",
            Self::Multilingual => "multilingual",
        };
        f.write_str(name)
    }
}

/// Where the engine's lazy load stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "error")]
pub enum EngineState {
    NotLoaded,
    Loading,
    Ready,
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct Engine {
    model: ModelKind,
}

impl Engine {
    pub fn new(model: ModelKind) -> Self {
        Self { model }
    }

    pub fn model(&self) -> ModelKind {
        self.model
    }

    pub fn state(&self) -> EngineState {
        EngineState::NotLoaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_and_aliases_parse() {
        assert_eq!("Turbo".parse::<ModelKind>(), Ok(ModelKind::Turbo));
        assert_eq!("standard".parse::<ModelKind>(), Ok(ModelKind::English));
        assert_eq!("mtl".parse::<ModelKind>(), Ok(ModelKind::Multilingual));
        let error = "tts-1".parse::<ModelKind>().unwrap_err();
        assert!(
            error.contains("turbo") && error.contains("tts-1"),
            "{error}"
        );
    }

    #[test]
    fn states_serialise_for_the_info_job() {
        let json = |s: EngineState| serde_json::to_value(s).unwrap();
        assert_eq!(
            json(EngineState::NotLoaded),
            serde_json::json!({"state": "not_loaded"})
        );
        assert_eq!(
            json(EngineState::Failed("no weights".into())),
            serde_json::json!({"state": "failed", "error": "no weights"})
        );
    }
}
