-- Why an operator or site staff member made a change, kept on its audit row: the
-- comment of a data query's status change, the reason given for an outbox replay.
-- NULL for rows whose action needs no reason (a patient's submission) and for rows
-- written before this migration.
ALTER TABLE audit_events ADD COLUMN reason TEXT;
