//! Parsing of the FHIR primitive values that answers and bounds use: `date`,
//! `dateTime`, `time` and `decimal`.
//!
//! FHIR dates may be partial (`2024`, `2024-05`), so a date stands for the
//! range of days it could mean, and range checks use that range. The
//! grammar follows the regular expressions of the FHIR R4 datatypes page.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use rust_decimal::Decimal;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// A FHIR `date`: a year, a year and month, or a full calendar date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirDate {
    text: String,
    first_day: Date,
    last_day: Date,
}

/// A FHIR `dateTime`: a partial or full date, or a date and time with
/// seconds and a UTC offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirDateTime {
    text: String,
    earliest: OffsetDateTime,
    latest: OffsetDateTime,
}

/// A FHIR `time` of day: `hh:mm:ss` with an optional fraction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirTime {
    text: String,
    value: Time,
}

/// Reason a string is not a valid FHIR `dateTime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateTimeError {
    /// The text does not follow the `dateTime` grammar or names an
    /// impossible date or time.
    Format,
    /// The text has a time of day but no UTC offset, so the moment is
    /// ambiguous.
    MissingOffset,
}

static DATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?$").expect("date regex is valid"));

static DATE_TIME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^([0-9]{4})-([0-9]{2})-([0-9]{2})",
        r"T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?",
        r"(Z|[+-][0-9]{2}:[0-9]{2})?$",
    ))
    .expect("dateTime regex is valid")
});

static TIME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?$").expect("time regex is valid"));

impl FhirDate {
    /// Parses a FHIR date (`YYYY`, `YYYY-MM` or `YYYY-MM-DD`).
    ///
    /// Returns `None` when the text does not follow the grammar, the year is
    /// 0000, or the month or day does not exist.
    pub fn parse(text: &str) -> Option<FhirDate> {
        let captures = DATE.captures(text)?;
        let year = parse_field(captures.get(1))?;
        let month = match captures.get(2) {
            Some(field) => Some(parse_field(Some(field))?),
            None => None,
        };
        let day = match captures.get(3) {
            Some(field) => Some(parse_field(Some(field))?),
            None => None,
        };
        let (first_day, last_day) = day_range(year, month, day)?;
        Some(FhirDate { text: text.to_owned(), first_day, last_day })
    }

    /// Returns the first day the date could mean (January 1 for a year).
    pub fn first_day(&self) -> Date {
        self.first_day
    }

    /// Returns the last day the date could mean (December 31 for a year).
    pub fn last_day(&self) -> Date {
        self.last_day
    }

    /// Returns the date as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FhirDateTime {
    /// Parses a FHIR dateTime. Date-only forms are read as UTC days.
    ///
    /// # Errors
    ///
    /// Returns [`DateTimeError::MissingOffset`] for a date and time without
    /// `Z` or `+hh:mm`, and [`DateTimeError::Format`] for anything else that
    /// is not a valid dateTime, including a time without seconds.
    pub fn parse(text: &str) -> Result<FhirDateTime, DateTimeError> {
        if let Some(date) = FhirDate::parse(text) {
            return Ok(FhirDateTime::from_date(&date));
        }

        let captures = DATE_TIME.captures(text).ok_or(DateTimeError::Format)?;
        let field = |index: usize| parse_field(captures.get(index)).ok_or(DateTimeError::Format);
        let date = calendar_date(field(1)?, field(2)?, field(3)?).ok_or(DateTimeError::Format)?;
        let fraction = captures.get(7).map(|fraction| fraction.as_str());
        let time = time_of_day(field(4)?, field(5)?, field(6)?, fraction).ok_or(DateTimeError::Format)?;
        let offset_text = captures.get(8).ok_or(DateTimeError::MissingOffset)?.as_str();
        let offset = parse_offset(offset_text).ok_or(DateTimeError::Format)?;

        let moment = PrimitiveDateTime::new(date, time).assume_offset(offset);
        Ok(FhirDateTime { text: text.to_owned(), earliest: moment, latest: moment })
    }

