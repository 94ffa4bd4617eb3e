//! Reading a request body safely. The content type is checked before a byte
//! is read. The size limit counts the bytes actually streamed, not only
//! `Content-Length`, which a chunked body does not have. JSON nesting is
//! bounded before any parser recurses into it.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body_util::LengthLimitError;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::{ApiError, Detail, EnvelopeProblem, FieldError};

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
/// A gzip-compressed body arrives here already decompressed by the router's
/// decompression layer, so the limit counts decompressed bytes and a small
/// body that inflates enormously is stopped at `max_bytes`.
///
/// # Errors
///
/// [`ApiError::PayloadTooLarge`] past the limit,
/// [`ApiError::InvalidCompressedBody`] when gzip data is corrupt or cut
/// short, [`ApiError::IncompleteBody`] when the connection ends or fails
/// mid-body.
pub async fn read_limited(body: Body, max_bytes: usize) -> Result<Bytes, ApiError> {
    match axum::body::to_bytes(body, max_bytes).await {
        Ok(bytes) => Ok(bytes),
        Err(error) => {
            let inner = error.into_inner();
            let is_too_large = inner.downcast_ref::<LengthLimitError>().is_some()
                || inner.source().is_some_and(|source| source.is::<LengthLimitError>());
            if is_too_large {
                Err(ApiError::PayloadTooLarge { max_bytes })
            } else if is_in_chain::<DecompressionError>(inner.as_ref()) {
                Err(ApiError::InvalidCompressedBody)
            } else {
                tracing::debug!(error.message = %inner, "Request body ended early");
                Err(ApiError::IncompleteBody)
            }
        }
    }
}

/// An error while reading a body that arrived gzip-compressed: corrupt or
/// truncated gzip data, bytes after the gzip stream, or the connection
/// failing mid-body. The client caused each of them, so none is a 500.
#[derive(Debug)]
pub struct DecompressionError(axum::BoxError);

impl fmt::Display for DecompressionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to decompress request body: {}", self.0)
    }
}

impl std::error::Error for DecompressionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

/// Wraps every error of a decompressed body in [`DecompressionError`], so
/// that [`read_limited`] can tell it from other failures. The gzip decoder
/// reports its errors with no common type (an `io::Error` of any kind, or
/// plain text for trailing bytes).
pub fn mark_decompression_errors(body: Body) -> Body {
    Body::new(http_body_util::BodyExt::map_err(body, |error| DecompressionError(error.into_inner())))
}

/// Returns whether an error of type `E` is `error` or one of its sources.
fn is_in_chain<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<E>() {
            return true;
        }
        current = error.source();
    }
    false
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

/// Checks what `serde_json` would otherwise let through silently: a key
/// repeated in one object (the parser keeps the last value) and numbers
/// beyond the range of a 64-bit float (the parser refuses them only when a
/// value is finally built). `base` is the JSON Pointer of `json` inside the
/// request body.
///
/// # Errors
///
/// 400 with a field error for a duplicate key or an out-of-range number,
/// `invalid_json` for a syntax error.
pub fn check_keys_and_numbers(json: &[u8], base: &str) -> Result<(), ApiError> {
    let tracker = Tracker { current: RefCell::new(base.to_owned()), duplicate: RefCell::new(None) };
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let seed = StrictValue { pointer: base.to_owned(), tracker: &tracker };
    let parsed = seed.deserialize(&mut deserializer).and_then(|()| deserializer.end());

    let field_error = |pointer: String, problem: EnvelopeProblem| {
        let item = pointer.rsplit('/').next().unwrap_or("").replace("~1", "/").replace("~0", "~");
        ApiError::InvalidEnvelope(vec![FieldError { item, path: pointer, detail: Detail::Envelope(problem) }])
    };
    if let Some(pointer) = tracker.duplicate.into_inner() {
        return Err(field_error(pointer, EnvelopeProblem::DuplicateKey));
    }
    match parsed {
        Ok(()) => Ok(()),
        Err(error) if error.to_string().starts_with("number out of range") => {
            Err(field_error(tracker.current.into_inner(), EnvelopeProblem::NumberOutOfRange))
        }
        Err(error) => Err(invalid_json(&error)),
    }
}

/// Where the walk is, and the first duplicate key it met.
struct Tracker {
    /// JSON Pointer of the value being read, so a parse error can be placed.
    current: RefCell<String>,
    duplicate: RefCell<Option<String>>,
}

/// Walks any JSON value without building it, recording the first duplicate
/// key with its JSON Pointer.
struct StrictValue<'a> {
    pointer: String,
    tracker: &'a Tracker,
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        loop {
            let pointer = format!("{}/{index}", self.pointer);
            self.tracker.current.replace(pointer.clone());
            let element = StrictValue { pointer, tracker: self.tracker };
            if sequence.next_element_seed(element)?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let pointer = format!("{}/{}", self.pointer, key.replace('~', "~0").replace('/', "~1"));
            if !seen.insert(key) {
                self.tracker.duplicate.replace(Some(pointer));
                return Err(serde::de::Error::custom("duplicate key"));
            }
            self.tracker.current.replace(pointer.clone());
            map.next_value_seed(StrictValue { pointer, tracker: self.tracker })?;
        }
        Ok(())
    }
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
    fn check_keys_finds_duplicate_with_pointer() {
        let error = check_keys_and_numbers(br#"{"answers":{"a/b":1,"q":[{"x":1,"x":2}]}}"#, "").unwrap_err();
        let ApiError::InvalidEnvelope(errors) = error else { panic!("expected a field error") };
        assert_eq!(errors[0].path, "/answers/q/0/x");
        assert_eq!(errors[0].item, "x");
        assert_eq!(errors[0].code(), "duplicate_key");
        assert!(check_keys_and_numbers(br#"{"a":{"x":1},"b":{"x":1}}"#, "").is_ok(), "same key in two objects");
    }

    #[test]
    fn check_keys_rejects_huge_numbers() {
        let error = check_keys_and_numbers(br#"{"answers":{"temp":1e400}}"#, "").unwrap_err();
        let ApiError::InvalidEnvelope(errors) = error else { panic!("expected a field error") };
        assert_eq!(errors[0].code(), "number_out_of_range");
        assert_eq!(errors[0].path, "/answers/temp");
        assert!(check_keys_and_numbers(br#"{"a":1.7e308,"b":-9223372036854775808}"#, "").is_ok());
        assert!(matches!(check_keys_and_numbers(b"{\"a\":", ""), Err(ApiError::InvalidJson { .. })));
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
