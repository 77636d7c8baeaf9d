//! Audio in and out of the worker. A leaf: no model, HTTP or storage code.

pub mod format;
pub mod mp3;
pub mod stretch;
pub mod wav;
