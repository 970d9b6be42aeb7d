/**
 * The SQLite engine: one file, no server, through Node's built-in node:sqlite.
 *
 * WAL mode lets readers run beside the one writer; every change is a
 * `BEGIN IMMEDIATE` transaction, so writers from several processes queue on
 * the file lock (busy timeout) instead of failing, and each transaction sees
 * and checks the state it changes. node:sqlite is synchronous: a transaction
 * runs start to end without yielding to the event loop, so nothing in this
 * process can interleave with it either.
 *
 * Cross-process wake-ups: every commit appends to the `-wal` file, so a
 * watcher on the database's folder hears other processes' writes within a
 * millisecond or two without polling. The file write comes a moment before
 * the commit is visible (SQLite publishes it in the shared-memory index
 * after writing), so a hint is checked against `PRAGMA data_version` (which
 * moves only when another connection commits) at once and again a few
 * milliseconds later. This process's own commits are announced directly.
 * It is a hint; workers still poll slowly.
 */
import { DatabaseSync, type StatementSync, type SQLInputValue } from 'node:sqlite';
import { watch, type FSWatcher, mkdirSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Clock } from '../../clock.ts';
import { systemClock } from '../../clock.ts';
import { ConflictError, ValidationError } from '../../errors.ts';
import { fromStatesSql, TRANSITIONS, type Job, type JobLog, type JobStatus } from '../../job.ts';
import {
  dependencyError,
  parentCancelledError,
  rowToEvent,
  type EventRow,
  sameOwner,
  LEASE_EXPIRED_ERROR,
  newJobToJob,
  rowToJob,
  rowToLog,
  type JobRow,
  type LogRow,
} from '../rows.ts';
import type {
  EventFilter,
  TokenRecord,
  UserRecord,
  UserRole,
  RateLimitRecord,
  RateSlot,
  UsageRecord,
  UsageTotals,
  ApprovalDecision,
  ApprovalFilter,
  ApprovalRecord,
  NewApproval,
  WaitingJob,
  JobEventType,
  NewEvent,
  StoredEvent,
  CancelResult,
  ClaimParams,
  CleanupParams,
  InsertedJob,
  JobFilter,
  JobState,
  Lease,
  NewJob,
  NewLog,
  Outcome,
  RescueResult,
  StatsRow,
  ThroughputRow,
  Store,
  WorkerInfo,
  WorkerRegistration,
} from '../store.ts';
import { migrations } from './migrations.ts';
import { FENCE, type SqliteAccess } from './access.ts';
import { SqliteSchedules } from './schedules.ts';
import { SqliteUsers } from './users.ts';
import { SqliteDurable } from './durable.ts';
import { SqliteLimits } from './limits.ts';
import type { FiringResult, ScheduleChanges, ScheduleFiring, ScheduleRecord } from '../store.ts';

export interface SqliteStoreOptions {
  clock?: Clock;
  /** How long a writer waits for another process's transaction. (Default: 10000 ms) */
  busyTimeoutMs?: number;
}

// The statements of the worker's hot path, built once (the statement cache is keyed by their text).
const COMPLETE_SQL = `UPDATE jobs SET status = 'completed', result = ?, error = NULL, progress = 100, finished_at = ?,
    updated_at = ?, lease_expires_at = NULL WHERE id = ? AND ${FENCE}`;
const FAIL_SQL = `UPDATE jobs SET status = 'failed', error = ?, finished_at = ?, updated_at = ?, lease_expires_at = NULL
    WHERE id = ? AND ${FENCE}`;
/** A JSON array of ids as a set, one statement for any number of them. */
const IDS = `SELECT value FROM json_each(?)`;
const DEPENDENTS_OF_SQL = `SELECT DISTINCT job_id FROM job_deps WHERE depends_on IN (${IDS})`;
const RETRY_SQL = `UPDATE jobs SET status = 'pending', error = ?, run_at = ?, worker_id = NULL, lease_expires_at = NULL,
    updated_at = ? WHERE id = ? AND ${FENCE}`;
const WAIT_SQL = `UPDATE jobs SET status = CASE WHEN EXISTS (SELECT 1 FROM jobs c WHERE c.parent_id = jobs.id
      AND c.status IN ('blocked','pending','running','waiting')) THEN 'waiting' ELSE 'pending' END,
    attempts = attempts - 1, worker_id = NULL, lease_expires_at = NULL, heartbeat_at = NULL, wait_for = NULL,
    run_at = ?, updated_at = ?
  WHERE id = ? AND ${FENCE} AND status IN (${fromStatesSql('suspend')}) RETURNING status`;
const RELEASE_SQL = `UPDATE jobs SET status = 'pending', attempts = attempts - 1, worker_id = NULL, lease_expires_at = NULL,
    started_at = NULL, heartbeat_at = NULL, updated_at = ? WHERE id = ? AND ${FENCE}`;
const HEARTBEAT_SQL = `UPDATE jobs SET heartbeat_at = ?, lease_expires_at = ? WHERE id = ? AND ${FENCE}`;
const RESUME_PARENTS_SQL = `UPDATE jobs SET status = 'pending', run_at = ?, updated_at = ?
  WHERE id IN (SELECT parent_id FROM jobs WHERE id IN (${IDS}) AND parent_id IS NOT NULL)
    AND status IN (${fromStatesSql('resume')}) AND wait_for IS NULL
    AND NOT EXISTS (SELECT 1 FROM jobs c WHERE c.parent_id = jobs.id
      AND c.status IN ('blocked','pending','running','waiting'))
  RETURNING id`;
const UNBLOCK_SQL = `UPDATE jobs SET status = 'pending', updated_at = ?
  WHERE id = ? AND status IN (${fromStatesSql('unblock')}) AND NOT EXISTS (
    SELECT 1 FROM job_deps d JOIN jobs j ON j.id = d.depends_on
    WHERE d.job_id = ? AND j.status <> 'completed')`;
const CANCEL_DEPENDENT_SQL = `UPDATE jobs SET status = 'cancelled', error = ?, finished_at = ?, updated_at = ?
  WHERE id = ? AND status IN (${fromStatesSql('dependencyLost')})`;
