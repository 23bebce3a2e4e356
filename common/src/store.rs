//! How analyze and capture reach an S3 bucket: one configuration of object_store's AWS
//! client, so that a trace read and a segment shipped use the same credentials, endpoint and
//! retry policy.
//!
//! Credentials come from the usual AWS chain: the environment (`AWS_ACCESS_KEY_ID`, …), then
//! the shared credentials file's profile (`AWS_SHARED_CREDENTIALS_FILE` or
//! `~/.aws/credentials`, profile `AWS_PROFILE` or `default` — object_store itself reads only
//! the environment and the metadata services), then the instance or task role. An endpoint
//! (`--s3-endpoint`, else `AWS_ENDPOINT_URL` / `AWS_ENDPOINT`) points at an S3-compatible
//! store; plain http is allowed only for an endpoint given that way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{ClientOptions, RetryConfig};

/// The client for `bucket`: `endpoint` overrides the environment's; `timeout` bounds one
/// request. A few quick retries, so an unreachable store is reported in seconds.
pub fn s3(
    bucket: &str,
    endpoint: Option<&str>,
    timeout: Duration,
) -> Result<AmazonS3, object_store::Error> {
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let endpoint = endpoint.map(str::to_string).or_else(|| {
        ["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
            .iter()
            .find_map(|k| std::env::var(k).ok())
    });
    let mut options = ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(timeout);
    if let Some(e) = endpoint {
        // Plain http only for an endpoint given explicitly (a local or in-cluster store).
        options = options.with_allow_http(e.starts_with("http://"));
        b = b.with_endpoint(e);
    }
    if b.get_config_value(&AmazonS3ConfigKey::Region).is_none() {
        b = b.with_region(
            std::env::var("AWS_DEFAULT_REGION").unwrap_or_else(|_| "us-east-1".into()),
        );
    }
    if let Some([key, secret, token]) = profile_credentials() {
        if let Some(k) = key {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = secret {
            b = b.with_secret_access_key(s);
        }
        if let Some(t) = token {
            b = b.with_token(t);
        }
    }
    let retry = RetryConfig {
        max_retries: 2,
        retry_timeout: Duration::from_secs(15),
        ..RetryConfig::default()
    };
    b.with_client_options(options).with_retry(retry).build()
}

/// What the store said, on one line and short: S3's error code and message when it answered
/// (NoSuchBucket, AccessDenied, InvalidAccessKeyId…), else object_store's account of the
/// request. Never a credential: object_store's errors hold none.
pub fn describe(e: &object_store::Error) -> String {
    if let object_store::Error::NotFound { .. } = e {
        return "no such object".into();
    }
    let text = e.to_string();
    let between = |a: &str, b: &str| {
        let start = text.find(a)? + a.len();
        let len = text[start..].find(b)?;
        Some(text[start..start + len].to_string())
    };
    let short = match (
        between("<Code>", "</Code>"),
        between("<Message>", "</Message>"),
    ) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => text,
    };
    short.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The key, secret and token of a profile in the shared credentials file, when the
/// environment holds no key.
fn profile_credentials() -> Option<[Option<String>; 3]> {
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        return None;
    }
    let file = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".aws/credentials")))?;
    let text = std::fs::read_to_string(file).ok()?;
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    parse_profile(&text, &profile)
}

fn parse_profile(text: &str, profile: &str) -> Option<[Option<String>; 3]> {
    let mut section = String::new();
    let mut found: [Option<String>; 3] = [None, None, None];
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
        } else if section == profile
            && let Some((k, v)) = line.split_once('=')
        {
            let slot = match k.trim() {
                "aws_access_key_id" => 0,
                "aws_secret_access_key" => 1,
                "aws_session_token" => 2,
                _ => continue,
            };
            found[slot] = Some(v.trim().to_string());
        }
    }
    found[0].is_some().then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_its_code_and_message_on_one_line() {
        let answer = "Error performing PUT http://127.0.0.1:1/b/k in 2ms - Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?>\n<Error><Code>AccessDenied</Code><Message>Access\n Denied</Message><RequestId>R</RequestId></Error>";
        let e = object_store::Error::Generic {
            store: "S3",
            source: answer.into(),
        };
        assert_eq!(describe(&e), "AccessDenied: Access Denied");
        let e = object_store::Error::Generic {
            store: "S3",
            source: "connection refused\n  (os error 111)".into(),
        };
        assert_eq!(
            describe(&e),
            "Generic S3 error: connection refused (os error 111)"
        );
    }

    #[test]
    fn the_named_profile_and_only_it() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[ci]\naws_access_key_id=C\naws_session_token = T\n";
        assert_eq!(
            parse_profile(text, "default"),
            Some([Some("A".into()), Some("B".into()), None])
        );
        assert_eq!(
            parse_profile(text, "ci"),
            Some([Some("C".into()), None, Some("T".into())])
        );
        assert_eq!(parse_profile(text, "other"), None);
    }
}
