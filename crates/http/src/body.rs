//! Reading a request body safely. The content type is checked before a byte
//! is read. The size limit counts the bytes actually streamed, not only
//! `Content-Length`, which a chunked body does not have. JSON nesting is
//! bounded before any parser recurses into it.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body_util::LengthLimitError;

use crate::error::ApiError;

/// The media types a submission endpoint understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// `application/json`: the native envelope (or the seed envelope).
    Json,
    /// `application/fhir+json`: a FHIR R4 `QuestionnaireResponse`.
    FhirJson,
}

/// Media types accepted by the versioned submission endpoint.
pub const SUBMISSION_MEDIA_TYPES: &[&str] = &["application/json", "application/fhir+json"];
/// Media types accepted by the seed-compatible endpoint.
pub const SEED_MEDIA_TYPES: &[&str] = &["application/json"];

/// Reads the media type from `Content-Type`, ignoring parameters such as
/// `charset=utf-8`.
///
/// # Errors
///
/// [`ApiError::UnsupportedMediaType`] when the header is missing or names a
/// type outside `accepted`.
pub fn media_type(headers: &HeaderMap, accepted: &'static [&'static str]) -> Result<MediaType, ApiError> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    let media_type = match essence.as_deref() {
        Some("application/json") => Some(MediaType::Json),
        Some("application/fhir+json") => Some(MediaType::FhirJson),
        _ => None,
    };
    match media_type {
        Some(media_type) if accepted.contains(&media_type.essence()) => Ok(media_type),
        _ => Err(ApiError::UnsupportedMediaType { accepted }),
    }
}

impl MediaType {
    fn essence(self) -> &'static str {
        match self {
            MediaType::Json => "application/json",
            MediaType::FhirJson => "application/fhir+json",
        }
    }
}

/// Reads the whole body, failing as soon as more than `max_bytes` arrive.
///
/// # Errors
///
/// [`ApiError::PayloadTooLarge`] past the limit, [`ApiError::Unexpected`]
/// when the connection fails mid-body.
pub async fn read_limited(body: Body, max_bytes: usize) -> Result<Bytes, ApiError> {
    match axum::body::to_bytes(body, max_bytes).await {
        Ok(bytes) => Ok(bytes),
        Err(error) => {
            let inner = error.into_inner();
            let is_too_large = inner.downcast_ref::<LengthLimitError>().is_some()
                || inner.source().is_some_and(|source| source.is::<LengthLimitError>());
            if is_too_large {
                Err(ApiError::PayloadTooLarge { max_bytes })
            } else {
                Err(ApiError::Unexpected(anyhow::anyhow!("failed to read request body: {inner}")))
            }
        }
    }
}

/// Checks that no array or object in `json` nests deeper than `max_depth`.
///
/// This runs before parsing, so a hostile body of a million `[` characters
/// costs one linear scan and never reaches a recursive parser. Brackets
/// inside strings do not count.
///
/// # Errors
///
/// [`ApiError::NestingTooDeep`] when the limit is passed.
pub fn check_depth(json: &[u8], max_depth: usize) -> Result<(), ApiError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(ApiError::NestingTooDeep { max_depth });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Maps a `serde_json` syntax error to the 400 reply that points at it.
pub fn invalid_json(error: &serde_json::Error) -> ApiError {
    ApiError::InvalidJson { line: error.line(), column: error.column() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn check_depth_counts_only_structure() {
        assert!(check_depth(br#"{"a":[1,[2]]}"#, 3).is_ok());
        assert!(matches!(check_depth(br#"{"a":[1,[2]]}"#, 2), Err(ApiError::NestingTooDeep { max_depth: 2 })));
        assert!(check_depth(br#"{"a":"[[[[[[\"[[[["}"#, 1).is_ok(), "brackets in strings");
        assert!(check_depth(&vec![b'['; 1_000_000], 64).is_err());
    }

    #[test]
    fn media_type_ignores_parameters() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        assert_eq!(media_type(&headers, SUBMISSION_MEDIA_TYPES).unwrap(), MediaType::Json);

        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("Application/FHIR+JSON"));
        assert_eq!(media_type(&headers, SUBMISSION_MEDIA_TYPES).unwrap(), MediaType::FhirJson);
        assert!(media_type(&headers, SEED_MEDIA_TYPES).is_err(), "seed takes plain JSON only");

        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(media_type(&headers, SUBMISSION_MEDIA_TYPES).is_err());
        assert!(media_type(&HeaderMap::new(), SUBMISSION_MEDIA_TYPES).is_err(), "missing header");
    }
}
