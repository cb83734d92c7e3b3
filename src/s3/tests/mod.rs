//! Tests of the S3 wire protocol, one file per concern; rows are
//! `(input, expected)` tables in the style of s3s `path.rs`.

mod classify;
mod error;
mod post;
mod replication;

use super::S3Error;

/// Asserts an error's status and code, and that its message says why.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(
    result: Result<T, S3Error>,
    status: u16,
    code: &str,
    why: &str,
    case: &str,
) {
    match result {
        Err(e) => {
            assert_eq!((e.status, e.code), (status, code), "{case}: {e}");
            assert!(
                e.message.contains(why),
                "{case}: message {:?} does not say {why:?}",
                e.message
            );
        }
        Ok(v) => panic!("{case}: expected {status} {code} ({why}), got {v:?}"),
    }
}
