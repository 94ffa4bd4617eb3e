-- Tables of the two PostgreSQL peers (bench/peers/go and bench/peers/flask).
-- bench/run loads this file into a fresh database per peer.
--
-- The shape follows the system epro replaces: one row per submission with
-- the answers as received, and one outbox row written in the same
-- transaction. epro keeps its own schema in SQLite (crates/store).

CREATE TABLE submissions (
    submission_id uuid PRIMARY KEY,
    trial_id text NOT NULL,
    form_id text NOT NULL,
    patient_id text NOT NULL,
    completed_at timestamptz NOT NULL,
    total_score integer NOT NULL CHECK (total_score BETWEEN 0 AND 27),
    -- formContent exactly as received.
    raw_answers jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE outbox_events (
    seq bigserial PRIMARY KEY,
    submission_id uuid NOT NULL REFERENCES submissions (submission_id),
    event_type text NOT NULL,
    -- The event without the answers.
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
