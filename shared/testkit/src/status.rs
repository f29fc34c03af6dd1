//! Assertions on failed gRPC calls: the code, and the rich details the platform attaches.

use tonic::{Code, Status};
use tonic_types::StatusExt;

/// Asserts the code of a failed call and returns its status.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(value) => panic!("expected {code:?}, got Ok({value:?})"),
        Err(status) => {
            assert_eq!(status.code(), code, "unexpected status: {status:?}");
            status
        }
    }
}

/// The fields named in the status's BadRequest details, in order.
pub fn violated_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// The `(type, subject)` of each PreconditionFailure violation, in order.
pub fn preconditions(status: &Status) -> Vec<(String, String)> {
    status
        .get_details_precondition_failure()
        .map(|p| {
            p.violations
                .into_iter()
                .map(|v| (v.r#type, v.subject))
                .collect()
        })
        .unwrap_or_default()
}
