//! `epro audit verify`: walks the audit trail's hash chain and reports the first
//! broken link.
//!
//! A chain can be cut at its end without a broken link: deleting the newest rows
//! leaves a shorter, intact chain. So the command prints the head it saw (its `seq`
//! and hash), and `--expect-head SEQ:HASH` checks that a head recorded earlier is
//! still in the chain with the same hash.

use std::path::Path;

use anyhow::Context as _;
use epro_store::{AuditFilter, AuditVerification, Store};
use serde_json::json;

use crate::cli::AuditCommand;

/// A head recorded earlier: the `seq` and hash `epro audit verify` printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedHead {
    pub seq: i64,
    pub hash: [u8; 32],
}

impl std::str::FromStr for RecordedHead {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let usage =
            || format!("{text:?} is not SEQ:HASH, for example 1042:3f5a… with the 64 hex digits printed by verify");
        let (seq, hash) = text.split_once(':').ok_or_else(usage)?;
        let seq = seq.trim().parse::<i64>().map_err(|_| usage())?;
        let bytes = hex::decode(hash.trim()).map_err(|_| usage())?;
        let hash = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| usage())?;
        Ok(RecordedHead { seq, hash })
    }
}

/// Runs one `epro audit` subcommand. Returns whether the trail passed the check.
///
/// # Errors
///
/// Fails when the configuration or the database cannot be opened or read.
pub fn run(command: AuditCommand) -> anyhow::Result<bool> {
    match command {
        AuditCommand::Verify { config, expect_head } => verify(&config, expect_head),
    }
}

fn verify(config: &Path, expect_head: Option<RecordedHead>) -> anyhow::Result<bool> {
    let mut intact = false;
    crate::outbox_cli::with_store(config, async |store| {
        intact = check(store, expect_head.as_ref()).await?;
        Ok(())
    })?;
    Ok(intact)
}

async fn check(store: &Store, expect_head: Option<&RecordedHead>) -> anyhow::Result<bool> {
    let verification = store.audit_verify().await.context("failed to read the audit trail")?;
    let (entries, head) = match verification {
        AuditVerification::Broken(broken) => {
            println!(
                "{}",
                json!({
                    "intact": false,
                    "brokenAt": broken.seq,
                    "entriesChecked": broken.entries_checked,
                    "message": broken.to_string(),
                })
            );
            eprintln!("audit chain broken: {broken}");
            return Ok(false);
        }
        AuditVerification::Intact { entries, head } => (entries, head),
    };

    if let Some(expected) = expect_head {
        let filter = AuditFilter { after_seq: expected.seq - 1, limit: 1, ..AuditFilter::default() };
        let found = store.audit_events(filter).await.context("failed to read the recorded head")?;
        let found = found.first().filter(|record| record.seq == expected.seq);
        let Some(found) = found else {
            eprintln!(
                "audit chain cut short: the recorded head {} is gone; the chain now ends at {}",
                expected.seq,
                head.map_or_else(|| "no row".to_owned(), |(seq, _)| seq.to_string())
            );
            return Ok(false);
        };
        if found.hash != Some(expected.hash) {
            eprintln!("audit chain rewritten: row {} no longer has the recorded hash", expected.seq);
            return Ok(false);
        }
    }

    let (head_seq, head_hash) = match head {
        Some((seq, hash)) => (Some(seq), Some(hex::encode(hash))),
        None => (None, None),
    };
    println!("{}", json!({ "intact": true, "entries": entries, "headSeq": head_seq, "headHash": head_hash }));
    match (head_seq, &head_hash) {
        (Some(seq), Some(hash)) => eprintln!("audit chain intact: {entries} rows; head {seq}:{hash}"),
        _ => eprintln!("audit chain intact: the trail is empty"),
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_head_parses_seq_and_hash() {
        let hash = "ab".repeat(32);

        let head: RecordedHead = format!("42:{hash}").parse().unwrap();

        assert_eq!(head, RecordedHead { seq: 42, hash: [0xab; 32] });
    }

    #[test]
    fn recorded_head_rejects_short_hash_and_missing_colon() {
        let bad_seq = format!("x:{}", "00".repeat(32));
        for text in ["42:abcd", "42", bad_seq.as_str()] {
            let error = text.parse::<RecordedHead>().unwrap_err();
            assert!(error.contains("SEQ:HASH"), "{text}: {error}");
        }
    }
}
