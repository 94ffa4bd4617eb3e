//! [`NdjsonFileSink`]: appends one JSON message per line to a local file.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use epro_store::OutboxEvent;

use crate::sink::{PublishError, Sink, message};

/// A sink that appends each message as one line of JSON (NDJSON) to a file.
///
/// `publish` returns only after the lines are written and `fsync`ed. When a write or
/// the `fsync` fails, the file is cut back to its previous length, so a failed batch
/// leaves no partial line for the retry to append to.
pub struct NdjsonFileSink {
    path: PathBuf,
    /// The open file, shared with the blocking task that writes each batch. The mutex
    /// keeps batches from interleaving.
    file: Arc<Mutex<File>>,
}

impl std::fmt::Debug for NdjsonFileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdjsonFileSink").field("path", &self.path).finish_non_exhaustive()
    }
}

impl NdjsonFileSink {
    /// Opens `path` for appending, creating the file if it does not exist.
    ///
    /// # Errors
    ///
    /// Fails when the directory does not exist or the file cannot be opened for writing.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("failed to open outbox file {}", path.display()))?;

        // A new file's directory entry is durable only once the directory is synced.
        if !existed {
            sync_parent_directory(path)?;
        }
        drop_torn_tail(&file, path)?;

        Ok(NdjsonFileSink { path: path.to_path_buf(), file: Arc::new(Mutex::new(file)) })
    }
}

#[async_trait::async_trait]
impl Sink for NdjsonFileSink {
    fn name(&self) -> &'static str {
        "file"
    }

    /// Fails with [`PublishError::Unavailable`] on any IO error, because the file
    /// refuses no event for its content.
    async fn publish(&self, events: &[OutboxEvent]) -> Result<(), PublishError> {
        let mut lines = Vec::new();
        for event in events {
            serde_json::to_writer(&mut lines, &message(event))
                .with_context(|| format!("failed to serialize outbox event {}", event.seq))?;
            lines.push(b'\n');
        }

        let file = Arc::clone(&self.file);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
            append_durably(&mut file, &lines)
                .with_context(|| format!("failed to append to outbox file {}", path.display()))
        })
        .await
        .context("outbox file task failed")??;
        Ok(())
    }
}

/// Cuts a partial last line, which a crash in the middle of an append leaves
/// behind, so the next append starts on a line of its own. The cut line's
/// events were never marked delivered, so the relay sends them again.
fn drop_torn_tail(file: &File, path: &Path) -> anyhow::Result<()> {
    use std::io::{Read as _, Seek as _, SeekFrom};

    let length = file.metadata().with_context(|| format!("failed to read the size of {}", path.display()))?.len();
    if length == 0 {
        return Ok(());
    }
    let mut reader = File::open(path).with_context(|| format!("failed to read outbox file {}", path.display()))?;
    let mut end = length;
    let mut chunk = vec![0u8; 64 * 1024];
    let keep = loop {
        let start = end.saturating_sub(chunk.len() as u64);
        let size = (end - start) as usize;
        reader.seek(SeekFrom::Start(start))?;
        reader.read_exact(&mut chunk[..size])?;
        let is_complete = end == length && chunk[size - 1] == b'\n';
        if is_complete {
            return Ok(());
        }
        if let Some(newline) = chunk[..size].iter().rposition(|&byte| byte == b'\n') {
            break start + newline as u64 + 1;
        }
        if start == 0 {
            break 0;
        }
        end = start;
    };

    file.set_len(keep).with_context(|| format!("failed to cut the partial line of {}", path.display()))?;
    file.sync_all().with_context(|| format!("failed to sync {}", path.display()))?;
    tracing::warn!(path = %path.display(), bytes = length - keep, "Cut a partial line left by an interrupted append");
    Ok(())
}

/// Appends `bytes` and fsyncs, or cuts the file back to its length before the append.
fn append_durably(file: &mut File, bytes: &[u8]) -> anyhow::Result<()> {
    let length_before = file.metadata().context("failed to read file length")?.len();

    let written = file.write_all(bytes).and_then(|()| file.sync_data()).context("failed to write and sync");
    if written.is_err() {
        // Best effort: if the cut fails as well, the retry's line starts after a
        // partial one, and the caller still gets the original error.
        let _ = file.set_len(length_before);
    }
    written
}

#[cfg(unix)]
fn sync_parent_directory(path: &Path) -> anyhow::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory)
        .and_then(|directory| directory.sync_all())
        .with_context(|| format!("failed to sync directory {}", directory.display()))
}

/// Directories cannot be opened as files on Windows, and NTFS journals the entry.
#[cfg(not(unix))]
fn sync_parent_directory(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_cuts_partial_last_line() {
        let directory = tempfile::tempdir().expect("create temporary directory");
        let cases = [
            ("a\nb\n{\"eventId\":\"x", "a\nb\n", "torn line after whole ones"),
            ("{\"eventId\"", "", "only a torn line"),
            ("a\nb\n", "a\nb\n", "complete file untouched"),
            ("", "", "empty file untouched"),
        ];
        for (index, (before, after, case)) in cases.into_iter().enumerate() {
            let path = directory.path().join(format!("events-{index}.ndjson"));
            std::fs::write(&path, before).expect("write file");

            NdjsonFileSink::open(&path).expect("open sink");

            assert_eq!(std::fs::read_to_string(&path).expect("read file"), after, "case: {case}");
        }
    }

    #[test]
    fn open_cuts_torn_line_longer_than_chunk() {
        let directory = tempfile::tempdir().expect("create temporary directory");
        let path = directory.path().join("events.ndjson");
        let torn = "x".repeat(200 * 1024);
        std::fs::write(&path, format!("whole\n{torn}")).expect("write file");

        NdjsonFileSink::open(&path).expect("open sink");

        assert_eq!(std::fs::read_to_string(&path).expect("read file"), "whole\n");
    }

    #[test]
    fn append_durably_appends_bytes() {
        let directory = tempfile::tempdir().expect("create temporary directory");
        let path = directory.path().join("events.ndjson");
        std::fs::write(&path, "first\n").expect("write first line");
        let mut file = OpenOptions::new().append(true).open(&path).expect("open for append");

        append_durably(&mut file, b"second\n").expect("append");

        let text = std::fs::read_to_string(&path).expect("read file");
        assert_eq!(text, "first\nsecond\n");
    }

    #[test]
    fn append_durably_reports_write_failure() {
        let directory = tempfile::tempdir().expect("create temporary directory");
        let path = directory.path().join("events.ndjson");
        std::fs::write(&path, "first\n").expect("write first line");
        // A read-only handle makes the write fail for real.
        let mut file = File::open(&path).expect("open read-only");

        let result = append_durably(&mut file, b"second\n");

        assert!(result.is_err());
        let text = std::fs::read_to_string(&path).expect("read file");
        assert_eq!(text, "first\n");
    }
}
