//! Values of the export reads: the cursor that marks how far an export got, one page
//! request, one exported row, and the audit record of an export.
//!
//! An export fixes a high-water mark when it starts
//! ([`Store::export_mark`](crate::Store::export_mark)), reads the rows after the
//! caller's cursor up to that mark page by page, and hands the mark back as the cursor
//! of the next export.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

use super::{Redacted, SourceFormat, SubmissionStatus};

/// How far an export got in the commit order of submissions, as an opaque token.
///
/// A row committed after a cursor was made is never covered by it, so "the rows after
/// my last cursor" misses nothing and repeats nothing:
///
/// - On SQLite the cursor is the `seq` of the last row of `submission_sequence`.
///   Rows get their `seq` in insertion order, which is commit order because SQLite
///   has one writer at a time.
/// - On PostgreSQL it is a snapshot: its `xmax` and the transactions that were still
///   running when it was taken. It covers the rows of every transaction below `xmax`
///   that was not running, which are the rows that snapshot sees. Each row records
///   its inserting transaction's id, so a transaction that commits later, even with a
///   lower id, is not covered and its rows go to the next export.
///
/// The text form (`Display`, `FromStr`) starts with a version and names the backend,
/// so a cursor of one backend is rejected by the other. Callers must treat it as
/// opaque: store it and pass it back.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExportCursor(pub(crate) Mark);

/// The backend-specific value inside an [`ExportCursor`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Mark {
    /// Covers the rows of `submission_sequence` up to and including `seq`.
    Sqlite { seq: i64 },
    /// Covers the rows whose `xid` is below `xmax` and not in `running`, which is
    /// sorted and holds ids below `xmax` only.
    Postgres { xmax: i64, running: Vec<i64> },
}

/// The position of one exported row, for paging within one export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowKey(pub(crate) Key);

/// The backend-specific value inside a [`RowKey`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Key {
    /// `submission_sequence.seq`.
    Sqlite { seq: i64 },
    /// `(xid, seq)` of the version's row in `submissions` or `submission_versions`,
    /// compared as a pair.
    Postgres { xid: i64, seq: i64 },
}

/// Version prefix of the cursor's text form, so that a later format can tell old
/// cursors apart.
const CURSOR_VERSION: &str = "v1";

/// Most running transactions a PostgreSQL cursor may list: the server's
/// `max_connections` bounds the real number, and its default is 100.
const MAX_RUNNING: usize = 10_000;

impl ExportCursor {
    /// Returns true for a cursor of the SQLite backend.
    pub fn is_sqlite(&self) -> bool {
        matches!(self.0, Mark::Sqlite { .. })
    }

    /// Returns true when this cursor lies beyond `mark`, the database's current
    /// position: it came from another database, or from this one before it was
    /// restored from a backup. An export from it would skip every submission up
    /// to its position without a word, so callers reject it.
    pub fn is_beyond(&self, mark: &ExportCursor) -> bool {
        match (&self.0, &mark.0) {
            (Mark::Sqlite { seq }, Mark::Sqlite { seq: current }) => seq > current,
            (Mark::Postgres { xmax, .. }, Mark::Postgres { xmax: current, .. }) => xmax > current,
            _ => true,
        }
    }

    /// Returns the cursor to hand out after an export from `since` up to the mark
    /// `until`: the mark, or on SQLite `since` when it lies beyond the mark, so that a
    /// cursor never moves backwards.
    pub fn after_export(since: Option<&ExportCursor>, until: ExportCursor) -> ExportCursor {
        match (since.map(|since| &since.0), &until.0) {
            (Some(Mark::Sqlite { seq: since }), Mark::Sqlite { seq: mark }) if since > mark => {
                ExportCursor(Mark::Sqlite { seq: *since })
            }
            _ => until,
        }
    }
}

impl fmt::Display for ExportCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Mark::Sqlite { seq } => write!(f, "{CURSOR_VERSION}.s.{seq}"),
            Mark::Postgres { xmax, running } => {
                write!(f, "{CURSOR_VERSION}.p.{xmax}")?;
                for xid in running {
                    write!(f, ".{xid}")?;
                }
                Ok(())
            }
        }
    }
}

/// Why a text is not an [`ExportCursor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid export cursor")]
pub struct InvalidCursor;

impl FromStr for ExportCursor {
    type Err = InvalidCursor;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let number = |part: &str| -> Result<i64, InvalidCursor> {
            // Digits only: no sign, no spaces, no "+", so each cursor has one text form.
            if part.is_empty() || !part.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(InvalidCursor);
            }
            part.parse().map_err(|_| InvalidCursor)
        };
        let mut parts = text.split('.');
        if parts.next() != Some(CURSOR_VERSION) {
            return Err(InvalidCursor);
        }
        let mark = match parts.next() {
            Some("s") => {
                let seq = number(parts.next().ok_or(InvalidCursor)?)?;
                if parts.next().is_some() {
                    return Err(InvalidCursor);
                }
                Mark::Sqlite { seq }
            }
            Some("p") => {
                let xmax = number(parts.next().ok_or(InvalidCursor)?)?;
                let running = parts.map(number).collect::<Result<Vec<_>, _>>()?;
                let ascending = running.windows(2).all(|pair| pair[0] < pair[1]);
                let below = running.last().is_none_or(|last| *last < xmax);
                if !ascending || !below || running.len() > MAX_RUNNING {
                    return Err(InvalidCursor);
                }
                Mark::Postgres { xmax, running }
            }
            _ => return Err(InvalidCursor),
        };
        Ok(ExportCursor(mark))
    }
}

