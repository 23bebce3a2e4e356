//! Delivering findings to a webhook, one HTTP POST per finding in Falco's alert shape
//! ([`crate::report::falco`]): what Falcosidekick's `/` endpoint takes.
//!
//! Each finding is retried a bounded number of times with exponential backoff when the
//! receiver is unreachable, times out, or answers 408, 429 or 5xx; any other answer but 2xx
//! is final (the receiver refused that payload, and sending it again would not change its
//! mind). A finding that cannot be delivered stops the delivery with an error that names the
//! URL, the finding and how many were delivered: nothing is dropped silently.

use std::time::Duration;

use crate::http::{agent, is_http_url, redact};
use crate::report::falco::Alert;

/// How hard to try.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Attempts per finding (at least 1).
    pub attempts: u32,
    /// Wait after the first failed attempt; doubled after each further one.
    pub backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
    /// Time limit of one attempt (connect, send, answer).
    pub timeout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            attempts: 5,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(4),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why findings were not delivered.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Not an http(s) URL.
    #[error("--webhook {url}: not an http:// or https:// URL")]
    BadUrl {
        /// The URL.
        url: String,
    },
    /// A finding could not be delivered.
    #[error(
        "--webhook {url}: finding {uid} ({rule}) not delivered after {attempts} attempt(s): {last}; {delivered} of {total} findings delivered"
    )]
    Undelivered {
        /// The URL.
        url: String,
        /// The finding's uid (`needle.uid`).
        uid: String,
        /// Its rule (finding type).
        rule: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's failure.
        last: String,
        /// Findings delivered before it.
        delivered: usize,
        /// Findings in all.
        total: usize,
    },
    /// An alert cannot be encoded (not expected: alerts are plain data).
    #[error("--webhook {url}: encoding an alert: {source}")]
    Encode {
        /// The URL.
        url: String,
        /// The encoder's error.
        source: serde_json::Error,
    },
}

/// What a delivery did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Findings delivered.
    pub findings: usize,
    /// Attempts that failed and were retried.
    pub retries: usize,
}

/// Checks that `url` is one a webhook can be posted to.
pub fn check_url(url: &str) -> Result<(), WebhookError> {
    if is_http_url(url) {
        Ok(())
    } else {
        Err(WebhookError::BadUrl { url: redact(url) })
    }
}

enum Attempt {
    Done,
    Retry(String),
    Refused(String),
}

fn attempt(agent: &ureq::Agent, url: &str, body: &[u8]) -> Attempt {
    match agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
    {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match status {
                200..=299 => Attempt::Done,
                408 | 429 | 500..=599 => Attempt::Retry(format!("HTTP {status}")),
                _ => Attempt::Refused(format!("HTTP {status}")),
            }
        }
        Err(e) => Attempt::Retry(e.to_string()),
    }
}

/// Posts every alert to `url`, in order, each once it is accepted.
pub fn deliver(url: &str, alerts: &[Alert], policy: Policy) -> Result<Delivered, WebhookError> {
    check_url(url)?;
    // A redirect is an answer: the receiver is not where it was said to be.
    let agent = agent(policy.timeout, 0);
    let attempts = policy.attempts.max(1);
    let mut done = Delivered::default();
    for alert in alerts {
        let body = serde_json::to_vec(alert).map_err(|source| WebhookError::Encode {
            url: redact(url),
            source,
        })?;
        let mut wait = policy.backoff;
        let mut n = 0;
        let failure = loop {
            n += 1;
            match attempt(&agent, url, &body) {
                Attempt::Done => break None,
                Attempt::Refused(why) => break Some(format!("refused ({why})")),
                Attempt::Retry(why) if n >= attempts => break Some(why),
                Attempt::Retry(_) => {
                    done.retries += 1;
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(policy.max_backoff);
                }
            }
        };
        if let Some(last) = failure {
            let uid = match alert.output_fields.get("needle.uid") {
                Some(crate::report::falco::Value::Text(u)) => u.clone(),
                _ => String::new(),
            };
            return Err(WebhookError::Undelivered {
                url: redact(url),
                uid,
                rule: alert.rule.clone(),
                attempts: n,
                last,
                delivered: done.findings,
                total: alerts.len(),
            });
        }
        done.findings += 1;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_urls_are_refused_without_showing_secrets() {
        assert!(check_url("http://127.0.0.1:2801/").is_ok());
        let e = check_url("ftp://u:secret@h/").unwrap_err().to_string();
        assert!(e.contains("ftp://***@h/") && !e.contains("secret"), "{e}");
    }
}
