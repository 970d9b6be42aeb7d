/**
 * The PostgreSQL schema, as numbered migrations. A migration never changes
 * once released; a change is a new number. Every name is qualified by the
 * schema agentq lives in (`s` below), so it can share a database with an
 * application's own tables.
 *
 * The columns mirror the SQLite engine's: times are integer milliseconds since
 * the epoch (bigint), JSON is stored as text exactly as it was encoded, so both
 * engines read back the same bytes. Ids sort bytewise (COLLATE "C"), as ULIDs
 * and keyset pages expect, whatever the database's locale.
 *
 * One column has no SQLite twin: `has_dependents`, set on a job when another
 * job comes to depend on it. Setting it takes the row lock that the job's own
 * completion also needs, so a dependent inserted while its dependency finishes
 * is either seen by that finish or sees the finished status itself.
 */
import { writesMigrationSql, writtenEventIdsMigrationSql } from './access.ts';
import { eventsMigrationSql, heldIdsMigrationSql, marksMigrationSql, writtenEventsMigrationSql } from './events.ts';
import { schedulesMigrationSql } from './schedules.ts';
import { usersMigrationSql } from './users.ts';
import { durableMigrationSql } from './durable.ts';
import { limitsMigrationSql, usageWritesMigrationSql } from './limits.ts';

export interface Migration {
  version: number;
  name: string;
  sql: (s: string) => string;
}

export const migrations: Migration[] = [
  {
    version: 1,
    name: 'jobs, dependencies, logs, workers, agents',
    sql: (s) => `
CREATE TABLE ${s}.jobs (
  id text COLLATE "C" PRIMARY KEY,
  agent text NOT NULL,
  type text NOT NULL,
  instructions text NOT NULL,
  payload text NOT NULL,
  metadata text NOT NULL,
  tags text NOT NULL,
  owner text,
  priority integer NOT NULL,
  status text NOT NULL CHECK (status IN ('blocked','pending','running','waiting','completed','failed','cancelled')),
  progress double precision NOT NULL DEFAULT 0,
  progress_message text,
  result text,
  error text,
  attempts integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL CHECK (max_attempts >= 1),
  backoff text NOT NULL,
  timeout_ms bigint,
  run_at bigint NOT NULL,
  key text,
  parent_id text COLLATE "C",
  depends_on text NOT NULL,
  schedule_id text,
  worker_id text,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  started_at bigint,
  finished_at bigint,
  heartbeat_at bigint,
  lease_expires_at bigint,
  has_dependents boolean NOT NULL DEFAULT false
);
-- Claims read only this partial index: its size is the backlog, not the history.
CREATE INDEX jobs_ready ON ${s}.jobs (agent, priority DESC, run_at, id) WHERE status = 'pending';
-- Running jobs, for caps (per agent) and for expired leases (a scan of the running set, which
-- is small). The lease itself is not indexed, so a heartbeat changes no indexed column and can
-- be a HOT update.
CREATE INDEX jobs_running ON ${s}.jobs (agent) WHERE status = 'running';
CREATE UNIQUE INDEX jobs_key ON ${s}.jobs (key) WHERE key IS NOT NULL;
CREATE INDEX jobs_status ON ${s}.jobs (status, id);
CREATE INDEX jobs_owner ON ${s}.jobs (owner, id) WHERE owner IS NOT NULL;
CREATE INDEX jobs_parent ON ${s}.jobs (parent_id, id) WHERE parent_id IS NOT NULL;
CREATE INDEX jobs_schedule ON ${s}.jobs (schedule_id, id) WHERE schedule_id IS NOT NULL;
CREATE INDEX jobs_finished ON ${s}.jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE ${s}.job_deps (
  job_id text COLLATE "C" NOT NULL,
  depends_on text COLLATE "C" NOT NULL,
  PRIMARY KEY (job_id, depends_on)
);
CREATE INDEX job_deps_reverse ON ${s}.job_deps (depends_on, job_id);

CREATE TABLE ${s}.job_logs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_id text COLLATE "C" NOT NULL,
  attempt integer NOT NULL,
  at bigint NOT NULL,
  level text NOT NULL,
  message text NOT NULL,
  data text
);
CREATE INDEX job_logs_job ON ${s}.job_logs (job_id, id);

CREATE TABLE ${s}.workers (
  id text PRIMARY KEY,
  name text NOT NULL,
  host text NOT NULL,
  pid integer NOT NULL,
  agents text NOT NULL,
  types text,
  concurrency integer NOT NULL,
  started_at bigint NOT NULL,
  heartbeat_at bigint NOT NULL
);

CREATE TABLE ${s}.agents (
  name text PRIMARY KEY,
  max_concurrency integer CHECK (max_concurrency IS NULL OR max_concurrency >= 0),
  updated_at bigint NOT NULL
);
`,
  },
  {
    version: 2,
    name: 'schedules',
    sql: schedulesMigrationSql,
  },
  {
    version: 3,
    name: 'events',
    sql: eventsMigrationSql,
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
  {
    version: 7,
    name: 'job events written by claims and outcomes; status index for the rare statuses',
    // A claim and a completion each changed an entry of jobs_status, an index over every job.
    // Pending and running jobs have their own partial indexes, and finished jobs are listed in id
    // order, so only the statuses that stay rare need one.
    sql: (s) => `
DROP INDEX ${s}.jobs_status;
CREATE INDEX jobs_rare_status ON ${s}.jobs (status, id) WHERE status IN ('blocked','waiting','failed','cancelled');
${writtenEventsMigrationSql(s)}
`,
  },
  {
    version: 8,
    name: 'usage records written once',
    sql: usageWritesMigrationSql,
  },
  {
    version: 9,
    name: 'events found through their ids: marks of settled ids instead of the time and transaction indexes',
    sql: marksMigrationSql,
  },
  {
    version: 10,
    name: 'logs and published events written once when tried again',
    sql: writesMigrationSql,
  },
  {
    version: 11,
    name: 'event ids held by the transactions that take them',
    sql: heldIdsMigrationSql,
  },
  {
    version: 12,
    name: 'published events one statement each: their ids kept with the append',
    sql: writtenEventIdsMigrationSql,
  },
];
