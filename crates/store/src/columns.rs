//! Conversions between Rust values and their column encodings: timestamps as RFC 3339
//! text in UTC, UUIDs as hyphenated lowercase text.

use anyhow::Context as _;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

/// Formats an instant as RFC 3339 in UTC with a `Z` suffix, keeping nanoseconds.
///
/// # Errors
///
/// Fails when the year lies outside 0000–9999, which RFC 3339 cannot express.
pub(crate) fn format_utc(instant: OffsetDateTime) -> anyhow::Result<String> {
    instant
        .checked_to_offset(UtcOffset::UTC)
        .with_context(|| format!("timestamp {instant} is out of range in UTC"))?
        .format(&Rfc3339)
        .with_context(|| format!("failed to format {instant} as RFC 3339"))
}

/// Formats an instant as RFC 3339 with its own UTC offset, for event payloads.
///
/// RFC 3339 offsets have no seconds, so an offset such as +05:30:15 is written as UTC.
///
/// # Errors
///
/// Fails when the year lies outside 0000–9999.
pub(crate) fn format_with_offset(instant: OffsetDateTime) -> anyhow::Result<String> {
    if instant.offset().seconds_past_minute() != 0 {
        return format_utc(instant);
    }
    instant.format(&Rfc3339).with_context(|| format!("failed to format {instant} as RFC 3339"))
}

/// Parses RFC 3339 text read from a column.
///
/// # Errors
///
/// Fails on text that is not RFC 3339, which means the row was not written by this crate.
pub(crate) fn parse_timestamp(text: &str) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).with_context(|| format!("invalid RFC 3339 timestamp {text:?} in database"))
}

/// Rebuilds a local time from its UTC instant and the original offset in seconds.
///
/// # Errors
///
/// Fails when the offset is outside ±24 hours or the timestamp is not RFC 3339.
pub(crate) fn parse_with_offset(utc: &str, offset_seconds: i32) -> anyhow::Result<OffsetDateTime> {
    let offset = UtcOffset::from_whole_seconds(offset_seconds)
        .with_context(|| format!("invalid UTC offset of {offset_seconds} s in database"))?;
    parse_timestamp(utc)?
        .checked_to_offset(offset)
        .with_context(|| format!("timestamp {utc} is out of range at offset {offset}"))
}

/// Parses a UUID read from a column.
///
/// # Errors
///
/// Fails on text that is not a UUID.
pub(crate) fn parse_uuid(text: &str) -> anyhow::Result<Uuid> {
    Uuid::parse_str(text).with_context(|| format!("invalid UUID {text:?} in database"))
}

/// Converts an instant to whole milliseconds since the Unix epoch, for columns that
/// SQL compares with the current time.
pub(crate) fn unix_millis(instant: OffsetDateTime) -> i64 {
    // i64 milliseconds cover ±292 million years, far beyond `OffsetDateTime`'s range.
    (instant.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Converts milliseconds since the Unix epoch read from a column back to an instant.
///
/// # Errors
///
/// Fails on a value outside the range of `OffsetDateTime`.
pub(crate) fn from_unix_millis(millis: i64) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .with_context(|| format!("invalid Unix time of {millis} ms in database"))
}

/// Moves an instant read from a `timestamptz` column to the original offset, given in
/// seconds east of UTC.
///
/// # Errors
///
/// Fails when the offset is outside ±24 hours or the instant is out of range there.
pub(crate) fn with_offset_seconds(instant: OffsetDateTime, offset_seconds: i32) -> anyhow::Result<OffsetDateTime> {
    let offset = UtcOffset::from_whole_seconds(offset_seconds)
        .with_context(|| format!("invalid UTC offset of {offset_seconds} s in database"))?;
    instant.checked_to_offset(offset).with_context(|| format!("timestamp {instant} is out of range at offset {offset}"))
}

/// Drops the digits below the microsecond, which PostgreSQL's `timestamptz` does not
/// keep, so that a value the store returns equals the value it stored.
pub(crate) fn truncate_to_micros(instant: OffsetDateTime) -> OffsetDateTime {
    let nanosecond = instant.nanosecond();
    // A nanosecond value rounded down stays within 0..1_000_000_000, so replacing it
    // cannot fail.
    instant.replace_nanosecond(nanosecond - nanosecond % 1_000).unwrap_or(instant)
}
