-- minion-daemon's own tables, beside Minion's and never part of them. Perl's Minion neither
-- reads nor migrates them: they are recorded in mojo_migrations under the name minion_daemon,
-- and Minion's schema version (name minion) stays exactly Perl's.

-- 1 up
CREATE TABLE IF NOT EXISTS minion_daemon_paused_queues (
  queue  TEXT PRIMARY KEY,
  paused TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

-- 1 down
DROP TABLE IF EXISTS minion_daemon_paused_queues;
