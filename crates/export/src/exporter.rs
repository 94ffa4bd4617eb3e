//! The page loop of an export: fix the high-water mark, then turn one page of
//! rows at a time into one chunk of output.

use epro_store::{ExportCursor, ExportPage, ExportRow, RowKey, Store, StoreError};

use crate::csv::{self, BOM};
use crate::layout::Layout;
use crate::options::{Format, Options};
use crate::{fhir, ndjson};

/// Rows read per page, and so the maximum number of rows an export keeps in memory.
pub const PAGE_SIZE: usize = 500;

/// Bytes of output for one page, with the number of rows (submission
/// versions) in it.
#[derive(Debug)]
pub struct Chunk {
    pub bytes: Vec<u8>,
    pub rows: usize,
}

/// Failure of an export part way.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading a page failed. Output already written is incomplete, and the
    /// next cursor must not be kept.
    #[error("failed to read a page of the export")]
    Store(#[source] StoreError),
}

/// One export in progress. Create it with [`Exporter::start`], then call
/// [`next_chunk`](Exporter::next_chunk) until it returns `None`.
#[derive(Debug)]
pub struct Exporter {
    store: Store,
    layout: Layout,
    options: Options,
    until: ExportCursor,
    next_cursor: ExportCursor,
    after: Option<RowKey>,
    /// The header (and byte-order mark) still has to be written.
    header_pending: bool,
    done: bool,
    page_size: usize,
}

impl Exporter {
    /// Fixes the export's high-water mark. The cursor for the next export,
    /// [`next_cursor`](Exporter::next_cursor), is known from here on, so a
    /// server can send it before the body.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, and
    /// [`StoreError::Internal`] on another database error.
    pub async fn start(store: Store, layout: Layout, options: Options) -> Result<Exporter, StoreError> {
        let until = store.export_mark().await?;
        let next_cursor = ExportCursor::after_export(options.since.as_ref(), until.clone());
        Ok(Exporter {
            store,
            layout,
            options,
            until,
            next_cursor,
            after: None,
            header_pending: true,
            done: false,
            page_size: PAGE_SIZE,
        })
    }

    /// Sets the number of rows per page, for tests of the paging. At least 1.
    pub fn with_page_size(mut self, page_size: usize) -> Exporter {
        self.page_size = page_size.max(1);
        self
    }

    /// Returns true when the export's `since` lies beyond the database's
    /// current position, so the export would skip submissions without a word;
    /// see [`ExportCursor::is_beyond`].
    pub fn since_is_beyond_database(&self) -> bool {
        self.options.since.as_ref().is_some_and(|since| since.is_beyond(&self.until))
    }

    /// Returns the cursor to pass as `since` to the next export. Keep it only
    /// after the whole output was read: an export that stopped part way must
    /// be repeated from its own `since`.
    pub fn next_cursor(&self) -> &ExportCursor {
        &self.next_cursor
    }

    /// Reads the next page and returns its output, or `None` after the last.
    /// The first chunk of a CSV export starts with the header row, and it
    /// comes even when there are no rows.
    ///
    /// # Errors
    ///
    /// [`ExportError::Store`] when a page cannot be read. The export cannot
    /// go on.
    pub async fn next_chunk(&mut self) -> Result<Option<Chunk>, ExportError> {
        if self.done {
            return Ok(None);
        }
        let page = ExportPage {
            trial_id: &self.layout.trial_id,
            form_id: &self.layout.form_id,
            since: self.options.since.as_ref(),
            until: &self.until,
            after: self.after,
            limit: self.page_size,
        };
        let rows = self.store.export_page(&page).await.map_err(ExportError::Store)?;
        if rows.len() < self.page_size {
            self.done = true;
        }
        if let Some(last) = rows.last() {
            self.after = Some(last.key);
        }

        let mut bytes = Vec::new();
        if self.header_pending {
            self.header_pending = false;
            if self.options.format == Format::Csv {
                if self.options.bom {
                    bytes.extend_from_slice(BOM);
                }
                // Writing to memory cannot fail.
                let _ = csv::write_rows(&mut bytes, [csv::header(&self.layout, &self.options)]);
            }
        }
        if rows.is_empty() && bytes.is_empty() {
            return Ok(None);
        }
        self.render(&rows, &mut bytes);
        Ok(Some(Chunk { bytes, rows: rows.len() }))
    }

    fn render(&self, rows: &[ExportRow], bytes: &mut Vec<u8>) {
        match self.options.format {
            Format::Csv => {
                let _ = csv::write_rows(bytes, rows.iter().map(|row| csv::record(&self.layout, row)));
            }
            Format::Ndjson | Format::Fhir => {
                for row in rows {
                    let line = match self.options.format {
                        Format::Fhir => fhir::record(&self.layout, row),
                        _ => ndjson::record(&self.layout, row),
                    };
                    // Serializing a Value to memory cannot fail.
                    let _ = serde_json::to_writer(&mut *bytes, &line);
                    bytes.push(b'\n');
                }
            }
        }
    }
}
