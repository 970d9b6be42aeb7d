/**
 * The SQLite schema, as numbered migrations. A migration never changes once
 * released; a change is a new number. Times are integer milliseconds since the
 * epoch; JSON is stored as text.
 */
import { usersMigrationSql } from './users.ts';
import { durableMigrationSql } from './durable.ts';
import { limitsMigrationSql } from './limits.ts';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const migrations: Migration[] = [
  {
    version: 1,
    name: 'jobs, dependencies, logs, workers, agents',
    sql: `
CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  agent TEXT NOT NULL,
  type TEXT NOT NULL,
  instructions TEXT NOT NULL,
  payload TEXT NOT NULL,
  metadata TEXT NOT NULL,
  tags TEXT NOT NULL,
  owner TEXT,
  priority INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('blocked','pending','running','waiting','completed','failed','cancelled')),
  progress REAL NOT NULL DEFAULT 0,
  progress_message TEXT,
  result TEXT,
  error TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
  backoff TEXT NOT NULL,
  timeout_ms INTEGER,
  run_at INTEGER NOT NULL,
  key TEXT,
  parent_id TEXT,
  depends_on TEXT NOT NULL,
  schedule_id TEXT,
  worker_id TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  heartbeat_at INTEGER,
  lease_expires_at INTEGER
);
-- Claims read only this partial index: its size is the backlog, not the history.
CREATE INDEX jobs_ready ON jobs (agent, priority DESC, run_at, id) WHERE status = 'pending';
CREATE INDEX jobs_running ON jobs (agent) WHERE status = 'running';
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE status = 'running';
CREATE UNIQUE INDEX jobs_key ON jobs (key) WHERE key IS NOT NULL;
CREATE INDEX jobs_status ON jobs (status, id);
CREATE INDEX jobs_owner ON jobs (owner, id) WHERE owner IS NOT NULL;
CREATE INDEX jobs_parent ON jobs (parent_id, id) WHERE parent_id IS NOT NULL;
CREATE INDEX jobs_schedule ON jobs (schedule_id, id) WHERE schedule_id IS NOT NULL;
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE job_deps (
  job_id TEXT NOT NULL,
  depends_on TEXT NOT NULL,
  PRIMARY KEY (job_id, depends_on)
) WITHOUT ROWID;
CREATE INDEX job_deps_reverse ON job_deps (depends_on, job_id);

CREATE TABLE job_logs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  at INTEGER NOT NULL,
  level TEXT NOT NULL,
  message TEXT NOT NULL,
  data TEXT
);
CREATE INDEX job_logs_job ON job_logs (job_id, id);

CREATE TABLE workers (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  agents TEXT NOT NULL,
  types TEXT,
  concurrency INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL
);

CREATE TABLE agents (
  name TEXT PRIMARY KEY,
  max_concurrency INTEGER CHECK (max_concurrency IS NULL OR max_concurrency >= 0),
  updated_at INTEGER NOT NULL
);
`,
  },
  {
    version: 2,
    name: 'schedules',
    sql: `
CREATE TABLE schedules (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  description TEXT,
  cron TEXT,
  interval_ms INTEGER CHECK (interval_ms IS NULL OR interval_ms > 0),
  timezone TEXT NOT NULL,
  job TEXT NOT NULL,
  enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
  overlap TEXT NOT NULL CHECK (overlap IN ('allow','skip')),
  next_run_at INTEGER,
  last_run_at INTEGER,
  last_job_id TEXT,
  revision INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  CHECK ((cron IS NULL) <> (interval_ms IS NULL))
);
-- The scheduler's one question: which enabled schedules are due.
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE enabled = 1 AND next_run_at IS NOT NULL;
`,
  },
  {
    version: 3,
    name: 'events',
    sql: `
-- Every job change and every published event, in commit order: readers resume after the last id they saw.
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  type TEXT NOT NULL,
  source TEXT NOT NULL,
  target TEXT,
  job_id TEXT,
  owner TEXT,
  payload TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX events_created ON events (created_at);
`,
  },
  {
    version: 4,
    name: 'users',
    sql: usersMigrationSql,
  },
  {
    version: 5,
    name: 'durable steps and approvals',
    sql: durableMigrationSql,
  },
  {
    version: 6,
    name: 'rate limits, usage and budgets',
    sql: limitsMigrationSql,
  },
];
