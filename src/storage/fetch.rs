//! Audio named by an http(s) URL, fetched defensively: only http and https, every address the
//! name resolves to checked (private, loopback, link-local and metadata addresses refused unless
//! the operator allows them), the connection pinned to the checked address, redirects followed
//! by hand and checked again, a size cap and time-outs.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use url::Url;

const MAX_REDIRECTS: usize = 5;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default for [`FetchPolicy::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct FetchPolicy {
    pub max_bytes: u64,
    /// Lets URLs reach private and loopback addresses (tests, private deployments).
    pub allow_private: bool,
    /// For the whole download of each hop.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FetchError {
    #[error("{0:?} is not an http(s) URL")]
    Scheme(String),
    #[error("the URL {0:?} is not valid")]
    Invalid(String),
    #[error("{0} resolves to a private, loopback or link-local address, which URLs may not reach")]
    Refused(String),
    #[error("{0} could not be resolved")]
    Unresolved(String),
    #[error("the download is larger than {0} bytes")]
    TooLarge(u64),
    #[error("more than {MAX_REDIRECTS} redirects")]
    Redirects,
    #[error("the server answered {0}")]
    Status(u16),
    #[error("the download failed: {0}")]
    Transport(String),
}

/// The body of `url`.
pub async fn fetch(url: &str, policy: &FetchPolicy) -> Result<Vec<u8>, FetchError> {
    let mut url = Url::parse(url).map_err(|_| FetchError::Invalid(redacted(url)))?;
    for _ in 0..=MAX_REDIRECTS {
        let response = request(&url, policy).await?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or(FetchError::Status(status.as_u16()))?;
            url = url
                .join(location)
                .map_err(|_| FetchError::Invalid(redacted(location)))?;
            continue;
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        return body(response, policy.max_bytes).await;
    }
    Err(FetchError::Redirects)
}

/// One request to `url`, connected to an address that passed the check.
async fn request(url: &Url, policy: &FetchPolicy) -> Result<reqwest::Response, FetchError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::Scheme(redacted(url.as_str())));
    }
    let host = url
        .host_str()
        .ok_or_else(|| FetchError::Invalid(redacted(url.as_str())))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((bare_host, port))
        .await
        .map_err(|_| FetchError::Unresolved(host.to_string()))?
        .collect();
    let address = addresses
        .first()
        .copied()
        .ok_or_else(|| FetchError::Unresolved(host.to_string()))?;
    if !policy.allow_private && addresses.iter().any(|a| !is_public(a.ip())) {
        return Err(FetchError::Refused(host.to_string()));
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(policy.timeout)
        .resolve(bare_host, address)
        .build()
        .map_err(|e| FetchError::Transport(e.to_string()))?;
    client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| FetchError::Transport(e.without_url().to_string()))
}

async fn body(mut response: reqwest::Response, max_bytes: u64) -> Result<Vec<u8>, FetchError> {
    if response.content_length().is_some_and(|n| n > max_bytes) {
        return Err(FetchError::TooLarge(max_bytes));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| FetchError::Transport(e.without_url().to_string()))?
    {
        if bytes.len() as u64 + chunk.len() as u64 > max_bytes {
            return Err(FetchError::TooLarge(max_bytes));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Addresses a URL from a job may reach: not loopback, private, link-local (which holds the
/// clouds' metadata service), shared, unspecified, multicast or documentation ranges.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        },
    }
}

/// `url` as results, errors and logs may show it: without a user name or password, with its
/// query (a presigned URL's signature) and fragment elided, at most 120 characters. Text that
/// does not parse as a URL loses everything from its last `@` back to its scheme instead.
pub fn redacted(url: &str) -> String {
    let shown = match Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            let elided = parsed.query().is_some() || parsed.fragment().is_some();
            parsed.set_query(None);
            parsed.set_fragment(None);
            let mut shown = parsed.to_string();
            if elided {
                shown.push_str("?…");
            }
            shown
        }
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}{}", &url[..scheme + 3], &url[at + 1..])
            }
            _ => url.to_string(),
        },
    };
    shown.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_urls_carry_no_credentials_or_signatures() {
        for (url, shown) in [
            (
                "https://user:pw@example.com/a.wav",
                "https://example.com/a.wav",
            ),
            (
                "http://token@10.0.0.1:8080/a.wav",
                "http://10.0.0.1:8080/a.wav",
            ),
            (
                "https://b.s3.amazonaws.com/k.wav?X-Amz-Signature=abc#t",
                "https://b.s3.amazonaws.com/k.wav?…",
            ),
            (
                "https://example.com/plain.wav",
                "https://example.com/plain.wav",
            ),
            ("http://us er:pw@bad host/x", "http://bad host/x"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redacted(url), shown, "{url}");
        }
        assert_eq!(
            redacted(&format!("https://e.com/{}", "a".repeat(300)))
                .chars()
                .count(),
            120
        );
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "2606:4700::1111", "151.101.1.1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
