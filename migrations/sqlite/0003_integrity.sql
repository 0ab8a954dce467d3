-- Integrity of the write side (see migrations/postgres/0003_integrity.sql).

CREATE TABLE unique_claims (
    key        BLOB PRIMARY KEY CHECK (length(key) = 32),
    scope      TEXT NOT NULL,
    owner      TEXT NOT NULL,
    claimed_at TEXT NOT NULL
) STRICT;

-- The head may only name the last event of the log, with its hash. The
-- append transaction inserts the events before it moves the head.
CREATE TRIGGER log_head_follows_events BEFORE UPDATE ON log_head
WHEN NEW.position < OLD.position
  OR NEW.position <> COALESCE((SELECT max(global_position) FROM events), 0)
  OR (NEW.position > 0 AND NEW.hash IS NOT (SELECT hash FROM events WHERE global_position = NEW.position))
BEGIN
    SELECT RAISE(ABORT, 'log_head must name the last event of the log');
END;

