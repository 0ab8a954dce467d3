-- Withdrawing an appointment's reminders (`WHERE subject_id = $1 AND status =
-- 'pending'`) takes one index for both conditions. With only `(subject_id)`,
-- Postgres without statistics on the table (autovacuum off, a table filled by
-- a rebuild) combined it with `reminders_due (status, due_at)` and read every
-- pending reminder's index entry on each withdrawal: 1.2 ms instead of 0.07 ms
-- with 37,000 pending reminders, and a notifications rebuild over a filled
-- table twice as long (docs/adr/0014-rebuild.md).
DROP INDEX reminders_subject;
CREATE INDEX reminders_subject ON reminders (subject_id, status);