/// One page of an export, read by [`Store::export_page`](crate::Store::export_page).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportPage<'a> {
    pub trial_id: &'a str,
    pub form_id: &'a str,
    /// The caller's cursor: rows it covers are left out. `None` exports from the
    /// first row.
    pub since: Option<&'a ExportCursor>,
    /// The export's high-water mark: only rows it covers are read.
    pub until: &'a ExportCursor,
    /// The last row of the previous page, `None` for the first page.
    pub after: Option<RowKey>,
    /// Maximum number of rows returned.
    pub limit: usize,
}

/// One version of a stored submission as an export reads it: without the raw answers
/// and the content hash, and with the number of its data queries.
#[derive(Clone, PartialEq)]
pub struct ExportRow {
    /// Position of the row, to pass as [`ExportPage::after`] for the next page.
    pub key: RowKey,
    pub submission_id: String,
    /// 1 for the submission as received, a later number for each correction. Every
    /// version is its own row.
    pub version: u32,
    /// The correction reason, `None` for version 1.
    pub correction_reason: Option<String>,
    /// When the correction was stored, `None` for version 1.
    pub corrected_at: Option<OffsetDateTime>,
    pub form_version: String,
    pub patient_id: String,
    /// Completion time with the device's original UTC offset.
    pub completed_at: OffsetDateTime,
    /// Server time of receipt of version 1, in UTC.
    pub received_at: OffsetDateTime,
    pub source: SourceFormat,
    /// The answers of this version in epro's normalized JSON shape.
    pub normalized_answers: String,
    /// Scores computed on this version, a JSON array.
    pub scores: String,
    /// Status of this version.
    pub status: SubmissionStatus,
    /// Data queries on this version, from intake and from revalidation, whatever
    /// their status.
    pub query_count: u32,
}

impl fmt::Debug for ExportRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportRow")
            .field("key", &self.key)
            .field("submission_id", &self.submission_id)
            .field("version", &self.version)
            .field("correction_reason", &self.correction_reason.as_ref().map(|reason| Redacted(reason.len())))
            .field("corrected_at", &self.corrected_at)
            .field("form_version", &self.form_version)
            .field("completed_at", &self.completed_at)
            .field("received_at", &self.received_at)
            .field("source", &self.source)
            .field("normalized_answers", &Redacted(self.normalized_answers.len()))
            .field("scores", &Redacted(self.scores.len()))
            .field("status", &self.status)
            .field("query_count", &self.query_count)
            .finish_non_exhaustive()
    }
}

/// Who exported which form, recorded by
/// [`Store::record_export`](crate::Store::record_export) as one audit row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportAudit {
    /// The requester, for example `operator` or `operator:cli:alice`. Must not be
    /// empty.
    pub actor: String,
    pub trial_id: String,
    pub form_id: String,
    pub request_id: Option<String>,
}

impl ExportAudit {
    /// Returns the audit row's entity id, `TRIAL/FORM`. Neither id may contain `/`,
    /// because the catalogue accepts only letters, digits, `.`, `_` and `-` in them.
    pub(crate) fn entity_id(&self) -> String {
        format!("{}/{}", self.trial_id, self.form_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_text_round_trips() {
        let cursors = [
            ExportCursor(Mark::Sqlite { seq: 0 }),
            ExportCursor(Mark::Sqlite { seq: 1_000_000 }),
            ExportCursor(Mark::Postgres { xmax: 742, running: Vec::new() }),
            ExportCursor(Mark::Postgres { xmax: 5_000_000_000, running: vec![4_999_999_990, 4_999_999_997] }),
        ];
        for cursor in cursors {
            assert_eq!(cursor.to_string().parse::<ExportCursor>().as_ref(), Ok(&cursor), "{cursor}");
        }
    }

    #[test]
    fn cursor_rejects_other_text() {
        let texts = [
            "",
            "v1",
            "v1.s",
            "v1.s.",
            "v1.s.-1",
            "v1.s.+1",
            "v1.s. 1",
            "v1.s.1.2",
            "v2.s.1",
            "v1.p",
            "v1.p.10.x",
            "v1.p.10.5.3",
            "v1.p.10.5.5",
            "v1.p.10.10",
            "v1.x.1",
            "v1.s.99999999999999999999",
            "V1.s.1",
            "1",
        ];
        for text in texts {
            assert_eq!(text.parse::<ExportCursor>(), Err(InvalidCursor), "{text:?}");
        }
    }

    #[test]
    fn after_export_never_moves_back() {
        let early = ExportCursor(Mark::Sqlite { seq: 5 });
        let late = ExportCursor(Mark::Sqlite { seq: 9 });
        let postgres = ExportCursor(Mark::Postgres { xmax: 20, running: vec![18] });

        assert_eq!(ExportCursor::after_export(Some(&early), late.clone()), late);
        assert_eq!(ExportCursor::after_export(Some(&late), early.clone()), late);
        assert_eq!(ExportCursor::after_export(None, early.clone()), early);
        assert_eq!(ExportCursor::after_export(Some(&postgres), postgres.clone()), postgres);
    }
}