const SET_PROGRESS_SQL = `UPDATE jobs SET progress = ?, progress_message = ?, updated_at = ? WHERE id = ? AND ${FENCE}`;

/** After a change hint, data_version is looked at again after these delays (ms, each from the last). */
const RECHECK_MS = [1, 4, 16, 64];

/**
 * Events for jobs (a JSON array of ids), each carrying the job as it is at commit.
 * One statement for any number of jobs: an IN list of placeholders would be a
 * new prepared statement, kept in the cache, for every batch size.
 */
const JOB_EVENTS_SQL = `INSERT INTO events (type, source, target, job_id, owner, payload, created_at)
  SELECT ?, 'agentq', agent, id, owner, json_object('jobId', id, 'agent', agent, 'type', type, 'status', status,
    'attempt', attempts, 'progress', progress, 'progressMessage', progress_message, 'error', json(error),
    'parentId', parent_id), ?
  FROM jobs WHERE id IN (SELECT value FROM json_each(?))`;

/** Rows per multi-row INSERT: 24 columns × 41 rows stays under SQLite's 999-parameter floor. */
const ROWS_PER_INSERT = 41;
const insertSqlCache = new Map<number, string>();
function insertSql(rows: number): string {
  let sql = insertSqlCache.get(rows);
  if (!sql) {
    const row = `(${new Array(24).fill('?').join(', ')})`;
    sql = `INSERT INTO jobs (id, agent, type, instructions, payload, metadata, tags, owner, priority, status,
      error, max_attempts, backoff, timeout_ms, run_at, key, parent_id, depends_on, schedule_id,
      created_at, updated_at, finished_at, rate_key, budget) VALUES ${new Array(rows).fill(row).join(', ')}`;
    insertSqlCache.set(rows, sql);
  }
  return sql;
}

function insertParams(
  job: NewJob,
  status: JobStatus,
  error: string | null,
  now: number,
  finishedAt: number | null,
): SQLInputValue[] {
  return [
    job.id,
    job.agent,
    job.type,
    job.instructions,
    job.payload,
    job.metadata,
    job.tags,
    job.owner,
    job.priority,
    status,
    error,
    job.maxAttempts,
    job.backoff,
    job.timeoutMs,
    job.runAt,
    job.key,
    job.parentId,
    JSON.stringify(job.dependsOn),
    job.scheduleId,
    now,
    now,
    finishedAt,
    job.rateKey,
    job.budget,
  ];
}

