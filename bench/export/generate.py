"""Fills an epro SQLite database with PHQ-9 submissions of the demo trial,
for the export benchmark (bench/export/run).

Usage: generate.py DATABASE COUNT

The database must be migrated already (`epro migrate`). Rows are inserted
directly in one transaction, with the answers epro stores for a valid PHQ-9
submission: ten coded answers with Chinese option labels and a score. The
insert trigger of migration 0005 gives each row its export sequence number.
"""

import hashlib
import json
import sqlite3
import sys
import uuid

MAX_COUNT = 2_000_000

CODES = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]
ITEMS = ["/44250-9", "/44255-8", "/44259-0", "/44254-1", "/44251-7", "/44258-2", "/44252-5", "/44253-3", "/44260-8"]


def answers(index):
    chosen = {item: CODES[(index + position) % 4] for position, item in enumerate(ITEMS)}
    normalized = {
        item: {"system": "http://loinc.org", "code": code, "display": "没有 Not at all"}
        for item, code in chosen.items()
    }
    total = sum(CODES.index(code) for code in chosen.values())
    return json.dumps(chosen), json.dumps(normalized, ensure_ascii=False), json.dumps(
        [{"name": "/44261-6", "value": str(total), "sent": None}]
    )


def main(path, count):
    if not 0 < count <= MAX_COUNT:
        sys.exit(f"COUNT must be between 1 and {MAX_COUNT}, got {count}")
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode = WAL")
    rows = []
    with connection:
        for index in range(count):
            raw, normalized, scores = answers(index)
            rows.append((
                str(uuid.uuid4()),
                "demo",
                "phq9",
                "1",
                f"P-{index % 5000:04d}",
                f"2026-12-{1 + index % 28:02d}T12:15:00Z",
                28800,
                "2026-12-04T12:15:05.123Z",
                "native",
                raw,
                normalized,
                hashlib.sha256(raw.encode()).digest(),
                None,
                scores,
                "accepted",
            ))
            if len(rows) == 10_000:
                insert(connection, rows)
                rows.clear()
        insert(connection, rows)
    connection.close()


def insert(connection, rows):
    connection.executemany(
        """INSERT INTO submissions (
               submission_id, trial_id, form_id, form_version, patient_id, completed_at,
               completed_at_offset_seconds, received_at, source, raw_answers, normalized_answers,
               content_sha256, request_id, scores, status)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        rows,
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
