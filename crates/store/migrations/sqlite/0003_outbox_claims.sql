-- Outbox claims and dead letters, so that several relays can share one outbox and an
-- event the sink keeps refusing stops blocking the rest.
--
-- A relay claims a batch by writing its id and a lease expiry. Another relay skips
-- events under a live lease; a lease left by a crashed relay expires and the events
-- become claimable again. `rejections` counts only the attempts the sink answered
-- with a refusal (as opposed to being unreachable); when it reaches the configured
-- limit the event is dead-lettered and waits for `epro outbox replay`.
--
-- These are delivery columns like attempts, last_error and delivered_at: the content
-- trigger of 0001 lists the content columns, so it lets them change.
ALTER TABLE outbox_events ADD COLUMN claimed_by TEXT;
-- Milliseconds since the Unix epoch, not RFC 3339 text, because the claim query
-- compares it with the current time and RFC 3339 text with varying fractions of a
-- second does not sort as time.
ALTER TABLE outbox_events ADD COLUMN claim_expires_at INTEGER;
ALTER TABLE outbox_events ADD COLUMN rejections INTEGER NOT NULL DEFAULT 0 CHECK (rejections >= 0);
ALTER TABLE outbox_events ADD COLUMN dead_lettered_at TEXT;

-- The relay's claim query reads undelivered events that are not dead letters.
DROP INDEX outbox_events_pending;
CREATE INDEX outbox_events_pending ON outbox_events (seq)
    WHERE delivered_at IS NULL AND dead_lettered_at IS NULL;

CREATE INDEX outbox_events_dead_letters ON outbox_events (seq) WHERE dead_lettered_at IS NOT NULL;