export class SqliteStore implements Store {
  readonly engine = 'sqlite' as const;
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #clock: Clock;
  readonly #statements = new Map<string, StatementSync>();
  readonly #listeners = new Set<() => void>();
  #watcher: FSWatcher | undefined;
  #closed = false;
  /** `PRAGMA data_version` as last seen, and the checks that follow a hint. */
  #seenVersion = -1;
  #recheckTimer: NodeJS.Timeout | undefined;
  #recheckStep = 0;
  #ownChangePending = false;
  /** `total_changes()` when listeners last heard of this connection's own changes. */
  #totalChanges = -1;

  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.path = path === ':memory:' ? path : resolve(path);
    this.#clock = options.clock ?? systemClock;
    if (this.path !== ':memory:') mkdirSync(dirname(this.path), { recursive: true });
    this.#db = new DatabaseSync(this.path, { timeout: options.busyTimeoutMs ?? 10_000 });
    this.#db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      PRAGMA temp_store = MEMORY;
      -- 4 MB of page cache per connection: a worker's hot pages are the ready index and the rows
      -- it claims. A larger cache filled with pages of finished jobs and only added to RSS.
      PRAGMA cache_size = -4000;
      PRAGMA wal_autocheckpoint = 4000;
    `);
  }

  now(): number {
    return this.#clock.now();
  }

  #stmt(sql: string): StatementSync {
    let stmt = this.#statements.get(sql);
    if (!stmt) {
      stmt = this.#db.prepare(sql);
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }

  #all<T>(sql: string, ...params: SQLInputValue[]): T[] {
    return this.#stmt(sql).all(...params) as unknown as T[];
  }

  #get<T>(sql: string, ...params: SQLInputValue[]): T | undefined {
    return this.#stmt(sql).get(...params) as unknown as T | undefined;
  }

  #run(sql: string, ...params: SQLInputValue[]): number {
    return Number(this.#stmt(sql).run(...params).changes);
  }

  /** Runs `fn` in a write transaction: all of it or none of it, its job events included. */
  #tx<T>(fn: () => T): T {
    this.#stmt('BEGIN IMMEDIATE').run();
    try {
      const result = fn();
      this.#writeEvents();
      this.#stmt('COMMIT').run();
      this.#ownChange();
      return result;
    } catch (error) {
      this.#noted = [];
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw error;
    }
  }

  /** Job events noted in the open transaction, in order, runs of one type together. */
  #noted: Array<{ type: JobEventType; ids: string[] }> = [];

  /** Notes a job event, written (with the job as it is then) just before the transaction commits. */
  #note(type: JobEventType, ids: string | readonly string[]): void {
    const list = typeof ids === 'string' ? [ids] : ids;
    if (list.length === 0) return;
    const last = this.#noted.at(-1);
    if (last?.type === type) last.ids.push(...list);
    else this.#noted.push({ type, ids: [...list] });
  }

  #writeEvents(): void {
    if (this.#noted.length === 0) return;
    const now = this.now();
    for (const { type, ids } of this.#noted) {
      this.#run(JOB_EVENTS_SQL, type, now, JSON.stringify(ids));
    }
    this.#noted = [];
  }

  async migrate(): Promise<number> {
    return this.migrateSync();
  }

  /** The last migration applied; 0 for a database agentq has never migrated. */
  #version(): number {
    const table = this.#db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'agentq_migrations'`).get();
    if (!table) return 0;
    return (this.#db.prepare('SELECT max(version) AS v FROM agentq_migrations').get() as { v: number | null }).v ?? 0;
  }

  async schemaVersion(): Promise<{ current: number; latest: number }> {
    return { current: this.#version(), latest: migrations.at(-1)!.version };
  }

  migrateSync(): number {
    this.#db.exec(`CREATE TABLE IF NOT EXISTS agentq_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
    return this.#tx(() => {
      let version = this.#version();
      for (const m of migrations) {
        if (m.version <= version) continue;
        this.#db.exec(m.sql);
        this.#db
          .prepare('INSERT INTO agentq_migrations (version, name, applied_at) VALUES (?, ?, ?)')
          .run(m.version, m.name, Date.now());
        version = m.version;
      }
      return version;
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher?.close();
    clearTimeout(this.#recheckTimer);
    this.#listeners.clear();
    this.#statements.clear();
    this.#db.close();
  }

  // ---- jobs ---------------------------------------------------------------------------------

  async insertJobs(jobs: readonly NewJob[]): Promise<InsertedJob[]> {
    const now = this.now();
    const plain = jobs.every((j) => j.key == null && j.parentId == null && j.dependsOn.length === 0);
    // Jobs that need no look-ups go in many rows per statement: far fewer calls into SQLite.
    if (plain) return this.#tx(() => this.#insertPlain(jobs, now));
    return this.#tx(() =>
      jobs.map((job, index) => {
        try {
          return this.#insertOne(job, now);
        } catch (error) {
          if (error instanceof ValidationError) error.index = index;
          throw error;
        }
      }),
    );
  }

  #insertPlain(jobs: readonly NewJob[], now: number): InsertedJob[] {
    const out: InsertedJob[] = [];
    for (let i = 0; i < jobs.length; i += ROWS_PER_INSERT) {
      const chunk = jobs.slice(i, i + ROWS_PER_INSERT);
      const params: SQLInputValue[] = [];
      for (const job of chunk) {
        params.push(...insertParams(job, 'pending', null, now, null));
        out.push({ job: newJobToJob(job, 'pending', null, now), created: true });
      }
      this.#run(insertSql(chunk.length), ...params);
      this.#note('job.created', chunk.map((j) => j.id));
    }
    return out;
  }

  #insertOne(job: NewJob, now: number): InsertedJob {
    if (job.key != null) {
      const existing = this.#get<JobRow>('SELECT * FROM jobs WHERE key = ?', job.key);
      if (existing) return { job: rowToJob(existing, now), created: false };
    }
    if (job.parentId != null) {
      const parent = this.#get<{ owner: string | null }>('SELECT owner FROM jobs WHERE id = ?', job.parentId);
      // Another owner's job is as good as unknown: its existence is not for this owner to learn.
      if (!parent || !sameOwner(job, parent.owner)) throw new ValidationError('parentId', `no job with id ${job.parentId}`);
    }
    let status: JobStatus = 'pending';
    let error: string | null = null;
    let finishedAt: number | null = null;
    job.dependsOn.forEach((dep, i) => {
      const row = this.#get<{ status: JobStatus; owner: string | null }>('SELECT status, owner FROM jobs WHERE id = ?', dep);
      if (!row || !sameOwner(job, row.owner)) throw new ValidationError(`dependsOn.${i}`, `no job with id ${dep}`);
      if (status === 'cancelled') return;
      if (row.status === 'failed' || row.status === 'cancelled') {
        status = 'cancelled';
        error = dependencyError(dep, row.status);
        finishedAt = now;
      } else if (row.status !== 'completed') {
        status = 'blocked';
      }
    });
    this.#run(insertSql(1), ...insertParams(job, status, error, now, finishedAt));
    for (const dep of new Set(job.dependsOn)) {
      this.#run('INSERT INTO job_deps (job_id, depends_on) VALUES (?, ?)', job.id, dep);
    }
    this.#note('job.created', job.id);
    return { job: newJobToJob(job, status, error, now), created: true };
  }

  async getJob(id: string): Promise<Job | null> {
    const row = this.#get<JobRow>('SELECT * FROM jobs WHERE id = ?', id);
    return row ? rowToJob(row, this.now()) : null;
  }

  async listJobs(filter: JobFilter): Promise<Job[]> {
    const where: string[] = [];
    const params: SQLInputValue[] = [];
    const inList = (column: string, values: readonly string[] | undefined) => {
      if (!values || values.length === 0) return;
      where.push(`${column} IN (${values.map(() => '?').join(',')})`);
      params.push(...values);
    };
    inList('status', filter.status);
    inList('agent', filter.agent);
    inList('type', filter.type);
    inList('owner', filter.owner);
    if (filter.tag != null) {
      where.push('EXISTS (SELECT 1 FROM json_each(jobs.tags) WHERE json_each.value = ?)');
      params.push(filter.tag);
    }
    if (filter.parentId != null) {
      where.push('parent_id = ?');
      params.push(filter.parentId);
    }
    if (filter.scheduleId != null) {
      where.push('schedule_id = ?');
      params.push(filter.scheduleId);
    }
    if (filter.idPrefix != null) {
      where.push('id >= ? AND id < ?');
      params.push(filter.idPrefix, filter.idPrefix + '\uffff');
    }
    const desc = filter.order !== 'asc';
    if (filter.after != null) {
      where.push(desc ? 'id < ?' : 'id > ?');
      params.push(filter.after);
    }
    params.push(filter.limit);
    const sql = `SELECT * FROM jobs ${where.length ? 'WHERE ' + where.join(' AND ') : ''}
      ORDER BY id ${desc ? 'DESC' : 'ASC'} LIMIT ?`;
    const now = this.now();
    return this.#all<JobRow>(sql, ...params).map((r) => rowToJob(r, now));
  }

  async listChildren(parentId: string): Promise<Job[]> {
    const now = this.now();
    return this.#all<JobRow>('SELECT * FROM jobs WHERE parent_id = ? ORDER BY id', parentId).map((r) =>
      rowToJob(r, now),
    );
  }

  /**
   * One index-ordered scan per agent, merged: `agent IN (...)` with ORDER BY
   * priority would make SQLite sort the whole backlog on every claim.
   */
  #claimSql(agents: number, types: number): string {
    const key = `claim:${agents}:${types}`;
    let sql = this.#claimSqlCache.get(key);
    if (!sql) {
      const typeFilter = types > 0 ? ` AND type IN (${new Array(types).fill('?').join(',')})` : '';
      const arm = `SELECT * FROM (SELECT id, priority, run_at FROM jobs
          WHERE status = 'pending' AND agent = ? AND run_at <= ?${typeFilter}
          ORDER BY priority DESC, run_at, id LIMIT ?)`;
      sql = `UPDATE jobs SET status = 'running', worker_id = ?, attempts = attempts + 1, started_at = ?,
          heartbeat_at = ?, lease_expires_at = ?, updated_at = ?, progress = 0, progress_message = NULL
        WHERE id IN (SELECT id FROM (${new Array(agents).fill(arm).join(' UNION ALL ')})
          ORDER BY priority DESC, run_at, id LIMIT ?)
        RETURNING *`;
      this.#claimSqlCache.set(key, sql);
    }
    return sql;
  }
  readonly #claimSqlCache = new Map<string, string>();

  async claimJobs(p: ClaimParams): Promise<Job[]> {
    if (p.limit <= 0 || p.agents.length === 0) return [];
    const now = this.now();
    return this.#claimedJobs(this.#tx(() => this.#claim(p, now)), now);
  }

  async finishAndClaimJobs(outcomes: readonly Outcome[], p: ClaimParams): Promise<{ took: boolean[]; jobs: Job[] }> {
    const now = this.now();
    const { took, rows } = this.#tx(() => ({
      took: this.#finish(outcomes, now),
      rows: p.limit > 0 && p.agents.length > 0 ? this.#claim(p, now) : [],
    }));
    return { took, jobs: this.#claimedJobs(rows, now) };
  }

  /** Inside a transaction: pending → running for up to `limit` due jobs, under the caps. */
  #claim(p: ClaimParams, now: number): JobRow[] {
    const caps = this.#capsFor(p.agents);
    const params: SQLInputValue[] = [p.workerId, now, now, now + p.leaseMs, now];
    let any = false;
    for (const agent of p.agents) {
      const room = caps.get(agent) ?? p.limit;
      if (room > 0) any = true;
      params.push(agent, now, ...(p.types ?? []), Math.min(room, p.limit));
    }
    if (!any) return [];
    params.push(p.limit);
    const claimed = this.#all<JobRow>(this.#claimSql(p.agents.length, p.types?.length ?? 0), ...params);
    this.#note('job.started', claimed.map((r) => r.id));
    return claimed;
  }

  #claimedJobs(rows: JobRow[], now: number): Job[] {
    rows.sort((a, b) => b.priority - a.priority || a.run_at - b.run_at || (a.id < b.id ? -1 : 1));
    return rows.map((r) => rowToJob(r, now));
  }

  /** Room left under each capped agent's global concurrency limit. */
  #capsFor(agents: readonly string[]): Map<string, number> {
    const room = new Map<string, number>();
    const caps = this.#all<{ name: string; max_concurrency: number }>(
      'SELECT name, max_concurrency FROM agents WHERE max_concurrency IS NOT NULL',
    );
    for (const cap of caps) {
      if (!agents.includes(cap.name)) continue;
      const { n } = this.#get<{ n: number }>(
        `SELECT count(*) AS n FROM jobs WHERE status = 'running' AND agent = ?`,
        cap.name,
      )!;
      room.set(cap.name, Math.max(0, cap.max_concurrency - n));
    }
    return room;
  }

  async heartbeat(leases: readonly Lease[], leaseMs: number): Promise<Set<string>> {
    const held = new Set<string>();
    if (leases.length === 0) return held;
    const now = this.now();
    this.#tx(() => {
      for (const l of leases) {
        const changed = this.#run(
          HEARTBEAT_SQL,
          now,
          now + leaseMs,
          l.id,
          l.workerId,
          l.attempt,
        );
        if (changed) held.add(l.id);
      }
    });
    return held;
  }

  async finishJobs(outcomes: readonly Outcome[]): Promise<boolean[]> {
    if (outcomes.length === 0) return [];
    const now = this.now();
    return this.#tx(() => this.#finish(outcomes, now));
  }

  /** Inside a transaction: the outcomes, and what the finished jobs set off. */
  #finish(outcomes: readonly Outcome[], now: number): boolean[] {
    const completed: string[] = [];
    const failed: string[] = [];
    const took = outcomes.map((o) => this.#finishOne(o, now, completed, failed));
    // What finished jobs set off, once for the batch: most jobs have no dependents and no parent.
    if (completed.length > 0) {
      for (const { job_id } of this.#all<{ job_id: string }>(DEPENDENTS_OF_SQL, JSON.stringify(completed))) {
        this.#unblock(job_id, now);
      }
    }
    for (const id of failed) this.#cancelDependents(id, 'failed', now);
    this.#resumeParents(failed.length > 0 ? [...completed, ...failed] : completed, now);
    return took;
  }

  /** Writes one outcome; a completed or failed job's id goes to its list, for what it sets off. */
  #finishOne(o: Outcome, now: number, completed: string[], failed: string[]): boolean {
    const { id, workerId, attempt } = o.lease;
    switch (o.kind) {
      case 'complete': {
        if (this.#run(COMPLETE_SQL, o.result, now, now, id, workerId, attempt) === 0) return false;
        this.#note('job.completed', id);
        completed.push(id);
        return true;
      }
      case 'fail': {
        if (this.#run(FAIL_SQL, o.error, now, now, id, workerId, attempt) === 0) return false;
        this.#note('job.failed', id);
        failed.push(id);
        return true;
      }
      case 'retry':
        {
          const changed =
            this.#run(
            RETRY_SQL,
            o.error,
            o.runAt,
            now,
            id,
            workerId,
            attempt,
          ) > 0;
          if (changed) this.#note('job.retrying', id);
          return changed;
        }
      case 'wait': {
        // Parked until its children finish: no lease, no slot, the attempt given back.
        // With no unfinished child left it is due again at once (an event like a release's).
        const parked = this.#get<{ status: JobStatus }>(
          WAIT_SQL,
          now,
          now,
          id,
          workerId,
          attempt,
        );
        if (parked) this.#note(parked.status === 'waiting' ? 'job.waiting' : 'job.released', id);
        return parked !== undefined;
      }
      case 'release':
        // Handed back unspent: the attempt is given back, the job is due at once.
        {
          const changed =
            this.#run(
            RELEASE_SQL,
            now,
            id,
            workerId,
            attempt,
          ) > 0;
          if (changed) this.#note('job.released', id);
          return changed;
        }
    }
  }

  /** A dependent whose last dependency just completed becomes pending. */
  #unblock(jobId: string, now: number): void {
    if (this.#run(UNBLOCK_SQL, now, jobId, jobId)) this.#note('job.unblocked', jobId);
  }

  /** Dependents (transitively) of a failed or cancelled job are cancelled, naming it. */
  #cancelDependents(id: string, status: JobStatus, now: number): string[] {
    const cancelled: string[] = [];
    const queue: Array<[string, JobStatus]> = [[id, status]];
    while (queue.length > 0) {
      const [dep, depStatus] = queue.shift()!;
      const dependents = this.#all<{ job_id: string }>('SELECT job_id FROM job_deps WHERE depends_on = ?', dep);
      for (const { job_id } of dependents) {
        const changed = this.#run(
          CANCEL_DEPENDENT_SQL,
          dependencyError(dep, depStatus),
          now,
          now,
          job_id,
        );
        if (changed) {
          this.#note('job.cancelled', job_id);
          cancelled.push(job_id);
          queue.push([job_id, 'cancelled']);
        }
      }
    }
    this.#resumeParents(cancelled, now);
    return cancelled;
  }

  /** Unfinished children of these jobs, recursively, are cancelled, naming the ancestor. */
  #cancelDescendants(id: string, now: number): string[] {
    const cancelled: string[] = [];
    const parents = [id];
    while (parents.length > 0) {
      const parent = parents.shift()!;
      const children = this.#all<{ id: string }>(
        `UPDATE jobs SET status = 'cancelled', error = ?, finished_at = ?, updated_at = ?, lease_expires_at = NULL
         WHERE parent_id = ? AND status IN (${fromStatesSql('cancel')}) RETURNING id`,
        parentCancelledError(id),
        now,
        now,
        parent,
      ).map((r) => r.id);
      for (const child of children) {
        this.#note('job.cancelled', child);
        cancelled.push(child, ...this.#cancelDependents(child, 'cancelled', now));
      }
      // Finished children may have unfinished children of their own.
      parents.push(...this.#all<{ id: string }>('SELECT id FROM jobs WHERE parent_id = ?', parent).map((r) => r.id));
    }
    return cancelled;
  }

  /** A waiting parent whose last unfinished child just finished is due again. */
  #resumeParents(childIds: readonly string[], now: number): void {
    if (childIds.length === 0) return;
    const resumed = this.#all<{ id: string }>(RESUME_PARENTS_SQL, now, now, JSON.stringify(childIds));
    this.#note('job.resumed', resumed.map((r) => r.id));
  }

  async setProgress(lease: Lease, progress: number, message: string | null): Promise<boolean> {
    return this.#tx(() => {
      const changed =
        this.#run(
          SET_PROGRESS_SQL,
          progress,
          message,
          this.now(),
          lease.id,
          lease.workerId,
          lease.attempt,
        ) > 0;
      if (changed) this.#note('job.progress', lease.id);
      return changed;
    });
  }

  async jobStates(ids: readonly string[]): Promise<JobState[]> {
    if (ids.length === 0) return [];
    return this.#all<{ id: string; status: JobStatus; worker_id: string | null; attempts: number; owner: string | null }>(
      `SELECT id, status, worker_id, attempts, owner FROM jobs WHERE id IN (${ids.map(() => '?').join(',')})`,
      ...ids,
    ).map((r) => ({ id: r.id, status: r.status, workerId: r.worker_id, attempt: Number(r.attempts), owner: r.owner }));
  }

  async cancelJob(id: string, error: string, options: { descendants?: boolean } = {}): Promise<CancelResult | null> {
    const now = this.now();
    return this.#tx(() => {
      const before = this.#get<{ status: JobStatus }>('SELECT status FROM jobs WHERE id = ?', id);
      if (!before) return null;
      let cascaded: string[] = [];
      const changed = this.#run(
        `UPDATE jobs SET status = 'cancelled', error = ?, finished_at = ?, updated_at = ?, lease_expires_at = NULL
         WHERE id = ? AND status IN (${fromStatesSql('cancel')})`,
        error,
        now,
        now,
        id,
      );
      if (changed) {
        this.#note('job.cancelled', id);
        cascaded = this.#cancelDependents(id, 'cancelled', now);
        this.#resumeParents([id], now);
      }
      if (options.descendants) cascaded.push(...this.#cancelDescendants(id, now));
      const row = this.#get<JobRow>('SELECT * FROM jobs WHERE id = ?', id)!;
      return { job: rowToJob(row, now), previous: before.status, cascaded };
    });
  }

  async retryJob(id: string, extraAttempts: number): Promise<Job | null> {
    const now = this.now();
    return this.#tx(() => {
      const before = this.#get<{ status: JobStatus }>('SELECT status FROM jobs WHERE id = ?', id);
      if (!before) return null;
      if (!(TRANSITIONS.retry.from as readonly JobStatus[]).includes(before.status)) {
        throw new ConflictError(`job ${id} is ${before.status}; only failed or cancelled jobs can be retried`, {
          status: before.status,
        });
      }
      const deps = this.#all<{ id: string; status: JobStatus }>(
        'SELECT j.id, j.status FROM job_deps d JOIN jobs j ON j.id = d.depends_on WHERE d.job_id = ?',
        id,
      );
      const lost = deps.find((d) => d.status === 'failed' || d.status === 'cancelled');
      if (lost) {
        throw new ConflictError(`dependency ${lost.id} is ${lost.status}; retry it first`, { dependency: lost.id });
      }
      const status = deps.every((d) => d.status === 'completed') ? 'pending' : 'blocked';
      const row = this.#get<JobRow>(
        `UPDATE jobs SET status = ?, max_attempts = max(max_attempts, attempts + ?), run_at = ?, result = NULL,
           error = NULL, progress = 0, progress_message = NULL, worker_id = NULL, lease_expires_at = NULL,
           started_at = NULL, finished_at = NULL, heartbeat_at = NULL, wait_for = NULL, updated_at = ?
         WHERE id = ? AND status IN (${fromStatesSql('retry')}) RETURNING *`,
        status,
        extraAttempts,
        now,
        now,
        id,
      )!;
      this.#note('job.retried', id);
      return rowToJob(row, now);
    });
  }

  async rescueExpired(): Promise<RescueResult> {
    const now = this.now();
    return this.#tx(() => {
      const requeued = this.#all<{ id: string }>(
        `UPDATE jobs SET status = 'pending', error = ?, run_at = ?, worker_id = NULL, lease_expires_at = NULL,
           updated_at = ?
         WHERE status IN (${fromStatesSql('rescue')}) AND lease_expires_at < ? AND attempts < max_attempts
         RETURNING id`,
        LEASE_EXPIRED_ERROR,
        now,
        now,
        now,
      ).map((r) => r.id);
      const failed = this.#all<{ id: string }>(
        `UPDATE jobs SET status = 'failed', error = ?, finished_at = ?, updated_at = ?, lease_expires_at = NULL
         WHERE status IN (${fromStatesSql('rescue')}) AND lease_expires_at < ? AND attempts >= max_attempts
         RETURNING id`,
        LEASE_EXPIRED_ERROR,
        now,
        now,
        now,
      ).map((r) => r.id);
      this.#note('job.retrying', requeued);
      this.#note('job.failed', failed);
      for (const id of failed) this.#cancelDependents(id, 'failed', now);
      this.#resumeParents(failed, now);
      return { requeued, failed };
    });
  }

  async hungJobs(olderThanMs: number): Promise<Job[]> {
    const now = this.now();
    return this.#all<JobRow>(
      `SELECT * FROM jobs WHERE status = 'running' AND heartbeat_at < ? ORDER BY heartbeat_at`,
      now - olderThanMs,
    ).map((r) => rowToJob(r, now));
  }

  async nextRunAt(agents: readonly string[]): Promise<number | null> {
    if (agents.length === 0) return null;
    const row = this.#get<{ t: number | null }>(
      `SELECT min(run_at) AS t FROM jobs WHERE status = 'pending' AND agent IN (${agents.map(() => '?').join(',')})`,
      ...agents,
    );
    return row?.t ?? null;
  }

  // ---- logs ---------------------------------------------------------------------------------

  async appendLogs(logs: readonly NewLog[]): Promise<void> {
    if (logs.length === 0) return;
    const now = this.now();
    this.#tx(() => {
      for (const l of logs) {
        this.#run(
          'INSERT INTO job_logs (job_id, attempt, at, level, message, data) VALUES (?, ?, ?, ?, ?, ?)',
          l.jobId,
          l.attempt,
          now,
          l.level,
          l.message,
          l.data,
        );
      }
    });
  }

  async listLogs(jobId: string, after: number, limit: number): Promise<JobLog[]> {
    return this.#all<LogRow>(
      'SELECT * FROM job_logs WHERE job_id = ? AND id > ? ORDER BY id LIMIT ?',
      jobId,
      after,
      limit,
    ).map(rowToLog);
  }

  // ---- stats and retention -----------------------------------------------------------------

  async stats(owner?: string): Promise<StatsRow[]> {
    if (owner != null) {
      return this.#all<StatsRow>('SELECT status, agent, count(*) AS count FROM jobs WHERE owner = ? GROUP BY status, agent', owner);
    }
    return this.#all<StatsRow>('SELECT status, agent, count(*) AS count FROM jobs GROUP BY status, agent');
  }

  async throughput(since: number, owner?: string): Promise<ThroughputRow[]> {
    const sql = `SELECT finished_at / 60000 AS minute, status, count(*) AS count FROM jobs INDEXED BY jobs_finished
      WHERE finished_at >= ? ${owner != null ? 'AND owner = ?' : ''} GROUP BY minute, status`;
    const rows = owner != null ? this.#all<ThroughputRow>(sql, since, owner) : this.#all<ThroughputRow>(sql, since);
    return rows.map((r) => ({ minute: Number(r.minute), status: r.status, count: Number(r.count) }));
  }

  async cleanup(p: CleanupParams): Promise<string[]> {
    const finished = p.statuses.filter((s) => s === 'completed' || s === 'failed' || s === 'cancelled');
    if (finished.length === 0) return [];
    const where = `status IN (${finished.map(() => '?').join(',')}) AND finished_at < ?`;
    const params = [...finished, p.finishedBefore];
    if (p.dryRun) return this.#all<{ id: string }>(`SELECT id FROM jobs WHERE ${where} ORDER BY id`, ...params).map((r) => r.id);
    return this.#tx(() => {
      const ids = this.#all<{ id: string }>(`SELECT id FROM jobs WHERE ${where} ORDER BY id`, ...params).map((r) => r.id);
      const target = `SELECT id FROM jobs WHERE ${where}`;
      this.#run(`DELETE FROM job_logs WHERE job_id IN (${target})`, ...params);
      this.#run(`DELETE FROM job_deps WHERE job_id IN (${target})`, ...params);
      this.#run(`DELETE FROM jobs WHERE ${where}`, ...params);
      return ids;
    });
  }

  // ---- workers and agents -----------------------------------------------------------------

  async registerWorker(w: WorkerRegistration): Promise<void> {
    const now = this.now();
    this.#tx(() => {
      // Rows of workers silent for a day are history nobody reads.
      this.#run('DELETE FROM workers WHERE heartbeat_at < ?', now - 86_400_000);
      this.#run(
        `INSERT OR REPLACE INTO workers (id, name, host, pid, agents, types, concurrency, started_at, heartbeat_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        w.id,
        w.name,
        w.host,
        w.pid,
        JSON.stringify(w.agents),
        w.types ? JSON.stringify(w.types) : null,
        w.concurrency,
        now,
        now,
      );
    });
  }

  async workerHeartbeat(id: string): Promise<void> {
    this.#run('UPDATE workers SET heartbeat_at = ? WHERE id = ?', this.now(), id);
    this.#ownChange();
  }

  async removeWorker(id: string): Promise<void> {
    this.#run('DELETE FROM workers WHERE id = ?', id);
    this.#ownChange();
  }

  async listWorkers(aliveWithinMs: number): Promise<WorkerInfo[]> {
    const rows = this.#all<{
      id: string;
      name: string;
      host: string;
      pid: number;
      agents: string;
      types: string | null;
      concurrency: number;
      started_at: number;
      heartbeat_at: number;
    }>('SELECT * FROM workers WHERE heartbeat_at >= ? ORDER BY started_at', this.now() - aliveWithinMs);
    const running = new Map<string, string[]>();
    for (const r of this.#all<{ id: string; worker_id: string }>(
      `SELECT id, worker_id FROM jobs WHERE status = 'running' ORDER BY id`,
    )) {
      const list = running.get(r.worker_id) ?? [];
      list.push(r.id);
      running.set(r.worker_id, list);
    }
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      host: r.host,
      pid: Number(r.pid),
      agents: JSON.parse(r.agents) as string[],
      types: r.types == null ? null : (JSON.parse(r.types) as string[]),
      concurrency: Number(r.concurrency),
      startedAt: new Date(Number(r.started_at)).toISOString(),
      heartbeatAt: new Date(Number(r.heartbeat_at)).toISOString(),
      running: running.get(r.id) ?? [],
    }));
  }

  async setAgentConcurrency(agent: string, max: number | null): Promise<void> {
    this.#run(
      `INSERT INTO agents (name, max_concurrency, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET max_concurrency = excluded.max_concurrency, updated_at = excluded.updated_at`,
      agent,
      max,
      this.now(),
    );
    this.#ownChange();
  }

  async agentConcurrency(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of this.#all<{ name: string; max_concurrency: number }>(
      'SELECT name, max_concurrency FROM agents WHERE max_concurrency IS NOT NULL ORDER BY name',
    )) {
      out[r.name] = Number(r.max_concurrency);
    }
    return out;
  }

  // ---- schedules (their SQL is in schedules.ts) -------------------------------------------------

  /** What the parts below use of this store. */
  readonly #access: SqliteAccess = {
    all: (sql, ...params) => this.#all(sql, ...params),
    get: (sql, ...params) => this.#get(sql, ...params),
    run: (sql, ...params) => this.#run(sql, ...params),
    tx: (fn) => this.#tx(fn),
    now: () => this.now(),
    note: (type, ids) => this.#note(type, ids),
    insertJob: (job, now) => this.#insertOne(job, now),
  };

  readonly #schedules = new SqliteSchedules(this.#access);

  async getSchedule(idOrName: string): Promise<ScheduleRecord | null> {
    return this.#schedules.get(idOrName);
  }

  async listSchedules(): Promise<ScheduleRecord[]> {
    return this.#schedules.list();
  }

  async saveSchedules(changes: ScheduleChanges): Promise<void> {
    this.#schedules.save(changes);
  }

  async dueSchedules(now: number, limit: number): Promise<ScheduleRecord[]> {
    return this.#schedules.due(now, limit);
  }

  async nextScheduleRunAt(): Promise<number | null> {
    return this.#schedules.nextRunAt();
  }

  async fireSchedule(firing: ScheduleFiring): Promise<FiringResult> {
    return this.#schedules.fire(firing);
  }

  // ---- rate limits and usage (their SQL is in limits.ts) -------------------------------------

  readonly #limits = new SqliteLimits(this.#access);

  async setRateLimit(key: string, limit: { max: number; perMs: number } | null): Promise<void> {
    this.#limits.setRateLimit(key, limit);
  }

  async listRateLimits(): Promise<RateLimitRecord[]> {
    return this.#limits.list();
  }

  async takeRateSlots(requests: ReadonlyArray<readonly string[]>): Promise<RateSlot[]> {
    return this.#limits.take(requests);
  }

  async pauseRateKeys(keys: readonly string[], until: number): Promise<void> {
    this.#limits.pause(keys, until);
  }

  async deferJob(lease: Lease, runAt: number): Promise<boolean> {
    return this.#limits.defer(lease, runAt);
  }

  async addUsage(lease: Lease, usage: UsageRecord): Promise<boolean> {
    return this.#limits.addUsage(lease, usage);
  }

  async jobUsage(jobId: string, options: { tree: boolean }): Promise<UsageTotals> {
    return this.#limits.jobUsage(jobId, options.tree);
  }

  async usageBy(group: 'agent' | 'owner', owner?: string): Promise<Array<UsageTotals & { name: string | null }>> {
    return this.#limits.usageBy(group, owner);
  }

  async budgetChain(jobId: string): Promise<Array<{ jobId: string; budget: string }>> {
    return this.#limits.budgetChain(jobId);
  }

  // ---- durable steps, suspended jobs, approvals (their SQL is in durable.ts) -----------------

  readonly #durable = new SqliteDurable(this.#access);

  async getSteps(jobId: string): Promise<Map<string, string>> {
    return this.#durable.getSteps(jobId);
  }

  async saveStep(lease: Lease, name: string, value: string): Promise<boolean> {
    return this.#durable.saveStep(lease, name, value);
  }

  async suspendJob(lease: Lease, waitFor: string, approval?: NewApproval): Promise<boolean> {
    return this.#durable.suspend(lease, waitFor, approval);
  }

  async listWaits(): Promise<WaitingJob[]> {
    return this.#durable.listWaits();
  }

  async resumeWait(id: string, waitFor: string, step: { name: string; value: string }): Promise<boolean> {
    return this.#durable.resumeWait(id, waitFor, step);
  }

  async failWait(id: string, waitFor: string, error: string, approval?: ApprovalDecision): Promise<boolean> {
    return this.#durable.failWait(id, waitFor, error, approval);
  }

  async getApproval(id: string): Promise<ApprovalRecord | null> {
    return this.#durable.getApproval(id);
  }

  async listApprovals(filter: ApprovalFilter): Promise<ApprovalRecord[]> {
    return this.#durable.listApprovals(filter);
  }

  async decideApproval(
    decision: ApprovalDecision,
    then: { waitFor: string; step: { name: string; value: string } } | { waitFor: string; error: string },
  ): Promise<ApprovalRecord | null> {
    return this.#durable.decideApproval(decision, then);
  }

  // ---- users and tokens (their SQL is in users.ts) --------------------------------------------

  readonly #users = new SqliteUsers(this.#access);

  async createUser(name: string, role: UserRole): Promise<UserRecord> {
    return this.#users.create(name, role);
  }

  async getUser(name: string): Promise<UserRecord | null> {
    return this.#users.get(name);
  }

  async listUsers(): Promise<UserRecord[]> {
    return this.#users.list();
  }

  async removeUser(name: string): Promise<boolean> {
    return this.#users.remove(name);
  }

  async addToken(token: TokenRecord): Promise<boolean> {
    return this.#users.addToken(token);
  }

  async findToken(hash: string): Promise<{ tokenId: string; user: string; role: UserRole } | null> {
    return this.#users.findToken(hash);
  }

  async revokeTokens(user: string, tokenId?: string): Promise<number> {
    return this.#users.revoke(user, tokenId);
  }

  // ---- change notifications ------------------------------------------------------------------

  // ---- events -------------------------------------------------------------------------------

  async appendEvents(events: readonly NewEvent[]): Promise<StoredEvent[]> {
    if (events.length === 0) return [];
    const now = this.now();
    return this.#tx(() =>
      events.map((e) =>
        rowToEvent(
          this.#get<EventRow>(
            `INSERT INTO events (type, source, target, job_id, owner, payload, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *`,
            e.type,
            e.source,
            e.target,
            e.jobId,
            e.owner,
            e.payload,
            now,
          )!,
        ),
      ),
    );
  }

  async listEvents(f: EventFilter): Promise<StoredEvent[]> {
    const where = ['id > ?'];
    const params: SQLInputValue[] = [f.after];
    if (f.typeLike?.length) {
      where.push(`(${f.typeLike.map(() => `type LIKE ? ESCAPE '\\'`).join(' OR ')})`);
      params.push(...f.typeLike);
    }
    if (f.target != null) {
      where.push('(target IS NULL OR target = ?)');
      params.push(f.target);
    }
    if (f.owner != null) {
      where.push('(owner IS NULL OR owner = ?)');
      params.push(f.owner);
    }
    if (f.jobId != null) {
      where.push('job_id = ?');
      params.push(f.jobId);
    }
    if (f.createdFrom != null) {
      where.push('created_at >= ?');
      params.push(f.createdFrom);
    }
    if (f.createdTo != null) {
      where.push('created_at <= ?');
      params.push(f.createdTo);
    }
    params.push(f.limit);
    return this.#all<EventRow>(`SELECT * FROM events WHERE ${where.join(' AND ')} ORDER BY id LIMIT ?`, ...params).map(
      rowToEvent,
    );
  }

  async lastEventId(): Promise<number> {
    return Number(this.#get<{ id: number | null }>('SELECT max(id) AS id FROM events')?.id ?? 0);
  }

  async countEvents(after: number, upTo: number, types: readonly string[]): Promise<Array<{ type: string; target: string | null; n: number }>> {
    if (types.length === 0) return [];
    return this.#all<{ type: string; target: string | null; n: number }>(
      `SELECT type, target, count(*) AS n FROM events WHERE id > ? AND id <= ? AND type IN (${types.map(() => '?').join(',')}) GROUP BY type, target`,
      after,
      upTo,
      ...types,
    ).map((r) => ({ type: r.type, target: r.target, n: Number(r.n) }));
  }

  async deleteEvents(before: number): Promise<number> {
    return this.#tx(() => this.#run('DELETE FROM events WHERE created_at < ?', before));
  }

  onChange(listener: () => void): () => void {
    if (this.path === ':memory:') return () => {};
    this.#listeners.add(listener);
    if (!this.#watcher) {
      const names = new Set([basename(this.path), basename(this.path) + '-wal']);
      this.#seenVersion = this.#dataVersion();
      this.#watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
        if (file == null || names.has(String(file))) this.#onHint();
      });
      this.#watcher.on('error', () => {
        this.#watcher = undefined;
      });
    }
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) {
        this.#watcher?.close();
        this.#watcher = undefined;
        clearTimeout(this.#recheckTimer);
        this.#recheckTimer = undefined;
      }
    };
  }

  #notify(): void {
    for (const l of this.#listeners) l();
  }

  /**
   * After a commit of this connection: if it changed any row, listeners hear of
   * it once the current synchronous work is done. (A transaction that changed
   * nothing — a claim that found no work — must not wake them, or a worker
   * would wake itself for ever.)
   */
  #ownChange(): void {
    if (this.#listeners.size === 0 || this.#ownChangePending) return;
    const total = Number(this.#get<{ n: number }>('SELECT total_changes() AS n')!.n);
    if (total === this.#totalChanges) return;
    this.#totalChanges = total;
    this.#ownChangePending = true;
    queueMicrotask(() => {
      this.#ownChangePending = false;
      if (!this.#closed) this.#notify();
    });
  }

  /** Bumped by every commit of another connection; never by this one's. */
  #dataVersion(): number {
    try {
      return Number(this.#get<{ data_version: number }>('PRAGMA data_version')!.data_version);
    } catch {
      return NaN;
    }
  }

  /** Listeners hear of another connection's commit, once, when it is visible. */
  #checkOthers(): void {
    if (this.#closed) return;
    const version = this.#dataVersion();
    if (version === this.#seenVersion) return;
    this.#seenVersion = version;
    this.#notify();
  }

  /**
   * The database or its log was written. If that was another process's commit
   * it may not be visible yet: look now and, while no newer hint comes, a few
   * more times over the next tens of milliseconds.
   */
  #onHint(): void {
    this.#checkOthers();
    // The next look comes soon after this hint, not at the end of a longer wait for an older one.
    if (this.#recheckTimer && this.#recheckStep === 0) return;
    clearTimeout(this.#recheckTimer);
    this.#recheckStep = 0;
    this.#armRecheck();
  }

  #armRecheck(): void {
    this.#recheckTimer = setTimeout(() => {
      this.#recheckTimer = undefined;
      if (this.#closed || !this.#watcher) return;
      this.#checkOthers();
      if (++this.#recheckStep < RECHECK_MS.length) this.#armRecheck();
    }, RECHECK_MS[this.#recheckStep]);
    this.#recheckTimer.unref();
  }
}
