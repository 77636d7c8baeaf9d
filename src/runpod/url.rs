//! The SDK's URL templates: `$RUNPOD_POD_ID` and `$ID` placeholders, plus query parameters that
//! must land in the query even when a template has no `?` of its own.

use reqwest::Url;

/// Replaces `$RUNPOD_POD_ID` with the worker id and `$ID` with `id` (the worker id for job-take
/// and job-stop, the job id for job-done and job-stream), percent-encoded as path text.
pub fn fill(template: &str, worker_id: &str, id: &str) -> String {
    template
        .replace("$RUNPOD_POD_ID", &encode_path_text(worker_id))
        .replace("$ID", &encode_path_text(id))
}

/// Appends `pairs` to the query, with `?` or `&` as the URL needs.
pub fn with_query(url: &str, pairs: &[(&str, &str)]) -> Result<Url, url::ParseError> {
    let mut url = Url::parse(url)?;
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    Ok(url)
}

fn encode_path_text(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_take_the_worker_and_job_ids() {
        let template = "https://api.runpod.ai/v2/ep/job-done/$RUNPOD_POD_ID/$ID?gpu=NVIDIA+H100";
        assert_eq!(
            fill(template, "pod1", "job-1"),
            "https://api.runpod.ai/v2/ep/job-done/pod1/job-1?gpu=NVIDIA+H100"
        );
        assert_eq!(fill("http://h/x/$ID", "w", "a/b c"), "http://h/x/a%2Fb%20c");
    }

    #[test]
    fn query_parameters_join_with_question_mark_or_ampersand() {
        let q = [("isStream", "false")];
        assert_eq!(
            with_query("http://h/done/1?gpu=A", &q).unwrap().as_str(),
            "http://h/done/1?gpu=A&isStream=false"
        );
        assert_eq!(
            with_query("http://h/done/1", &q).unwrap().as_str(),
            "http://h/done/1?isStream=false"
        );
        assert_eq!(
            with_query("http://h/done/1?", &q).unwrap().as_str(),
            "http://h/done/1?isStream=false"
        );
        assert_eq!(
            with_query("http://h/ping", &[("job_id", "a,b")])
                .unwrap()
                .as_str(),
            "http://h/ping?job_id=a%2Cb"
        );
    }
}
