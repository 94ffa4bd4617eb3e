-- Alerts for site staff, one row per alert the rule engine raised at intake, written
-- in the same transaction as the submission and its `alert.raised` outbox event.
-- Mirrors migrations/postgres/0006_alerts.sql.
--
-- Times are RFC 3339 UTC text with exactly six fractional digits (the store's audit
-- time format), so that text order is time order and `due_at <= ?` finds the overdue
-- alerts. No column holds answers: `rule`, `severity` and `items` are what the rule
-- engine reports, and the acknowledgement comment is site staff's own text.
--
-- Rows are never deleted. Only the acknowledgement (status, acknowledged_at,
-- acknowledged_by, acknowledge_comment) and escalated_at change, each once: an
-- acknowledgement is final, and an alert escalates at most once, and only while open.
CREATE TABLE alerts (
    -- UUID v7, so alert ids sort in creation order.
    alert_id TEXT NOT NULL PRIMARY KEY,
    submission_id TEXT NOT NULL REFERENCES submissions (submission_id),
    trial_id TEXT NOT NULL,
    form_id TEXT NOT NULL,
    form_version TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    -- Id of the alert rule in the trial file, for example phq9-item9-positive.
    rule TEXT NOT NULL CHECK (length(rule) > 0),
    -- Severity declared by the rule, for example high.
    severity TEXT NOT NULL CHECK (length(severity) > 0),
    -- linkIds and score names the rule read, a JSON array. Never their answers.
    items TEXT NOT NULL CHECK (json_valid(items) AND json_type(items) = 'array'),
    -- When the submission that raised the alert was received.
    raised_at TEXT NOT NULL,
    -- When the alert escalates unless acknowledged: raised_at plus the trial's
    -- acknowledgement deadline.
    due_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged')),
    acknowledged_at TEXT,
    -- Who acknowledged, for example operator or staff:S-017.
    acknowledged_by TEXT,
    -- What site staff did about the alert. Required with the acknowledgement: blank
    -- text (spaces, tabs, line breaks) is rejected.
    acknowledge_comment TEXT,
    escalated_at TEXT,
    CHECK (due_at > raised_at),
    CHECK (
        (status = 'open' AND acknowledged_at IS NULL AND acknowledged_by IS NULL AND acknowledge_comment IS NULL)
        OR (status = 'acknowledged' AND acknowledged_at IS NOT NULL AND length(acknowledged_by) > 0
            AND length(trim(acknowledge_comment, char(9, 10, 13, 32))) > 0)
    )
) STRICT;

-- Serve the listings by trial, with and without the status and patient filters, in
-- alert_id order.
CREATE INDEX alerts_trial ON alerts (trial_id, alert_id);
CREATE INDEX alerts_trial_status ON alerts (trial_id, status, alert_id);
CREATE INDEX alerts_trial_patient ON alerts (trial_id, patient_id, alert_id);

-- Serves the escalation's search for open alerts past their due time.
CREATE INDEX alerts_escalation_due ON alerts (due_at) WHERE status = 'open' AND escalated_at IS NULL;

CREATE TRIGGER alerts_reject_delete BEFORE DELETE ON alerts
BEGIN
    SELECT RAISE(ABORT, 'alerts are never deleted: delete rejected');
END;

-- Only the acknowledgement and escalation columns may change. The trigger fires when a
-- listed column appears in SET, even if its value stays the same.
CREATE TRIGGER alerts_reject_content_update
BEFORE UPDATE OF alert_id, submission_id, trial_id, form_id, form_version, patient_id,
    rule, severity, items, raised_at, due_at
ON alerts
BEGIN
    SELECT RAISE(ABORT, 'alerts content is immutable: update rejected');
END;

-- An acknowledgement is final: once acknowledged, the status and the acknowledgement
-- columns keep their values.
CREATE TRIGGER alerts_reject_acknowledgement_change BEFORE UPDATE ON alerts
WHEN OLD.status = 'acknowledged'
    AND (NEW.status IS NOT OLD.status
        OR NEW.acknowledged_at IS NOT OLD.acknowledged_at
        OR NEW.acknowledged_by IS NOT OLD.acknowledged_by
        OR NEW.acknowledge_comment IS NOT OLD.acknowledge_comment)
BEGIN
    SELECT RAISE(ABORT, 'alerts acknowledgement is final: update rejected');
END;

-- An alert escalates at most once, and only while it is open. The trigger fires when
-- escalated_at appears in SET, so writing the same time again is rejected too.
CREATE TRIGGER alerts_reject_escalation_change BEFORE UPDATE OF escalated_at ON alerts
WHEN OLD.escalated_at IS NOT NULL OR OLD.status <> 'open'
BEGIN
    SELECT RAISE(ABORT, 'alerts escalate once, while open: update rejected');
END;
