-- Alerts for site staff, one row per alert the rule engine raised at intake, written
-- in the same transaction as the submission and its `alert.raised` outbox event.
-- Mirrors migrations/sqlite/0006_alerts.sql.
--
-- No column holds answers: `rule`, `severity` and `items` are what the rule engine
-- reports, and the acknowledgement comment is site staff's own text.
--
-- Rows are never deleted. Only the acknowledgement (status, acknowledged_at,
-- acknowledged_by, acknowledge_comment) and escalated_at change, each once: an
-- acknowledgement is final, and an alert escalates at most once, and only while open.
-- With several instances escalating at once, the last trigger makes a second
-- escalation of the same alert fail instead of writing a second event, even if the
-- store's own checks missed it.
CREATE TABLE alerts (
    -- UUID v7 text. The "C" collation sorts it byte by byte, which is creation order,
    -- whatever the database's locale.
    alert_id text COLLATE "C" NOT NULL PRIMARY KEY,
    submission_id text NOT NULL REFERENCES submissions (submission_id),
    trial_id text NOT NULL,
    form_id text NOT NULL,
    form_version text NOT NULL,
    patient_id text NOT NULL,
    -- Id of the alert rule in the trial file, for example phq9-item9-positive.
    rule text NOT NULL CHECK (length(rule) > 0),
    -- Severity declared by the rule, for example high.
    severity text NOT NULL CHECK (length(severity) > 0),
    -- linkIds and score names the rule read, a JSON array. Never their answers.
    items jsonb NOT NULL CONSTRAINT alerts_items_array CHECK (jsonb_typeof(items) = 'array'),
    -- When the submission that raised the alert was received.
    raised_at timestamptz NOT NULL,
    -- When the alert escalates unless acknowledged: raised_at plus the trial's
    -- acknowledgement deadline.
    due_at timestamptz NOT NULL,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged')),
    acknowledged_at timestamptz,
    -- Who acknowledged, for example operator or staff:S-017.
    acknowledged_by text,
    -- What site staff did about the alert. Required with the acknowledgement: blank
    -- text (spaces, tabs, line breaks) is rejected.
    acknowledge_comment text,
    escalated_at timestamptz,
    CONSTRAINT alerts_due_after_raised CHECK (due_at > raised_at),
    CONSTRAINT alerts_acknowledgement_complete CHECK (
        (status = 'open' AND acknowledged_at IS NULL AND acknowledged_by IS NULL AND acknowledge_comment IS NULL)
        OR (status = 'acknowledged' AND acknowledged_at IS NOT NULL AND length(acknowledged_by) > 0
            AND length(btrim(acknowledge_comment, E' \t\n\r')) > 0)
    )
);

-- Serve the listings by trial, with and without the status and patient filters, in
-- alert_id order.
CREATE INDEX alerts_trial ON alerts (trial_id, alert_id);
CREATE INDEX alerts_trial_status ON alerts (trial_id, status, alert_id);
CREATE INDEX alerts_trial_patient ON alerts (trial_id, patient_id, alert_id);

-- Serves the escalation's search for open alerts past their due time.
CREATE INDEX alerts_escalation_due ON alerts (due_at) WHERE status = 'open' AND escalated_at IS NULL;

CREATE TRIGGER alerts_reject_delete BEFORE DELETE ON alerts
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('alerts are never deleted: delete rejected');

CREATE TRIGGER alerts_reject_truncate BEFORE TRUNCATE ON alerts
FOR EACH STATEMENT EXECUTE FUNCTION epro_reject_change('alerts are never deleted: truncate rejected');

-- Only the acknowledgement and escalation columns may change. The trigger fires when a
-- listed column appears in SET, even if its value stays the same.
CREATE TRIGGER alerts_reject_content_update
BEFORE UPDATE OF alert_id, submission_id, trial_id, form_id, form_version, patient_id,
    rule, severity, items, raised_at, due_at
ON alerts
FOR EACH ROW EXECUTE FUNCTION epro_reject_change('alerts content is immutable: update rejected');

-- An acknowledgement is final: once acknowledged, the status and the acknowledgement
-- columns keep their values.
CREATE TRIGGER alerts_reject_acknowledgement_change BEFORE UPDATE ON alerts
FOR EACH ROW
WHEN (OLD.status = 'acknowledged'
    AND (NEW.status IS DISTINCT FROM OLD.status
        OR NEW.acknowledged_at IS DISTINCT FROM OLD.acknowledged_at
        OR NEW.acknowledged_by IS DISTINCT FROM OLD.acknowledged_by
        OR NEW.acknowledge_comment IS DISTINCT FROM OLD.acknowledge_comment))
EXECUTE FUNCTION epro_reject_change('alerts acknowledgement is final: update rejected');

-- An alert escalates at most once, and only while it is open. The trigger fires when
-- escalated_at appears in SET, so writing the same time again is rejected too.
CREATE TRIGGER alerts_reject_escalation_change BEFORE UPDATE OF escalated_at ON alerts
FOR EACH ROW
WHEN (OLD.escalated_at IS NOT NULL OR OLD.status <> 'open')
EXECUTE FUNCTION epro_reject_change('alerts escalate once, while open: update rejected');