    /// Converts a date into the range of UTC moments it covers.
    pub fn from_date(date: &FhirDate) -> FhirDateTime {
        let earliest = PrimitiveDateTime::new(date.first_day, Time::MIDNIGHT).assume_utc();
        let end_of_day = Time::from_hms_nano(23, 59, 59, 999_999_999).unwrap_or(Time::MIDNIGHT);
        let latest = PrimitiveDateTime::new(date.last_day, end_of_day).assume_utc();
        FhirDateTime { text: date.text.clone(), earliest, latest }
    }

    /// Returns the earliest moment the value could mean.
    pub fn earliest(&self) -> OffsetDateTime {
        self.earliest
    }

    /// Returns the latest moment the value could mean. Equals `earliest`
    /// when the value has a time of day.
    pub fn latest(&self) -> OffsetDateTime {
        self.latest
    }

    /// Returns the value as written, offset included.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FhirTime {
    /// Parses a FHIR time (`hh:mm:ss` with an optional fraction).
    ///
    /// Returns `None` when the text does not follow the grammar or names an
    /// impossible time.
    pub fn parse(text: &str) -> Option<FhirTime> {
        let captures = TIME.captures(text)?;
        let value = time_of_day(
            parse_field(captures.get(1))?,
            parse_field(captures.get(2))?,
            parse_field(captures.get(3))?,
            captures.get(4).map(|fraction| fraction.as_str()),
        )?;
        Some(FhirTime { text: text.to_owned(), value })
    }

    /// Returns the time of day.
    pub fn value(&self) -> Time {
        self.value
    }

    /// Returns the time as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for FhirDate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text)
    }
}

impl fmt::Display for FhirDateTime {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text)
    }
}

impl fmt::Display for FhirTime {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text)
    }
}

/// Parses a JSON number into a decimal from its textual form, so that the
/// digits after the point are the ones the number was written with.
///
/// Returns `None` when the value does not fit a `Decimal` (about ±7.9e28, 28
/// digits after the point).
///
/// NOTE: without serde_json's `arbitrary_precision` feature, numbers arrive
/// as `f64`, so `72.50` reads as `72.5` and integers above 2^53 lose digits.
pub fn decimal_from_json(number: &serde_json::Number) -> Option<Decimal> {
    decimal_from_text(&number.to_string())
}

/// Parses decimal text, with or without an exponent.
pub fn decimal_from_text(text: &str) -> Option<Decimal> {
    let has_exponent = text.contains(['e', 'E']);
    if has_exponent { Decimal::from_scientific(text).ok() } else { Decimal::from_str_exact(text).ok() }
}

/// Returns true when `text` reads as a number, which is how a number sent
/// as a JSON string is recognized.
pub fn looks_like_number(text: &str) -> bool {
    let trimmed = text.trim();
    let digits_only = trimmed.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'));
    let has_digit = trimmed.chars().any(|c| c.is_ascii_digit());
    digits_only && has_digit && trimmed.parse::<f64>().is_ok()
}

/// Returns true when `text` is a number written with a decimal comma, such
/// as `72,5`.
pub fn has_decimal_comma(text: &str) -> bool {
    let trimmed = text.trim();
    match trimmed.split_once(',') {
        Some((whole, fraction)) => {
            let whole = whole.strip_prefix(['-', '+']).unwrap_or(whole);
            let all_digits = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit());
            all_digits(whole) && all_digits(fraction)
        }
        None => false,
    }
}

fn parse_field(field: Option<regex::Match<'_>>) -> Option<u32> {
    field?.as_str().parse().ok()
}

fn day_range(year: u32, month: Option<u32>, day: Option<u32>) -> Option<(Date, Date)> {
    match (month, day) {
        (None, _) => Some((calendar_date(year, 1, 1)?, calendar_date(year, 12, 31)?)),
        (Some(month), None) => {
            let first = calendar_date(year, month, 1)?;
            let days = time::util::days_in_month(first.month(), first.year());
            Some((first, calendar_date(year, month, u32::from(days))?))
        }
        (Some(month), Some(day)) => {
            let date = calendar_date(year, month, day)?;
            Some((date, date))
        }
    }
}

