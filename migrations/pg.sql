--
-- Minion's PostgreSQL schema in Mojo::Pg::Migrations format, shared with Perl's Minion::Backend::Pg.
-- A database migrated from this file must be indistinguishable from one Perl migrated: same type,
-- tables, column order, defaults, checks, index names, functions, trigger and NOTIFY channel.
-- Versions 1-17 and 21 are absent on purpose, as in Minion since 10.0: 18 creates the whole
-- schema, so a database older than 18 cannot be upgraded from here.
--
-- Every version has a down section, and each undoes exactly its up section, so that
-- `minion-daemon migrate --to N` leaves the catalog of a database migrated fresh to N (the way
-- back for a Perl fleet that must run on an older schema). Perl's own file has only 18 down
-- ("downgrades ... do not have to work with old versions of Minion"): the down sections added
-- here are ours alone (Perl never reads this file), while every up section still makes exactly
-- the schema of Perl's.
--
-- 18 up
CREATE TYPE minion_state AS ENUM ('inactive', 'active', 'failed', 'finished');

CREATE TABLE IF NOT EXISTS minion_jobs (
  id       BIGSERIAL NOT NULL,
  args     JSONB NOT NULL,
  attempts INT NOT NULL DEFAULT 1,
  created  TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
  delayed  TIMESTAMP WITH TIME ZONE NOT NULL,
  finished TIMESTAMP WITH TIME ZONE,
  notes    JSONB NOT NULL DEFAULT '{}',
  parents  BIGINT[] NOT NULL DEFAULT '{}',
  priority INT NOT NULL,
  queue    TEXT NOT NULL DEFAULT 'default',
  result   JSONB,
  retried  TIMESTAMP WITH TIME ZONE,
  retries  INT NOT NULL DEFAULT 0,
  started  TIMESTAMP WITH TIME ZONE,
  state    minion_state NOT NULL DEFAULT 'inactive'::minion_state,
  task     TEXT NOT NULL,
  worker   BIGINT,
  CONSTRAINT minion_jobs_pkey PRIMARY KEY (id),
  CONSTRAINT minion_jobs_args_check CHECK (JSONB_TYPEOF(args) = 'array'),
  CONSTRAINT minion_jobs_notes_check CHECK (JSONB_TYPEOF(notes) = 'object')
);
CREATE INDEX minion_jobs_state_priority_id_idx ON minion_jobs (state, priority DESC, id);
CREATE INDEX minion_jobs_parents_idx ON minion_jobs USING GIN (parents);

CREATE TABLE IF NOT EXISTS minion_workers (
  id       BIGSERIAL NOT NULL,
  host     TEXT NOT NULL,
  inbox    JSONB NOT NULL DEFAULT '[]',
  notified TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
  pid      INT NOT NULL,
  started  TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
  status   JSONB NOT NULL DEFAULT '{}',
  CONSTRAINT minion_workers_pkey PRIMARY KEY (id),
  CONSTRAINT minion_workers_inbox_check CHECK (JSONB_TYPEOF(inbox) = 'array'),
  CONSTRAINT minion_workers_status_check CHECK (JSONB_TYPEOF(status) = 'object')
);

CREATE UNLOGGED TABLE IF NOT EXISTS minion_locks (
  id      BIGSERIAL NOT NULL,
  name    TEXT NOT NULL,
  expires TIMESTAMP WITH TIME ZONE NOT NULL,
  CONSTRAINT minion_locks_pkey PRIMARY KEY (id)
);
CREATE INDEX minion_locks_name_expires_idx ON minion_locks (name, expires);

-- Workers LISTEN on "minion.job" (a quoted name: it holds a dot). Only jobs runnable now wake
-- them; delayed jobs and backoff retries are found by the next poll instead.
CREATE OR REPLACE FUNCTION minion_jobs_notify_workers() RETURNS TRIGGER AS $$
  BEGIN
    IF NEW.delayed <= NOW() THEN
      NOTIFY "minion.job";
    END IF;
    RETURN NULL;
  END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER minion_jobs_notify_workers_trigger
  AFTER INSERT OR UPDATE OF retries ON minion_jobs
  FOR EACH ROW EXECUTE PROCEDURE minion_jobs_notify_workers();

