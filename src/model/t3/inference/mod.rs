pub mod alignment_stream_analyzer;
pub mod sampling;
