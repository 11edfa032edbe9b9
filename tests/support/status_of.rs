//! The status code of a raw HTTP response.

/// The status code of a raw response (0 if there is none).
pub(crate) fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
