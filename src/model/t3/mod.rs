//! T3, the transformer that turns text into S3 speech tokens (chatterbox/models/t3/).

pub mod backbone;
pub mod inference;
pub mod llama_configs;
pub mod modules;
#[allow(clippy::module_inception)]
pub mod t3;

pub use modules::cond_enc::T3Cond;
pub use modules::t3_config::T3Config;
pub use t3::{ConditioningPrefix, GenerateOptions, T3};
