//! Audio in and out of the worker. A leaf: no model, HTTP or storage code.

pub mod wav;
