//! chatterbox-worker: a RunPod serverless worker for Resemble AI's Chatterbox speech models.
//! docs/architecture.md maps the modules.

pub mod audio;
pub mod cli;
pub mod config;
pub mod engine;
pub mod handlers;
pub mod job;
pub mod logging;
pub mod model;
pub mod runpod;
pub mod serve;
pub mod shutdown;
pub mod storage;
