//! The HTTP client side shared by the webhook and the intel feeds: which URLs are accepted,
//! how a URL is shown (without credentials), and one configured client.

use std::time::Duration;

/// True for an `http://` or `https://` URL with a host.
pub fn is_http_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/'))
        && url.parse::<ureq::http::Uri>().is_ok()
}

/// `url` as it may be shown: a password or token in its user part replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// A client that returns every HTTP status as a response (the caller decides), with a time
/// limit per request and at most `redirects` redirects followed.
pub fn agent(timeout: Duration, redirects: u32) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(redirects)
        .user_agent(concat!("needle-analyze/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_urls_are_not_shown() {
        assert_eq!(redact("https://u:tok@h:1/p?q=1"), "https://***@h:1/p?q=1");
        assert_eq!(redact("http://h/a@b"), "http://h/a@b");
    }

    #[test]
    fn only_http_urls_with_a_host() {
        for ok in [
            "http://127.0.0.1:2801/",
            "https://sidekick.example:2801",
            "HTTP://h/x",
        ] {
            assert!(is_http_url(ok), "{ok}");
        }
        for bad in [
            "127.0.0.1:2801",
            "ftp://h/",
            "http://",
            "http:///x",
            "file:///etc/passwd",
            "http://a b/",
        ] {
            assert!(!is_http_url(bad), "{bad}");
        }
    }
}
