//! S3 output: the bucket from RunPod's `BUCKET_*` variables, the `S3_*` names of the Python
//! deployment, or a job's own `s3Config`; files uploaded with aws-sdk-s3 and handed back as
//! presigned GET URLs, as RunPod's rp_upload does.

use std::time::Duration;

use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;

/// rp_upload's expiry, and SigV4's longest.
pub const DEFAULT_URL_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);
const DEFAULT_REGION: &str = "us-east-1";

/// A bucket and the credentials to write to it.
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

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("s3Config: {0}")]
    Config(String),
    /// The bucket answered with an error: its code and message, never the credentials.
    #[error("uploading {key} to bucket {bucket} failed: {reason}")]
    Upload {
        bucket: String,
        key: String,
        reason: String,
    },
    #[error("presigning the URL for {key} failed: {reason}")]
    Presign { key: String, reason: String },
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

    /// A job's `s3Config` as RunPod sends it: `endpointUrl`, `accessId`, `accessSecret`,
    /// optional `bucketName` and `region`.
    pub fn from_job_config(config: &Value) -> Result<Self, S3Error> {
        let text = |key: &str| match config.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
            Some(_) => Err(S3Error::Config(format!("{key} must be a non-empty string"))),
        };
        let required =
            |key: &str| text(key)?.ok_or_else(|| S3Error::Config(format!("{key} is required")));
        if !config.is_object() {
            return Err(S3Error::Config(
                "must be an object with endpointUrl, accessId and accessSecret".into(),
            ));
        }
        let endpoint_url = required("endpointUrl")?;
        if !(endpoint_url.starts_with("http://") || endpoint_url.starts_with("https://")) {
            return Err(S3Error::Config("endpointUrl must be an http(s) URL".into()));
        }
        Ok(Self {
            endpoint_url,
            access_key_id: required("accessId")?,
            secret_access_key: required("accessSecret")?,
            bucket: text("bucketName")?,
            region: text("region")?,
        })
    }

    /// The configured bucket, or rp_upload's default: the month as `MM-YY`.
    pub fn bucket_name(&self) -> String {
        self.bucket
            .clone()
            .unwrap_or_else(|| month_bucket(std::time::SystemTime::now()))
    }

    /// The configured region, the one in an `….s3.<region>.…` endpoint, or us-east-1.
    fn region(&self) -> String {
        if let Some(region) = &self.region {
            return region.clone();
        }
        let host = self
            .endpoint_url
            .split("://")
            .nth(1)
            .unwrap_or_default()
            .split(['/', ':'])
            .next()
            .unwrap_or_default();
        let labels: Vec<&str> = host.split('.').collect();
        labels
            .iter()
            .position(|label| *label == "s3")
            .and_then(|at| labels.get(at + 1))
            .filter(|region| region.contains('-'))
            .map_or(DEFAULT_REGION.to_string(), |region| region.to_string())
    }

    fn client(&self) -> aws_sdk_s3::Client {
        let credentials = Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            None,
            None,
            "chatterbox-worker",
        );
        let config = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .endpoint_url(&self.endpoint_url)
            .region(Region::new(self.region()))
            .credentials_provider(credentials)
            // Path-style addressing and checksums only where required work with every
            // S3-compatible store (R2, MinIO, Backblaze), not just AWS.
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_timeout(Duration::from_secs(300))
                    .build(),
            )
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Uploads `bytes` under `key` with its content type and returns a presigned GET URL
    /// valid for `expiry`.
    pub async fn upload(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        expiry: Duration,
    ) -> Result<String, S3Error> {
        let client = self.client();
        let bucket = self.bucket_name();
        client
            .put_object()
            .bucket(&bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| S3Error::Upload {
                bucket: bucket.clone(),
                key: key.to_string(),
                reason: reason(&e),
            })?;
        let presigning = PresigningConfig::expires_in(expiry).map_err(|e| S3Error::Presign {
            key: key.to_string(),
            reason: e.to_string(),
        })?;
        let request = client
            .get_object()
            .bucket(&bucket)
            .key(key)
            .presigned(presigning)
            .await
            .map_err(|e| S3Error::Presign {
                key: key.to_string(),
                reason: reason(&e),
            })?;
        Ok(request.uri().to_string())
    }
}

/// rp_upload's default bucket name: the UTC month as `MM-YY`.
fn month_bucket(time: std::time::SystemTime) -> String {
    let days = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        / 86_400;
    let (year, month, _) = super::outputs::civil_date(days);
    format!("{month:02}-{:02}", year % 100)
}

/// The store's error code and message, or what kept the request from reaching it.
fn reason<E: ProvideErrorMetadata>(error: &aws_sdk_s3::error::SdkError<E>) -> String {
    use aws_sdk_s3::error::SdkError;
    match error {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            let code = inner.code().unwrap_or("an error");
            match inner.message() {
                Some(message) => format!("{code}: {message}"),
                None => format!(
                    "the bucket answered {code} (HTTP {})",
                    service.raw().status()
                ),
            }
        }
        SdkError::DispatchFailure(_) => "the endpoint could not be reached".into(),
        SdkError::TimeoutError(_) => "the upload timed out".into(),
        _ => "the request could not be made".into(),
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

    #[test]
    fn job_configs_are_checked_and_regions_found() {
        let config = serde_json::json!({
            "endpointUrl": "https://bucket.s3.eu-west-2.amazonaws.com",
            "accessId": "ak",
            "accessSecret": "sk",
        });
        let settings = S3Settings::from_job_config(&config).unwrap();
        assert_eq!(settings.region(), "eu-west-2");
        let november_2026 = std::time::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(month_bucket(november_2026), "11-26");
        let error = S3Settings::from_job_config(&serde_json::json!({"endpointUrl": "x"}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("http(s)"), "{error}");
        let error = S3Settings::from_job_config(&serde_json::json!({
            "endpointUrl": "http://127.0.0.1:9000",
            "accessId": "ak",
        }))
        .unwrap_err()
        .to_string();
        assert!(error.contains("accessSecret is required"), "{error}");
        assert!(S3Settings::from_job_config(&serde_json::json!("s3://x")).is_err());
        let local = S3Settings::from_job_config(&serde_json::json!({
            "endpointUrl": "http://127.0.0.1:9000",
            "accessId": "ak",
            "accessSecret": "sk",
            "bucketName": "audio",
        }))
        .unwrap();
        assert_eq!(
            (local.region().as_str(), local.bucket_name().as_str()),
            ("us-east-1", "audio")
        );
    }
}
