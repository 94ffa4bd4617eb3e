-- The commit order of submissions, for incremental exports.
--
-- An export hands its caller a cursor and later resumes after it, so it needs an
-- order in which a row committed later never sorts before a row already exported.
-- SQLite has one writer at a time, so insertion order is commit order. The implicit
-- rowid of `submissions` is not usable as that order, because VACUUM may renumber the
-- rowids of a table without an INTEGER PRIMARY KEY, and `submissions` cannot gain a
-- column the writer fills, because its triggers reject every UPDATE. So each new
-- submission gets a row here, written by the trigger below in the same transaction.
-- AUTOINCREMENT never hands out a `seq` again, even after the highest row is gone.
--
-- trial_id and form_id are copied from the submission so that one form's rows are
-- read in `seq` order from one index. Rows are append-only, like `submissions`.
CREATE TABLE submission_sequence (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    submission_id TEXT NOT NULL UNIQUE REFERENCES submissions (submission_id),
    trial_id TEXT NOT NULL,
    form_id TEXT NOT NULL
) STRICT;

CREATE INDEX submission_sequence_form ON submission_sequence (trial_id, form_id, seq);

-- Rows stored before this migration, in the order they were inserted.
INSERT INTO submission_sequence (submission_id, trial_id, form_id)
SELECT submission_id, trial_id, form_id FROM submissions ORDER BY rowid;

-- The writer inserts with ON CONFLICT DO NOTHING, and a resubmission that inserts
-- nothing fires no AFTER INSERT trigger, so every submission gets exactly one row.
CREATE TRIGGER submissions_record_sequence AFTER INSERT ON submissions
BEGIN
    INSERT INTO submission_sequence (submission_id, trial_id, form_id)
    VALUES (NEW.submission_id, NEW.trial_id, NEW.form_id);
END;

CREATE TRIGGER submission_sequence_reject_update BEFORE UPDATE ON submission_sequence
BEGIN
    SELECT RAISE(ABORT, 'submission_sequence is append-only: update rejected');
END;

CREATE TRIGGER submission_sequence_reject_delete BEFORE DELETE ON submission_sequence
BEGIN
    SELECT RAISE(ABORT, 'submission_sequence is append-only: delete rejected');
END;