fn calendar_date(year: u32, month: u32, day: u32) -> Option<Date> {
    if year == 0 {
        return None;
    }
    let year = i32::try_from(year).ok()?;
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    let day = u8::try_from(day).ok()?;
    Date::from_calendar_date(year, month, day).ok()
}

/// Builds a time of day. FHIR allows second 60 for a leap second, which is
/// read as second 59 because `time` has no leap seconds.
fn time_of_day(hour: u32, minute: u32, second: u32, fraction: Option<&str>) -> Option<Time> {
    let second = if second == 60 { 59 } else { second };
    let nanosecond = match fraction {
        Some(fraction) => {
            let digits: String = fraction.trim_start_matches('.').chars().take(9).collect();
            format!("{digits:0<9}").parse::<u32>().ok()?
        }
        None => 0,
    };
    let hour = u8::try_from(hour).ok()?;
    let minute = u8::try_from(minute).ok()?;
    let second = u8::try_from(second).ok()?;
    Time::from_hms_nano(hour, minute, second, nanosecond).ok()
}

/// Parses `Z` or `±hh:mm`, with hours up to 14 as FHIR allows.
fn parse_offset(text: &str) -> Option<UtcOffset> {
    if text == "Z" {
        return Some(UtcOffset::UTC);
    }
    let sign = text.get(..1)?;
    let (hours, minutes) = text.get(1..)?.split_once(':')?;
    let hours: i8 = hours.parse().ok()?;
    let minutes: i8 = minutes.parse().ok()?;
    let too_far = hours > 14 || minutes > 59 || (hours == 14 && minutes > 0);
    if too_far {
        return None;
    }
    let (hours, minutes) = if sign == "-" { (-hours, -minutes) } else { (hours, minutes) };
    UtcOffset::from_hms(hours, minutes, 0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_extremes_return_none() {
        for text in ["1e400", "-1e400", "1e-400", "1e29", "79228162514264337593543950336", "1e99999999999", "e", ""] {
            assert_eq!(decimal_from_text(text), None, "{text}");
        }
    }

    #[test]
    fn decimal_text_keeps_written_scale() {
        let scale = |text: &str| decimal_from_text(text).map(|decimal| decimal.scale());
        assert_eq!(scale("72.50"), Some(2));
        assert_eq!(scale("1e-7"), Some(7));
        assert_eq!(scale("1.5e2"), Some(0));
        assert_eq!(scale("-0"), Some(0));
    }

    #[test]
    fn date_range_of_partial_dates() {
        let month = FhirDate::parse("2024-02").expect("valid month");
        assert_eq!(month.first_day().to_string(), "2024-02-01");
        assert_eq!(month.last_day().to_string(), "2024-02-29");
        let year = FhirDate::parse("2023").expect("valid year");
        assert_eq!(year.last_day().to_string(), "2023-12-31");
    }

    #[test]
    fn date_time_offsets_limited_to_fourteen_hours() {
        assert!(FhirDateTime::parse("2024-01-01T00:00:00+14:00").is_ok());
        assert_eq!(FhirDateTime::parse("2024-01-01T00:00:00+14:30"), Err(DateTimeError::Format));
        assert_eq!(FhirDateTime::parse("2024-01-01T00:00:00-13:60"), Err(DateTimeError::Format));
    }

    #[test]
    fn date_time_leap_second_accepted() {
        let moment = FhirDateTime::parse("2016-12-31T23:59:60Z").expect("leap second is valid FHIR");
        assert_eq!(moment.as_str(), "2016-12-31T23:59:60Z");
    }

    #[test]
    fn numeric_string_detection() {
        for text in ["5", " 5 ", "-1.5", "1e3", "+2"] {
            assert!(looks_like_number(text), "{text}");
        }
        for text in ["five", "", "-", "1.2.3", "NaN", "inf", "72,5"] {
            assert!(!looks_like_number(text), "{text}");
        }
        assert!(has_decimal_comma("72,5"));
        assert!(has_decimal_comma("-0,25"));
        assert!(!has_decimal_comma("1,000,000"));
        assert!(!has_decimal_comma(",5"));
    }
}
