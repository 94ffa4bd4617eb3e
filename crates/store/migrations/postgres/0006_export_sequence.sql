-- The commit order of submissions, for incremental exports. Mirrors
-- migrations/sqlite/0005_export_sequence.sql in purpose, but not in shape.
--
-- An export hands its caller a cursor and later resumes after it, so a row committed
-- later must never sort before a row already exported. `seq` alone does not give that
-- here: it is taken at insert, and several writers (the writer task of each epro
-- instance, and the one-row-per-transaction retry of a failed batch) commit out of
-- `seq` order. So each row also records the id of the transaction that inserted it.
-- An export reads only rows whose transaction id is below the `xmin` of a snapshot
-- taken when it starts: every transaction below `xmin` has ended, so no row can
-- appear there later, and rows are ordered by (xid, seq).
--
-- Rows stored before this migration get xid 0, below every real transaction id, and
-- keep their `seq` order. A constant default adds the column without rewriting the
-- table, so the append-only triggers of 0001 do not fire; the default for new rows is
-- set afterwards. The store never writes this column itself.
ALTER TABLE submissions ADD COLUMN xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE submissions ALTER COLUMN xid SET DEFAULT pg_current_xact_id();

-- Serves the export's pages: one form's rows in (xid, seq) order after a cursor.
CREATE INDEX submissions_export ON submissions (trial_id, form_id, xid, seq);