-- minion_lock(name, seconds, limit): Perl calls this function by name, so its signature and
-- meaning are part of the shared contract. The table lock serialises every caller until commit;
-- expired rows of every name are collected on the way; a duration <= 0 only checks.
CREATE OR REPLACE FUNCTION minion_lock(TEXT, INT, INT) RETURNS BOOL AS $$
  DECLARE
    until TIMESTAMP WITH TIME ZONE := NOW() + INTERVAL '1 second' * $2;
  BEGIN
    LOCK TABLE minion_locks IN EXCLUSIVE MODE;
    DELETE FROM minion_locks WHERE expires < NOW();
    IF (SELECT COUNT(*) FROM minion_locks WHERE name = $1) >= $3 THEN
      RETURN FALSE;
    END IF;
    IF until > NOW() THEN
      INSERT INTO minion_locks (name, expires) VALUES ($1, until);
    END IF;
    RETURN TRUE;
  END;
$$ LANGUAGE plpgsql;

-- 18 down
DROP TABLE IF EXISTS minion_jobs;
DROP TABLE IF EXISTS minion_workers;
DROP TABLE IF EXISTS minion_locks;
DROP TYPE IF EXISTS minion_state;
DROP FUNCTION IF EXISTS minion_jobs_notify_workers();
DROP FUNCTION IF EXISTS minion_lock(TEXT, INT, INT);

-- 19 up
CREATE INDEX minion_jobs_notes_idx ON minion_jobs USING GIN (notes);

-- 19 down
DROP INDEX IF EXISTS minion_jobs_notes_idx;

-- 20 up
ALTER TABLE minion_workers SET UNLOGGED;

-- 20 down
ALTER TABLE minion_workers SET LOGGED;

-- 22 up
-- 21 (job sequences) was withdrawn upstream; databases that ran it still carry its columns.
ALTER TABLE minion_jobs DROP COLUMN IF EXISTS sequence;
ALTER TABLE minion_jobs DROP COLUMN IF EXISTS next;
ALTER TABLE minion_jobs ADD COLUMN expires TIMESTAMP WITH TIME ZONE;
CREATE INDEX minion_jobs_expires_idx ON minion_jobs (expires);

-- 22 down
-- The columns of 21 stay gone: a database migrated fresh to 20 never had them either.
DROP INDEX IF EXISTS minion_jobs_expires_idx;
ALTER TABLE minion_jobs DROP COLUMN IF EXISTS expires;

-- 23 up
ALTER TABLE minion_jobs ADD COLUMN lax BOOL NOT NULL DEFAULT FALSE;

-- 23 down
ALTER TABLE minion_jobs DROP COLUMN IF EXISTS lax;

-- 24 up
-- IF NOT EXISTS: `migrate --to 23` left this index behind before 24 had a down section, and such
-- a database must still upgrade; the schema it leaves is the same either way.
CREATE INDEX IF NOT EXISTS minion_jobs_finished_state_idx ON minion_jobs (finished, state);

-- 24 down
DROP INDEX IF EXISTS minion_jobs_finished_state_idx;

-- 25 up
CREATE TABLE IF NOT EXISTS minion_schedules (
  id       BIGSERIAL NOT NULL,
  args     JSONB NOT NULL DEFAULT '[]',
  attempts INT NOT NULL DEFAULT 1,
  created  TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
  cron     TEXT NOT NULL,
  expire   INT,
  last_job BIGINT,
  last_run TIMESTAMP WITH TIME ZONE,
  lax      BOOL NOT NULL DEFAULT FALSE,
  name     TEXT NOT NULL,
  next_run TIMESTAMP WITH TIME ZONE NOT NULL,
  notes    JSONB NOT NULL DEFAULT '{}',
  paused   BOOL NOT NULL DEFAULT FALSE,
  priority INT NOT NULL DEFAULT 0,
  queue    TEXT NOT NULL DEFAULT 'default',
  task     TEXT NOT NULL,
  CONSTRAINT minion_schedules_pkey PRIMARY KEY (id),
  CONSTRAINT minion_schedules_name_key UNIQUE (name),
  CONSTRAINT minion_schedules_args_check CHECK (JSONB_TYPEOF(args) = 'array'),
  CONSTRAINT minion_schedules_notes_check CHECK (JSONB_TYPEOF(notes) = 'object')
);
CREATE INDEX minion_schedules_next_run_idx ON minion_schedules (next_run) WHERE NOT paused;

-- 25 down
DROP TABLE IF EXISTS minion_schedules;
