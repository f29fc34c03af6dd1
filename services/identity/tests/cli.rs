//! The binary's configuration: a missing or malformed value stops it with a message naming the
//! variable, and never echoes a secret it was given.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn identity(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_identity"));
    command.env_clear().args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

const PAGE_KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEK: &str = "k1:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

#[test]
fn serve_without_a_database_url_names_the_missing_variable() {
    let out = identity(
        &["serve"],
        &[("KEY_ENCRYPTION_KEYS", KEK), ("PAGE_TOKEN_KEY", PAGE_KEY)],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

#[test]
fn a_malformed_key_is_refused_without_echoing_it() {
    let secret_looking = "c2hvcnQtYnV0LXNlY3JldA==";
    let out = identity(
        &["serve"],
        &[
            ("DATABASE_URL", "postgres://identity_app@127.0.0.1:1/x"),
            ("KEY_ENCRYPTION_KEYS", KEK),
            ("PAGE_TOKEN_KEY", secret_looking),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PAGE_TOKEN_KEY") || stderr.contains("page-token-key"),
        "{stderr}"
    );
    assert!(stderr.contains("32 bytes"), "{stderr}");
    assert!(
        !stderr.contains(secret_looking),
        "the rejected secret was echoed: {stderr}"
    );
}

#[test]
fn a_malformed_key_list_is_refused_with_the_reason() {
    let out = identity(
        &["serve"],
        &[
            ("DATABASE_URL", "postgres://identity_app@127.0.0.1:1/x"),
            ("KEY_ENCRYPTION_KEYS", "k1:not-base64!"),
            ("PAGE_TOKEN_KEY", PAGE_KEY),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("key-encryption-keys") || stderr.contains("KEY_ENCRYPTION_KEYS"),
        "{stderr}"
    );
    assert!(stderr.contains("not base64"), "{stderr}");
    assert!(
        !stderr.contains("not-base64!"),
        "the rejected key list was echoed: {stderr}"
    );
}

#[test]
fn a_lockout_threshold_below_one_is_refused() {
    let out = identity(
        &["serve"],
        &[
            ("DATABASE_URL", "postgres://identity_app@127.0.0.1:1/x"),
            ("KEY_ENCRYPTION_KEYS", KEK),
            ("PAGE_TOKEN_KEY", PAGE_KEY),
            ("LOCKOUT_MAX_FAILURES", "0"),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lockout-max-failures") || stderr.contains("LOCKOUT_MAX_FAILURES"),
        "{stderr}"
    );
}
