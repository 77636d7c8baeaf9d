//! S3 settings: RunPod's `BUCKET_*` variables, or the `S3_*` names of the Python deployment.

/// A bucket configured through the environment.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    pub endpoint_url: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub bucket: Option<String>,
    pub region: Option<String>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint_url", &self.endpoint_url)
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .finish()
    }
}

impl S3Settings {
    /// `None` unless an endpoint and both keys are set, as rp_upload requires.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let first = |names: &[&str]| {
            names
                .iter()
                .find_map(|name| var(name).filter(|v| !v.trim().is_empty()))
        };
        Some(Self {
            endpoint_url: first(&["BUCKET_ENDPOINT_URL", "S3_ENDPOINT_URL"])?,
            access_key_id: first(&["BUCKET_ACCESS_KEY_ID", "S3_ACCESS_KEY_ID"])?,
            secret_access_key: first(&["BUCKET_SECRET_ACCESS_KEY", "S3_SECRET_ACCESS_KEY"])?,
            bucket: first(&["BUCKET_NAME", "S3_BUCKET_NAME"]),
            region: first(&["BUCKET_REGION", "S3_REGION", "AWS_REGION"]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_needs_endpoint_and_both_keys() {
        let partial = |name: &str| (name == "BUCKET_ENDPOINT_URL").then(|| "http://s3".to_string());
        assert!(S3Settings::from_lookup(partial).is_none());
        let seed_names = |name: &str| match name {
            "S3_ENDPOINT_URL" => Some("http://s3".to_string()),
            "S3_ACCESS_KEY_ID" => Some("ak".to_string()),
            "S3_SECRET_ACCESS_KEY" => Some("sk".to_string()),
            "S3_BUCKET_NAME" => Some("audio".to_string()),
            _ => None,
        };
        let settings = S3Settings::from_lookup(seed_names).unwrap();
        assert_eq!(settings.bucket.as_deref(), Some("audio"));
        assert!(!format!("{settings:?}").contains("sk"));
    }
}
