//! Language negotiation: picks Simplified Chinese or English for every
//! message a person reads, from the `Accept-Language` request header.
//!
//! Only the two languages epro ships are ever chosen. Any Chinese tag
//! (`zh`, `zh-CN`, `zh-Hans`, `zh-TW`, ...) maps to Simplified Chinese,
//! because that is the only Chinese catalogue there is and it is closer for
//! a Chinese reader than English. A header that names neither language, or
//! only `*`, falls back to the configured default.

use std::fmt;
use std::str::FromStr;

use axum::http::HeaderMap;
use axum::http::header::ACCEPT_LANGUAGE;
use serde::{Deserialize, Serialize};

/// A language that epro has a message catalogue for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Language {
    /// Simplified Chinese, BCP 47 tag `zh-CN`.
    #[serde(rename = "zh-CN")]
    ZhCn,
    /// English, BCP 47 tag `en`.
    #[serde(rename = "en")]
    En,
}

impl Language {
    /// Returns the BCP 47 tag sent back in `Content-Language`.
    pub fn tag(self) -> &'static str {
        match self {
            Language::ZhCn => "zh-CN",
            Language::En => "en",
        }
    }

    /// Chooses the language for a request from its `Accept-Language` header.
    ///
    /// The highest quality value wins; among equal values the first listed
    /// wins. Tags with `q=0` are refused, as RFC 9110 section 12.5.4 says.
    pub fn negotiate(headers: &HeaderMap, default: Language) -> Language {
        let Some(header) = headers.get(ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()) else {
            return default;
        };

        let mut best: Option<(Language, f32)> = None;
        for range in header.split(',') {
            let mut parts = range.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let quality = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);

            let Some(language) = Language::from_range(tag) else {
                continue;
            };
            let is_better = quality > 0.0 && best.is_none_or(|(_, q)| quality > q);
            if is_better {
                best = Some((language, quality));
            }
        }
        best.map_or(default, |(language, _)| language)
    }

    /// Maps one language range of the header to a catalogue, if any fits.
    fn from_range(range: &str) -> Option<Language> {
        let primary = range.split(['-', '_']).next().unwrap_or("");
        if primary.eq_ignore_ascii_case("zh") {
            Some(Language::ZhCn)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Language::En)
        } else {
            None
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

impl FromStr for Language {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Language::from_range(s.trim())
            .ok_or_else(|| format!("unsupported language {s:?}, expected \"zh-CN\" or \"en\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn negotiate(header: Option<&str>, default: Language) -> Language {
        let mut headers = HeaderMap::new();
        if let Some(value) = header {
            headers.insert(ACCEPT_LANGUAGE, HeaderValue::from_str(value).unwrap());
        }
        Language::negotiate(&headers, default)
    }

    #[test]
    fn negotiate_picks_by_quality_and_order() {
        let cases = [
            (None, Language::ZhCn, Language::ZhCn, "no header uses the default"),
            (Some("en"), Language::ZhCn, Language::En, "plain en"),
            (Some("zh-CN,zh;q=0.9,en;q=0.8"), Language::En, Language::ZhCn, "browser zh"),
            (Some("en-US,en;q=0.9,zh-CN;q=0.8"), Language::ZhCn, Language::En, "browser en"),
            (Some("fr-FR, de;q=0.9"), Language::En, Language::En, "unknown only"),
            (Some("fr-FR, de;q=0.9"), Language::ZhCn, Language::ZhCn, "unknown only, zh default"),
            (Some("zh-TW"), Language::En, Language::ZhCn, "traditional maps to simplified"),
            (Some("zh-Hans-CN"), Language::En, Language::ZhCn, "script subtag"),
            (Some("en;q=0.2, zh;q=0.7"), Language::En, Language::ZhCn, "quality beats order"),
            (Some("zh;q=0, en;q=0.1"), Language::ZhCn, Language::En, "q=0 refuses a tag"),
            (Some("*"), Language::En, Language::En, "wildcard uses the default"),
            (Some("EN-gb"), Language::ZhCn, Language::En, "case-insensitive"),
            (Some(";;,,q=,"), Language::ZhCn, Language::ZhCn, "garbage uses the default"),
        ];
        for (header, default, expected, case) in cases {
            assert_eq!(negotiate(header, default), expected, "case: {case}");
        }
    }

    #[test]
    fn language_parses_config_values() {
        assert_eq!("zh-CN".parse::<Language>().unwrap(), Language::ZhCn);
        assert_eq!("en".parse::<Language>().unwrap(), Language::En);
        assert!("fr".parse::<Language>().is_err());
    }
}
