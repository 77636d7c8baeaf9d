//! Everything that reads or writes outside the process: the network volume and S3.

pub mod fetch;
pub mod inputs;
pub mod outputs;
pub mod s3;
pub mod voices;
pub mod volume;
