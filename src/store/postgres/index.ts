/**
 * The PostgreSQL engine: one database shared by any number of workers, API
 * servers and CLIs on any number of machines.
 *
 * - Every change that reads before it writes is one transaction; each UPDATE
 *   checks the state it expects (TRANSITIONS in job.ts) and fences running
 *   jobs by worker id and attempt, exactly as the SQLite engine does.
 * - Claims pick due jobs with `FOR UPDATE SKIP LOCKED` in a materialized CTE
 *   (evaluated once, so a claim never hands out more than it was asked for).
 *   Agents with a global concurrency cap are claimed under a lock on their
 *   `agents` row: claimers of a capped agent take turns, and each counts the
 *   running jobs in a snapshot taken after the previous one committed.
 * - Time is the database's: `now()` is this host's clock corrected by its
 *   measured offset to the server's clock (refreshed every minute), so leases
 *   and run-at mean the same on every host however their clocks drift. A test
 *   that injects a Clock gets exactly that clock.
 * - Wake-ups travel by LISTEN/NOTIFY on a channel named after the schema (see
 *   listener.ts). New work, cancels and hand-backs notify in the transaction
 *   that made them; completions, progress and logs notify at most every
 *   20 ms per process, after they committed, and listeners hear those at most
 *   every 100 ms, so busy workers do not wake each other for each batch.
 * - Lost connections (a server restart) are retried for a while with backoff;
 *   the pool opens new connections by itself.
 */
import { firstWriteSql, newWriteId, oldWritesBefore, type PostgresAccess, type Queryable } from './access.ts';
import { PostgresEvents, writtenJobEventsSql } from './events.ts';
import { PostgresUsers } from './users.ts';
import { PostgresDurable } from './durable.ts';
import { PostgresLimits } from './limits.ts';
import pg from 'pg';
import type { Clock } from '../../clock.ts';
import { ConflictError, ValidationError } from '../../errors.ts';
import { fromStatesSql, TRANSITIONS, type Job, type JobLog, type JobStatus } from '../../job.ts';
import {
  dependencyError,
  parentCancelledError,
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
  NewEvent,
  StoredEvent,
  CancelResult,
  ClaimParams,
  CleanupParams,
  FiringResult,
  InsertedJob,
  JobFilter,
  JobState,
  Lease,
  NewJob,
  NewLog,
  Outcome,
  RescueResult,
  ScheduleChanges,
  ScheduleFiring,
  ScheduleRecord,
  ScheduleStore,
  StatsRow,
  ThroughputRow,
  Store,
  WorkerInfo,
  WorkerRegistration,
} from '../store.ts';
import { ChangeListener } from './listener.ts';
import { migrations } from './migrations.ts';
import { PostgresSchedules } from './schedules.ts';

export interface PostgresStoreOptions {
  /** Overrides the database's clock entirely (tests move a ManualClock). */
  clock?: Clock;
  /** Where this host reads its own time before correcting it to the server's. (Default: Date.now) */
  hostClock?: () => number;
  /** The schema agentq's tables live in. (Default: `?schema=` of the URL, then `agentq`) */
  schema?: string;
  /** A pool of the application's own; agentq uses it and leaves closing it to its owner. */
  pool?: pg.Pool;
  /** Connections in the pool agentq opens itself. (Default: 10) */
  max?: number;
  /** How long an operation is retried while the server cannot be reached. (Default: 15000 ms) */
  retryForMs?: number;
}

const DEFAULT_SCHEMA = 'agentq';
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
/** How often the offset to the server's clock is measured again. */
const CLOCK_SYNC_MS = 60_000;
/** Completions and progress notify at most this often per store. */
const SOON_NOTIFY_MS = 20;
/**
 * The payload of notifications about activity (completions, progress, logs,
 * claims), as opposed to new work, cancels and cap changes (empty payload):
 * listeners hear activity coalesced, at most every ACTIVITY_COALESCE_MS.
 */
const ACTIVITY = 'activity';
const ACTIVITY_COALESCE_MS = 100;
/** A cached list of capped agents is trusted this long; see claimJobs. */
const CAPS_CACHE_MS = 1000;

/**
 * A CTE that lets the statement's transaction commit without waiting for its
 * WAL to reach disk. Used only where losing the change in a server crash is
 * harmless: a claim that vanishes leaves its job pending (it runs again, as
 * delivery is at-least-once anyway), a lost heartbeat is renewed by the next.
 * WAL is written in order, so any later durable commit makes these durable too.
 * Reference it (`EXISTS (SELECT 1 FROM async)`) so it runs.
 */
const ASYNC_COMMIT = `async AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true))`;

/**
 * The status test of the claim's update, which finds its jobs by id
 * (`j.id = ANY` the picked ids: joined to them instead, a claim of a few
 * hundred was planned as a scan of the table once statistics said it was
 * small), written so that the planner neither scans a status index by it nor
 * trusts a stale estimate of it.
 */
function byIdWhereStatus(statuses: string): string {
  return `(j.status IN (${statuses})) IS TRUE`;
}

/**
 * The WHERE of a statement that updates the jobs of a batch of leases, the
 * arrays `ids` (a parameter) and `v` (those arrays unnested): each job is
 * found by id, and `tests` (its status, its lease) are one clause that reads
 * both sides, so the planner counts on every id finding its row.
 *
 * Written as separate filters on `j`, a stale estimate — say, no running
 * jobs, from statistics gathered before a burst of claims — let it judge the
 * jobs side to be one row: it then scanned the table, or compared every row
 * of the batch with every other (hundreds of milliseconds for a batch of a
 * few hundred). Such a statement holds back what every other statement may
 * clean up while it runs, so the whole queue slowed down with it. Here the
 * jobs side is the ids (`= ANY`, through the primary key), and the join is
 * by hash, merge or id lookup: linear in the batch whatever the estimates.
 * Rows are still locked in the order of `ids`, as `byLease` sorts them.
 */
function leasesWhere(ids: string, tests: string): string {
  return `j.id = v.id AND j.id = ANY(${ids}::text[]) AND (${tests}) IS TRUE`;
}

const LEASE_HELD = `j.worker_id = v.worker_id AND j.attempts = v.attempt`;

/** What each kind of outcome sets on its job. */
const FINISH_SET: Record<Outcome['kind'], string> = {
  complete: `status = 'completed', result = v.value, error = NULL, progress = 100, finished_at = $1, updated_at = $1,
    lease_expires_at = NULL`,
  fail: `status = 'failed', error = v.value, finished_at = $1, updated_at = $1, lease_expires_at = NULL`,
  retry: `status = 'pending', error = v.value, run_at = v.run_at, worker_id = NULL, lease_expires_at = NULL,
    updated_at = $1`,
  // Handed back unspent: the attempt is given back, the job is due at once.
  release: `status = 'pending', attempts = j.attempts - 1, worker_id = NULL, lease_expires_at = NULL,
    started_at = NULL, heartbeat_at = NULL, updated_at = $1`,
  // Parked until its children finish (see #suspend), the attempt given back.
  wait: `status = 'waiting', attempts = j.attempts - 1, worker_id = NULL, lease_expires_at = NULL,
    heartbeat_at = NULL, wait_for = NULL, run_at = $1, updated_at = $1`,
};
const FINISH_TRANSITION = {
  complete: 'complete',
  fail: 'fail',
  retry: 'retryLater',
  release: 'release',
  wait: 'suspend',
} as const;

/** The outcomes written in one statement when nothing else hangs on their job, with their events. */
type QuickKind = 'complete' | 'fail' | 'retry';
const QUICK_EVENTS: Record<QuickKind, string> = { complete: 'job.completed', fail: 'job.failed', retry: 'job.retrying' };

/**
 * In job id order: statements that update a batch of running jobs (outcomes,
 * heartbeats) lock their rows in the order of their arrays, and two of them
 * over the same jobs that lock in different orders can deadlock.
 */
function byLease<T>(items: readonly T[], lease: (item: T) => Lease): T[] {
  return [...items].sort((a, b) => {
    const x = lease(a);
    const y = lease(b);
    return x.id < y.id ? -1 : x.id > y.id ? 1 : x.attempt - y.attempt;
  });
}

/** The positions of the outcomes that `pick` keeps, by kind. */
function byKind(outcomes: readonly Outcome[], pick: (o: Outcome, i: number) => boolean): Map<Outcome['kind'], number[]> {
  const kinds = new Map<Outcome['kind'], number[]>();
  for (let i = 0; i < outcomes.length; i++) {
    const o = outcomes[i];
    if (!pick(o, i)) continue;
    const at = kinds.get(o.kind);
    if (at) at.push(i);
    else kinds.set(o.kind, [i]);
  }
  return kinds;
}

/**
 * Marks which outcomes of `list` (at positions `at`) took: those whose job and
 * attempt are among the rows their write changed (one per job at most), so a
 * stale attempt of the same job in the same batch does not count as written.
 */
function markTaken(took: boolean[], list: readonly Outcome[], at: readonly number[], rows: ReadonlyArray<{ id: string; attempt: number }>): void {
  const attempts = new Map<string, number>();
  for (const r of rows) attempts.set(r.id, Number(r.attempt));
  for (let k = 0; k < list.length; k++) if (attempts.get(list[k].lease.id) === list[k].lease.attempt) took[at[k]] = true;
}

/** SQLSTATE classes and codes worth trying again: connection loss, server shutting down, deadlock, serialization. */
const TRANSIENT_CODES = new Set(['57P01', '57P02', '57P03', '40P01', '40001', '53300']);
function isTransient(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  const code = typeof e.code === 'string' ? e.code : '';
  if (TRANSIENT_CODES.has(code) || code.startsWith('08')) return true;
  if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTCONN', 'EHOSTUNREACH', 'ENETUNREACH'].includes(code)) {
    return true;
  }
  const message = typeof e.message === 'string' ? e.message : '';
  return /Connection terminated|connection is closed|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(
    message,
  );
}
/** Errors after which a connection must not go back to the pool. */
function isBroken(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return isTransient(error) && code !== '40P01' && code !== '40001';
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * How the store reads values: as pg does, except bigint, which pg reads as a
 * string and the store's times (ms), ids and counts all want as a number (they
 * stay far below 2^53). It also leaves a pool's own parsers out of the store's
 * reads.
 */
const READ_TYPES = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') => (oid === pg.types.builtins.INT8 && format !== 'binary' ? Number : pg.types.getTypeParser(oid, format)),
};

/**
 * Values as a PostgreSQL array literal, for a text-format array parameter:
 * one string for the batch, where pg's own conversion builds one per element
 * and quotes every one. Elements of letters, digits and underscores go as
 * they are (ids, attempts, times); others are quoted and escaped.
 */
export function arrayLiteral(values: readonly (string | number | null)[]): string {
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v == null) parts[i] = 'NULL';
    else if (typeof v === 'number') parts[i] = String(v);
    else if (PLAIN_ELEMENT.test(v) && v.toUpperCase() !== 'NULL') parts[i] = v;
    else parts[i] = `"${v.replace(/[\\"]/g, '\\$&')}"`;
  }
  return `{${parts.join(',')}}`;
}
const PLAIN_ELEMENT = /^[A-Za-z0-9_]+$/;

/** Names for prepared statements, shared by every store in the process (names are per connection). */
const statementNames = new Map<string, string>();
function statementName(text: string): string {
  let name = statementNames.get(text);
  if (!name) {
    name = `agentq_${statementNames.size + 1}`;
    statementNames.set(text, name);
  }
  return name;
}

/** Connections that already carry an 'error' listener (see #checkout). */
const checkedOut = new WeakSet<pg.PoolClient>();

/** Splits `?schema=` off a connection string. */
export function parsePostgresUrl(url: string): { connectionString: string; schema: string | undefined } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ValidationError('db', `not a valid PostgreSQL URL: ${url.replace(/:[^:@/]*@/, ':***@')}`);
  }
  const schema = parsed.searchParams.get('schema') ?? undefined;
  parsed.searchParams.delete('schema');
  return { connectionString: parsed.toString(), schema };
}

function checkSchema(name: string): string {
  if (!SCHEMA_NAME.test(name)) {
    throw new ValidationError(
      'schema',
      `${JSON.stringify(name)} is not a plain schema name (letters, digits and _, not starting with a digit, at most 63)`,
    );
  }
  return name;
}

/** PostgreSQL text cannot hold NUL characters: refuse them by field name rather than fail deep in the server. */
function refuseNul(field: string, value: string | null): void {
  if (value != null && value.includes('\u0000')) throw new ValidationError(field, 'must not contain NUL characters');
}

function checkNewJob(job: NewJob): void {
  refuseNul('instructions', job.instructions);
  refuseNul('key', job.key);
  refuseNul('parentId', job.parentId);
  refuseNul('scheduleId', job.scheduleId);
  job.dependsOn.forEach((dep, i) => refuseNul(`dependsOn.${i}`, dep));
}

type Row = Record<string, any>;

export class PostgresStore implements Store, ScheduleStore {
  readonly engine = 'postgres' as const;
  /** The schema agentq's tables live in. */
  readonly schema: string;
  readonly #pool: pg.Pool;
  readonly #ownPool: boolean;
  readonly #clock: Clock | undefined;
  readonly #host: () => number;
  readonly #retryForMs: number;
  /** The schema, quoted. */
  readonly #s: string;
  /** Quoted, schema-qualified table names. */
  readonly #t: { jobs: string; deps: string; logs: string; writes: string; workers: string; agents: string; migrations: string };
  readonly #channel: string;
  readonly #listeners = new Set<() => void>();
  #listener: ChangeListener | undefined;
  #offset = 0;
  #syncTimer: NodeJS.Timeout | undefined;
  #connected: Promise<void> | undefined;
  #soonTimer: NodeJS.Timeout | undefined;
  #activityTimer: NodeJS.Timeout | undefined;
  #capped = new Set<string>();
  #cappedAt = -Infinity;
  #closed = false;
  readonly #sql = new Map<string, string>();
  readonly #schedules: PostgresSchedules;

  constructor(url: string | undefined, options: PostgresStoreOptions = {}) {
    const fromUrl = url ? parsePostgresUrl(url) : { connectionString: undefined, schema: undefined };
    this.schema = checkSchema(options.schema ?? fromUrl.schema ?? DEFAULT_SCHEMA);
    if (options.pool) {
      this.#pool = options.pool;
      this.#ownPool = false;
      // An idle connection that dies (server restart) is reported on the pool; without a listener that would crash the process.
      if (this.#pool.listenerCount('error') === 0) this.#pool.on('error', () => {});
    } else {
      if (!fromUrl.connectionString) throw new ValidationError('db', 'a postgres:// URL or a pool is needed');
      this.#pool = new pg.Pool({
        connectionString: fromUrl.connectionString,
        max: options.max ?? 10,
        connectionTimeoutMillis: 10_000,
        idleTimeoutMillis: 30_000,
        keepAlive: true,
        application_name: 'agentq',
      });
      this.#ownPool = true;
      this.#pool.on('error', () => {});
    }
    this.#clock = options.clock;
    this.#host = options.hostClock ?? Date.now;
    this.#retryForMs = options.retryForMs ?? 15_000;
    const s = `"${this.schema}"`;
    this.#s = s;
    this.#t = {
      jobs: `${s}.jobs`,
      deps: `${s}.job_deps`,
      logs: `${s}.job_logs`,
      writes: `${s}.writes`,
      workers: `${s}.workers`,
      agents: `${s}.agents`,
      migrations: `${s}.agentq_migrations`,
    };
    this.#channel = `agentq.${this.schema}`;
    const access: PostgresAccess = {
      schema: s,
      table: (name) => `${s}.${name}`,
      q: (text, values, on) => (on ? this.#q(text, values, on) : this.#one(text, values)),
      tx: (fn) => this.#tx(fn),
      notify: (c) => this.#notify(c),
      channel: this.#channel,
      now: () => this.now(),
    };
    this.#schedules = new PostgresSchedules({
      ...access,
      insertJob: async (c, job, now) => {
        checkNewJob(job);
        return (await this.#insertPlain(c, [job], now))[0];
      },
    });
    this.#limits = new PostgresLimits(access);
    this.#durable = new PostgresDurable(access);
    this.#users = new PostgresUsers(access);
    this.#events = new PostgresEvents(access);
  }

  readonly #events: PostgresEvents;
  readonly #users: PostgresUsers;
  readonly #durable: PostgresDurable;
  readonly #limits: PostgresLimits;

  /** Checks the server can be reached and measures the offset to its clock. */
  connect(): Promise<void> {
    this.#connected ??= (async () => {
      // A server that is starting (or restarting) gets a few seconds; a wrong address fails fast.
      await this.#retrying(() => this.#syncClock(), Math.min(this.#retryForMs, 3000));
      if (!this.#clock) {
        this.#syncTimer = setInterval(() => void this.#syncClock().catch(() => {}), CLOCK_SYNC_MS);
        this.#syncTimer.unref();
      }
    })();
    return this.#connected;
  }

  /** The pool queries go through (the application's, when it handed one in). */
  get pool(): pg.Pool {
    return this.#pool;
  }

  now(): number {
    if (this.#clock) return this.#clock.now();
    return Math.round(this.#host() + this.#offset);
  }

  /** The best of three round trips: the server's clock at the midpoint of the shortest. */
  async #syncClock(): Promise<void> {
    let best = Infinity;
    let offset = this.#offset;
    for (let i = 0; i < 3; i++) {
      const t0 = this.#host();
      const r = await this.#pool.query<{ t: number }>(
        'SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS t',
      );
      const t1 = this.#host();
      if (t1 - t0 < best) {
        best = t1 - t0;
        offset = Number(r.rows[0].t) - (t0 + t1) / 2;
      }
    }
    this.#offset = offset;
  }

  // ---- plumbing -----------------------------------------------------------------------------

  /** Runs `op` again while the server cannot be reached (or on deadlock), up to the retry budget. */
  async #retrying<T>(op: (attempt: number) => Promise<T>, budgetMs = this.#retryForMs): Promise<T> {
    const deadline = Date.now() + budgetMs;
    let delay = 25;
    for (let attempt = 0; ; attempt++) {
      try {
        return await op(attempt);
      } catch (error) {
        if (this.#closed || !isTransient(error) || Date.now() + delay > deadline) throw error;
        await sleep(delay * (0.5 + Math.random() / 2));
        delay = Math.min(delay * 2, 1000);
      }
    }
  }

  /**
   * A connection of our own for a transaction. A connection the server drops
   * between two statements reports it as an 'error' event: heard here (the
   * next statement fails and the whole operation is retried), never left to
   * crash the process.
   */
  async #checkout(): Promise<pg.PoolClient> {
    const client = await this.#pool.connect();
    if (!checkedOut.has(client)) {
      checkedOut.add(client);
      client.on('error', () => {});
    }
    return client;
  }

  /** One statement (its own transaction), prepared once per connection. */
  async #q<T extends Row = Row>(text: string, values: unknown[] = [], on: Queryable = this.#pool): Promise<T[]> {
    const result = await on.query<T>({ name: statementName(text), text, values, types: READ_TYPES });
    return result.rows;
  }

  /** A single statement outside a transaction, retried while the server is away. */
  #one<T extends Row = Row>(text: string, values: unknown[] = []): Promise<T[]> {
    return this.#retrying(() => this.#q<T>(text, values));
  }

  /** Runs `fn` in a transaction on one connection: all of it or none of it. */
  #tx<T>(fn: (c: pg.PoolClient, attempt: number) => Promise<T>): Promise<T> {
    return this.#retrying(async (attempt) => {
      const client = await this.#checkout();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        const result = await fn(client, attempt);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        if (isBroken(error)) broken = error as Error;
        else await client.query('ROLLBACK').catch((e: Error) => (broken = e));
        throw error;
      } finally {
        client.release(broken);
      }
    });
  }

  /** Cached SQL text built once per store (the schema is part of it). */
  #text(key: string, build: () => string): string {
    let text = this.#sql.get(key);
    if (!text) {
      text = build();
      this.#sql.set(key, text);
    }
    return text;
  }

  /** Notifies listeners in every process when the transaction on `c` commits. */
  async #notify(c: Queryable, payload = ''): Promise<void> {
    await c.query('SELECT pg_notify($1, $2)', [this.#channel, payload]);
  }

  /** Notifies soon, after what just committed; many calls within 20 ms make one notification. */
  #notifySoon(): void {
    if (this.#soonTimer || this.#closed) return;
    this.#soonTimer = setTimeout(() => {
      this.#soonTimer = undefined;
      if (this.#closed) return;
      this.#pool.query('SELECT pg_notify($1, $2)', [this.#channel, ACTIVITY]).catch(() => {});
    }, SOON_NOTIFY_MS);
  }

  // ---- schema -------------------------------------------------------------------------------

  async #version(on: Queryable): Promise<number> {
    const r = await on.query<{ v: number | null }>(
      `SELECT CASE WHEN to_regclass($1) IS NULL THEN NULL ELSE 0 END AS v`,
      [this.#t.migrations],
    );
    if (r.rows[0].v === null) return 0;
    const m = await on.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${this.#t.migrations}`);
    return Number(m.rows[0].v ?? 0);
  }

  async schemaVersion(): Promise<{ current: number; latest: number }> {
    await this.connect();
    return { current: await this.#retrying(() => this.#version(this.#pool)), latest: migrations.at(-1)!.version };
  }

  /**
   * Applies pending migrations under an advisory lock named after the schema:
   * however many processes start at once, one migrates and the others wait,
   * then find nothing left to do.
   */
  async migrate(): Promise<number> {
    await this.connect();
    const latest = migrations.at(-1)!.version;
    return this.#retrying(async () => {
      const client = await this.#checkout();
      let broken: Error | undefined;
      let locked = false;
      try {
        if ((await this.#version(client)) >= latest) return latest;
        await client.query(`SELECT pg_advisory_lock(hashtextextended($1, 0))`, [`agentq.migrate.${this.schema}`]);
        locked = true;
        await client.query(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
        await client.query(`CREATE TABLE IF NOT EXISTS ${this.#t.migrations} (
          version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL,
          applied_by text NOT NULL DEFAULT '')`);
        let version = await this.#version(client);
        for (const m of migrations) {
          if (m.version <= version) continue;
          await client.query('BEGIN');
          try {
            await client.query(m.sql(`"${this.schema}"`));
            await client.query(
              `INSERT INTO ${this.#t.migrations} (version, name, applied_at, applied_by) VALUES ($1, $2, $3, $4)`,
              [m.version, m.name, Date.now(), `${process.pid}`],
            );
            await client.query('COMMIT');
          } catch (error) {
            await client.query('ROLLBACK').catch(() => {});
            throw error;
          }
          version = m.version;
        }
        return version;
      } catch (error) {
        if (isBroken(error)) broken = error as Error;
        throw error;
      } finally {
        if (locked && !broken) {
          await client
            .query(`SELECT pg_advisory_unlock(hashtextextended($1, 0))`, [`agentq.migrate.${this.schema}`])
            .catch((e: Error) => (broken = e));
        }
        client.release(broken);
      }
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#syncTimer);
    clearTimeout(this.#soonTimer);
    clearTimeout(this.#activityTimer);
    this.#listeners.clear();
    await this.#listener?.stop();
    this.#listener = undefined;
    if (this.#ownPool) await this.#pool.end();
  }

  // ---- jobs ---------------------------------------------------------------------------------

  /** The INSERT of #insertPlain: from one array per column, or (`one`) from one value per column; conflicting ids or keys insert nothing. */
  #insertPlainSql(one: boolean): string {
    const source = one
      ? `(SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text,
        $9::int, $10::int, $11::text, $12::bigint, $13::bigint, $14::text, $15::text, $18::text, $19::text)`
      : `unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
        $9::int[], $10::int[], $11::text[], $12::bigint[], $13::bigint[], $14::text[], $15::text[], $18::text[], $19::text[])`;
    return this.#text(
      one ? 'insertOne' : 'insertMany',
      () => `WITH n AS MATERIALIZED (SELECT pg_notify($17, ''))
      INSERT INTO ${this.#t.jobs} (id, agent, type, instructions, payload, metadata, tags, owner, priority, status,
        max_attempts, backoff, timeout_ms, run_at, key, depends_on, schedule_id, created_at, updated_at, rate_key, budget)
      SELECT u.id, u.agent, u.type, u.instructions, u.payload, u.metadata, u.tags, u.owner, u.priority, 'pending',
        u.max_attempts, u.backoff, u.timeout_ms, u.run_at, u.key, '[]', u.schedule_id, $16, $16, u.rate_key, u.budget
      FROM ${source}
        AS u(id, agent, type, instructions, payload, metadata, tags, owner, priority, max_attempts, backoff,
          timeout_ms, run_at, key, schedule_id, rate_key, budget)
      WHERE EXISTS (SELECT 1 FROM n)
      ON CONFLICT DO NOTHING
      RETURNING id`,
    );
  }

  async insertJobs(jobs: readonly NewJob[]): Promise<InsertedJob[]> {
    if (jobs.length === 0) return [];
    jobs.forEach((job, index) => {
      try {
        checkNewJob(job);
      } catch (error) {
        if (error instanceof ValidationError) error.index = index;
        throw error;
      }
    });
    // The time is read by each try: the job events' times must follow their ids (see events.ts).
    const plain = jobs.every((j) => j.parentId == null && j.dependsOn.length === 0);
    if (plain) {
      // One statement: atomic by itself, one round trip.
      return this.#retrying(async () => this.#insertPlain(this.#pool, jobs, this.now()));
    }
    return this.#tx(async (c) => {
      const now = this.now();
      const out: InsertedJob[] = new Array(jobs.length);
      const simple: number[] = [];
      for (let i = 0; i < jobs.length; i++) {
        if (jobs[i].parentId == null && jobs[i].dependsOn.length === 0) simple.push(i);
      }
      if (simple.length > 0) {
        const done = await this.#insertPlain(
          c,
          simple.map((i) => jobs[i]),
          now,
        );
        simple.forEach((i, k) => (out[i] = done[k]));
      }
      for (let i = 0; i < jobs.length; i++) {
        if (out[i]) continue;
        try {
          out[i] = await this.#insertLinked(c, jobs[i], now);
        } catch (error) {
          if (error instanceof ValidationError) error.index = i;
          throw error;
        }
      }
      await this.#notify(c);
      return out;
    });
  }

  /** Jobs without parent or dependencies: one multi-row INSERT; keys that exist return their job. */
  async #insertPlain(on: Queryable, jobs: readonly NewJob[], now: number): Promise<InsertedJob[]> {
    const cols: unknown[][] = Array.from({ length: 15 }, () => new Array(jobs.length));
    jobs.forEach((j, i) => {
      cols[0][i] = j.id;
      cols[1][i] = j.agent;
      cols[2][i] = j.type;
      cols[3][i] = j.instructions;
      cols[4][i] = j.payload;
      cols[5][i] = j.metadata;
      cols[6][i] = j.tags;
      cols[7][i] = j.owner;
      cols[8][i] = j.priority;
      cols[9][i] = j.maxAttempts;
      cols[10][i] = j.backoff;
      cols[11][i] = j.timeoutMs;
      cols[12][i] = j.runAt;
      cols[13][i] = j.key;
      cols[14][i] = j.scheduleId;
    });
    const rateKeys = jobs.map((j) => j.rateKey);
    const budgets = jobs.map((j) => j.budget);
    // One job (a submit of one) goes as plain values: no arrays to write and unnest.
    const one = jobs.length === 1;
    const values = one ? [...cols.map((c) => c[0]), now, this.#channel, rateKeys[0], budgets[0]] : [...cols, now, this.#channel, rateKeys, budgets];
    const inserted = new Set((await this.#q<{ id: string }>(this.#insertPlainSql(one), values, on)).map((r) => r.id));
    const out: InsertedJob[] = [];
    const missing: NewJob[] = [];
    for (const j of jobs) {
      if (inserted.has(j.id)) out.push({ job: newJobToJob(j, 'pending', null, now), created: true });
      else missing.push(j);
    }
    if (missing.length === 0) return out;
    // Not inserted: our own row from an attempt whose reply was lost, or a job that holds the key.
    const rows = await this.#q<JobRow>(
      `SELECT * FROM ${this.#t.jobs} WHERE id = ANY($1::text[]) OR key = ANY($2::text[])`,
      [missing.map((j) => j.id), missing.map((j) => j.key).filter((k) => k != null)],
      on,
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    const byKey = new Map(rows.filter((r) => r.key != null).map((r) => [r.key!, r]));
    return jobs.map((j, i) => {
      if (inserted.has(j.id)) return out.shift()!;
      if (byId.has(j.id)) return { job: newJobToJob(j, 'pending', null, now), created: true };
      const existing = j.key != null ? byKey.get(j.key) : undefined;
      if (!existing) {
        // The job holding the key went away between the two statements (cleanup): try this one again.
        throw Object.assign(new Error(`job ${i} was neither inserted nor found`), { code: '40001' });
      }
      return { job: rowToJob(existing, now), created: false };
    });
  }

  /** One job with a parent or dependencies, inside the batch's transaction. */
  async #insertLinked(c: pg.PoolClient, job: NewJob, now: number): Promise<InsertedJob> {
    if (job.key != null) {
      const [existing] = await this.#q<JobRow>(`SELECT * FROM ${this.#t.jobs} WHERE key = $1`, [job.key], c);
      if (existing) return { job: rowToJob(existing, now), created: false };
    }
    if (job.parentId != null) {
      const [parent] = await this.#q<{ owner: string | null }>(
        `SELECT owner FROM ${this.#t.jobs} WHERE id = $1`,
        [job.parentId],
        c,
      );
      // Another owner's job is as good as unknown: its existence is not for this owner to learn.
      if (!parent || !sameOwner(job, parent.owner)) {
        throw new ValidationError('parentId', `no job with id ${job.parentId}`);
      }
    }
    let status: JobStatus = 'pending';
    let error: string | null = null;
    let finishedAt: number | null = null;
    const unique = [...new Set(job.dependsOn)];
    if (unique.length > 0) {
      // Flagging the dependencies takes their row locks: a dependency finishing right now
      // either sees this job (after we commit) or has committed and shows its final status.
      const rows = await this.#q<{ id: string; status: JobStatus; owner: string | null }>(
        `UPDATE ${this.#t.jobs} SET has_dependents = true WHERE id = ANY($1::text[]) RETURNING id, status, owner`,
        [unique],
        c,
      );
      const found = new Map(rows.map((r) => [r.id, r]));
      job.dependsOn.forEach((dep, i) => {
        const row = found.get(dep);
        if (!row || !sameOwner(job, row.owner)) throw new ValidationError(`dependsOn.${i}`, `no job with id ${dep}`);
        const depStatus = row.status;
        if (status === 'cancelled') return;
        if (depStatus === 'failed' || depStatus === 'cancelled') {
          status = 'cancelled';
          error = dependencyError(dep, depStatus);
          finishedAt = now;
        } else if (depStatus !== 'completed') {
          status = 'blocked';
        }
      });
    }
    const inserted = await this.#q(
      this.#text(
        'insertLinked',
        () => `INSERT INTO ${this.#t.jobs} (id, agent, type, instructions, payload, metadata, tags, owner, priority,
          status, error, max_attempts, backoff, timeout_ms, run_at, key, parent_id, depends_on, schedule_id,
          created_at, updated_at, finished_at, rate_key, budget)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $20, $21, $22, $23)
        ON CONFLICT DO NOTHING RETURNING id`,
      ),
      [
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
        finishedAt,
        job.rateKey,
        job.budget,
      ],
      c,
    );
    if (inserted.length === 0) {
      const [existing] = await this.#q<JobRow>(
        `SELECT * FROM ${this.#t.jobs} WHERE id = $1 OR (key = $2 AND $2 IS NOT NULL)`,
        [job.id, job.key],
        c,
      );
      if (existing && existing.id !== job.id) return { job: rowToJob(existing, now), created: false };
      if (!existing) throw Object.assign(new Error('job was neither inserted nor found'), { code: '40001' });
    }
    if (unique.length > 0) {
      await this.#q(
        `INSERT INTO ${this.#t.deps} (job_id, depends_on) SELECT $1, d FROM unnest($2::text[]) AS d ON CONFLICT DO NOTHING`,
        [job.id, unique],
        c,
      );
    }
    return { job: newJobToJob(job, status, error, now), created: true };
  }

  async getJob(id: string): Promise<Job | null> {
    const [row] = await this.#one<JobRow>(`SELECT * FROM ${this.#t.jobs} WHERE id = $1`, [id]);
    return row ? rowToJob(row, this.now()) : null;
  }

  async listJobs(filter: JobFilter): Promise<Job[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (value: unknown) => {
      params.push(value);
      return `$${params.length}`;
    };
    const inList = (column: string, values: readonly string[] | undefined) => {
      if (!values || values.length === 0) return;
      where.push(`${column} = ANY(${add(values.map((v) => v.replace(/\u0000/g, '')))}::text[])`);
    };
    inList('status', filter.status);
    inList('agent', filter.agent);
    inList('type', filter.type);
    inList('owner', filter.owner);
    if (filter.tag != null) where.push(`tags::jsonb ? ${add(filter.tag.replace(/\u0000/g, ''))}::text`);
    if (filter.parentId != null) where.push(`parent_id = ${add(filter.parentId.replace(/\u0000/g, ''))}`);
    if (filter.scheduleId != null) where.push(`schedule_id = ${add(filter.scheduleId.replace(/\u0000/g, ''))}`);
    if (filter.idPrefix != null) {
      const prefix = filter.idPrefix.replace(/\u0000/g, '');
      where.push(`id >= ${add(prefix)} AND id < ${add(prefix + '\uffff')}`);
    }
    const desc = filter.order !== 'asc';
    if (filter.after != null) where.push(`id ${desc ? '<' : '>'} ${add(filter.after.replace(/\u0000/g, ''))}`);
    const sql = `SELECT * FROM ${this.#t.jobs} ${where.length ? 'WHERE ' + where.join(' AND ') : ''}
      ORDER BY id ${desc ? 'DESC' : 'ASC'} LIMIT ${add(filter.limit)}`;
    const rows = await this.#one<JobRow>(sql, params);
    const now = this.now();
    return rows.map((r) => rowToJob(r, now));
  }

  async listChildren(parentId: string): Promise<Job[]> {
    const rows = await this.#one<JobRow>(`SELECT * FROM ${this.#t.jobs} WHERE parent_id = $1 ORDER BY id`, [parentId]);
    const now = this.now();
    return rows.map((r) => rowToJob(r, now));
  }

  // ---- claims ---------------------------------------------------------------------------------

  /**
   * One index-ordered probe per agent (LATERAL), merged by priority and cut
   * to the limit, all in a CTE that runs once. `room` is each agent's share;
   * `held` marks capped agents whose `agents` row this transaction locked —
   * any other agent that has a cap is skipped here, so a stale idea of which
   * agents are capped can delay a claim but never break a cap.
   */
  #claimSql(typed: boolean): string {
    return this.#text(
      `claim:${typed}`,
      () => `WITH ${ASYNC_COMMIT}, pick AS MATERIALIZED (
        SELECT c.id FROM unnest($4::text[], $5::int[], $6::bool[]) AS a(agent, room, held)
        CROSS JOIN LATERAL (
          SELECT j.id, j.priority, j.run_at FROM ${this.#t.jobs} j
          WHERE j.status = 'pending' AND j.agent = a.agent AND j.run_at <= $2${typed ? ' AND j.type = ANY($8::text[])' : ''}
          ORDER BY j.priority DESC, j.run_at, j.id
          LIMIT a.room
          FOR UPDATE SKIP LOCKED
        ) c
        WHERE a.room > 0 AND (a.held OR NOT EXISTS (
          SELECT 1 FROM ${this.#t.agents} g WHERE g.name = a.agent AND g.max_concurrency IS NOT NULL))
        ORDER BY c.priority DESC, c.run_at, c.id
        LIMIT $7
      ), upd AS (
        UPDATE ${this.#t.jobs} j SET status = 'running', worker_id = $1, attempts = j.attempts + 1, started_at = $2,
          heartbeat_at = $2, lease_expires_at = $3, updated_at = $2, progress = 0, progress_message = NULL
        WHERE j.id = ANY (ARRAY(SELECT id FROM pick)) AND ${byIdWhereStatus(fromStatesSql('claim'))} AND EXISTS (SELECT 1 FROM async)
        RETURNING j.*
      ), ${writtenJobEventsSql(this.#s, 'job.started')}
      SELECT * FROM upd`,
    );
  }

  async #cappedAgents(): Promise<Set<string>> {
    if (performance.now() - this.#cappedAt > CAPS_CACHE_MS) {
      const rows = await this.#q<{ name: string }>(
        `SELECT name FROM ${this.#t.agents} WHERE max_concurrency IS NOT NULL`,
      );
      this.#capped = new Set(rows.map((r) => r.name));
      this.#cappedAt = performance.now();
    }
    return this.#capped;
  }

  /**
   * SKIP LOCKED passes over a due job whose row another statement holds for
   * a moment (a heartbeat or a fenced write of a worker that just lost it).
   * A claim that found nothing therefore looks once more when due jobs exist.
   */
  async claimJobs(p: ClaimParams): Promise<Job[]> {
    const { jobs, capsFull } = await this.#claimOnce(p);
    if (jobs.length > 0 || capsFull || p.limit <= 0 || p.agents.length === 0) return jobs;
    const typed = p.types != null && p.types.length > 0;
    const [due] = await this.#one<{ due: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM ${this.#t.jobs} WHERE status = 'pending' AND agent = ANY($1::text[])
         AND run_at <= $2${typed ? ' AND type = ANY($3::text[])' : ''}) AS due`,
      typed ? [p.agents, this.now(), p.types] : [p.agents, this.now()],
    );
    if (!due?.due) return jobs;
    await sleep(2);
    if (this.#closed) return jobs;
    return (await this.#claimOnce(p)).jobs;
  }

  /** One claim; `capsFull` when every agent asked for is at its cap. */
  async #claimOnce(p: ClaimParams): Promise<{ jobs: Job[]; capsFull: boolean }> {
    if (p.limit <= 0 || p.agents.length === 0) return { jobs: [], capsFull: false };
    const agents = [...new Set(p.agents)];
    const typed = p.types != null && p.types.length > 0;
    const rows = await this.#retrying(async () => {
      const capped = await this.#cappedAgents();
      const now = this.now();
      const params = (rooms: number[], held: boolean[]) => {
        const values: unknown[] = [p.workerId, now, now + p.leaseMs, agents, rooms, held, p.limit];
        if (typed) values.push(p.types);
        return values;
      };
      if (!agents.some((a) => capped.has(a))) {
        // No caps in the way: one statement, its own transaction.
        const rows = await this.#q<JobRow>(
          this.#claimSql(typed),
          params(
            agents.map(() => p.limit),
            agents.map(() => false),
          ),
        );
        return { rows, now, capsFull: false };
      }
      const c = await this.#checkout();
      let broken: Error | undefined;
      try {
        await c.query('BEGIN');
        // Claimers of a capped agent take turns on its row; the count below is
        // read after the previous turn committed, so it sees that turn's claims.
        const caps = await this.#q<{ name: string; max_concurrency: number }>(
          `SELECT name, max_concurrency FROM ${this.#t.agents}
           WHERE name = ANY($1::text[]) AND max_concurrency IS NOT NULL ORDER BY name FOR UPDATE`,
          [agents.filter((a) => capped.has(a))],
          c,
        );
        const room = new Map<string, number>();
        if (caps.length > 0) {
          const counts = await this.#q<{ agent: string; n: number }>(
            `SELECT agent, count(*)::int AS n FROM ${this.#t.jobs}
             WHERE status = 'running' AND agent = ANY($1::text[]) GROUP BY agent`,
            [caps.map((cap) => cap.name)],
            c,
          );
          const running = new Map(counts.map((r) => [r.agent, Number(r.n)]));
          for (const cap of caps) room.set(cap.name, Math.max(0, Number(cap.max_concurrency) - (running.get(cap.name) ?? 0)));
        }
        const rooms = agents.map((a) => Math.min(room.get(a) ?? p.limit, p.limit));
        const rows = rooms.some((r) => r > 0)
          ? await this.#q<JobRow>(
              this.#claimSql(typed),
              params(
                rooms,
                agents.map((a) => room.has(a)),
              ),
              c,
            )
          : [];
        await c.query('COMMIT');
        return { rows, now, capsFull: rooms.every((r) => r === 0) };
      } catch (error) {
        if (isBroken(error)) broken = error as Error;
        else await c.query('ROLLBACK').catch((e: Error) => (broken = e));
        throw error;
      } finally {
        c.release(broken);
      }
    });
    const list = rows.rows;
    // Their job.started events: tell subscribers soon (one notification for a burst of claims).
    if (list.length > 0) this.#notifySoon();
    list.sort(
      (a, b) =>
        Number(b.priority) - Number(a.priority) || Number(a.run_at) - Number(b.run_at) || (a.id < b.id ? -1 : 1),
    );
    return { jobs: list.map((r) => rowToJob(r, rows.now)), capsFull: rows.capsFull };
  }

  async heartbeat(leases: readonly Lease[], leaseMs: number): Promise<Set<string>> {
    if (leases.length === 0) return new Set();
    const now = this.now();
    const sorted = byLease(leases, (l) => l);
    const rows = await this.#one<{ id: string }>(
      this.#text(
        'heartbeat',
        () => `WITH ${ASYNC_COMMIT}
        UPDATE ${this.#t.jobs} j SET heartbeat_at = $1, lease_expires_at = $2
        FROM unnest($3::text[], $4::text[], $5::int[]) AS v(id, worker_id, attempt)
        WHERE ${leasesWhere('$3', `j.status = 'running' AND ${LEASE_HELD}`)} AND EXISTS (SELECT 1 FROM async)
        RETURNING j.id`,
      ),
      [now, now + leaseMs, sorted.map((l) => l.id), sorted.map((l) => l.workerId), sorted.map((l) => l.attempt)],
    );
    return new Set(rows.map((r) => r.id));
  }

  // ---- outcomes -------------------------------------------------------------------------------

  /**
   * The fenced UPDATE for one kind of outcome, over arrays of leases.
   * `alone`: only for jobs nothing else hangs on, whose outcome changes nothing
   * else, so its event type is known and the statement writes it.
   */
  #finishSql(kind: Outcome['kind'], alone = false): string {
    return this.#text(`finish:${kind}:${alone}`, () => {
      const tests = `j.status IN (${fromStatesSql(FINISH_TRANSITION[kind])}) AND ${LEASE_HELD}`;
      const update = (extra = '') => `UPDATE ${this.#t.jobs} j SET ${FINISH_SET[kind]}
      FROM unnest($2::text[], $3::text[], $4::int[], $5::text[], $6::bigint[]) AS v(id, worker_id, attempt, value, run_at)
      WHERE ${leasesWhere('$2', tests + extra)}`;
      if (!alone) return `${update()} RETURNING j.id, v.attempt, j.has_dependents, j.parent_id`;
      const event = QUICK_EVENTS[kind as QuickKind];
      if (!event) throw new Error(`no quick write for ${kind} outcomes`);
      return `WITH upd AS (${update(' AND NOT j.has_dependents AND j.parent_id IS NULL')} RETURNING j.*),
      ${writtenJobEventsSql(this.#s, event)}
      SELECT id, attempts AS attempt, has_dependents, parent_id FROM upd`;
    });
  }

  #finishValues(outcomes: readonly Outcome[], now: number): unknown[] {
    const list = byLease(outcomes, (o) => o.lease);
    return [
      now,
      arrayLiteral(list.map((o) => o.lease.id)),
      arrayLiteral(list.map((o) => o.lease.workerId)),
      arrayLiteral(list.map((o) => o.lease.attempt)),
      arrayLiteral(list.map((o) => (o.kind === 'complete' ? o.result : o.kind === 'fail' || o.kind === 'retry' ? o.error : null))),
      arrayLiteral(list.map((o) => (o.kind === 'retry' ? o.runAt : null))),
    ];
  }

  /**
   * Outcomes are recorded in two steps. First, for jobs that nothing else
   * hangs on (no dependents, no parent) completions, failures and retries
   * are one statement per kind — one round trip, the common case. A dependent
   * inserted meanwhile flags its dependency under the row lock this UPDATE
   * also takes, so the flag is re-checked on the latest row and such a job
   * falls through to the second step: one transaction that records the rest
   * and does what follows from them (unblocking dependents, cancelling them,
   * resuming waiting parents).
   */
  async finishJobs(outcomes: readonly Outcome[]): Promise<boolean[]> {
    if (outcomes.length === 0) return [];
    const took = new Array<boolean>(outcomes.length).fill(false);
    for (const [kind, at] of byKind(outcomes, (o) => o.kind in QUICK_EVENTS)) {
      const list = at.map((i) => outcomes[i]);
      // The time is read by each try, as its events' times must follow their ids (see events.ts).
      const rows = await this.#retrying(() => this.#q<{ id: string; attempt: number }>(this.#finishSql(kind, true), this.#finishValues(list, this.now())));
      markTaken(took, list, at, rows);
    }
    const kinds = byKind(outcomes, (_, i) => !took[i]);
    if (kinds.size === 0) {
      this.#notifySoon();
      return took;
    }
    const { woke, taken } = await this.#tx(async (c) => {
      const now = this.now();
      const taken: Array<{ list: Outcome[]; at: number[]; rows: Array<{ id: string; attempt: number }> }> = [];
      let wake = false;
      for (const [kind, at] of kinds) {
        const list = at.map((i) => outcomes[i]);
        if (kind === 'wait') {
          // Lock our own rows first, so the children counted below are read after any child
          // that finished meanwhile committed (a finishing child locks its parent the same way).
          await this.#q(
            `SELECT id FROM ${this.#t.jobs} WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`,
            [list.map((o) => o.lease.id)],
            c,
          );
        }
        const rows = await this.#q<{ id: string; attempt: number; has_dependents: boolean; parent_id: string | null }>(
          this.#finishSql(kind),
          this.#finishValues(list, now),
          c,
        );
        taken.push({ list, at, rows });
        if (rows.length === 0) continue;
        if (kind === 'release') wake = true;
        if (kind === 'wait') {
          // With no unfinished child left, due again at once.
          wake = (await this.#resume(c, rows.map((r) => r.id), now)) || wake;
          continue;
        }
        const linked = rows.filter((r) => r.has_dependents).map((r) => r.id);
        const parents = rows.filter((r) => r.parent_id != null).map((r) => r.parent_id!);
        if (kind === 'complete' && linked.length > 0) wake = (await this.#unblockDependents(c, linked, now)) || wake;
        if (kind === 'fail') {
          for (const id of linked) {
            if ((await this.#cancelDependents(c, id, 'failed', now)).length > 0) wake = true;
          }
        }
        if ((kind === 'complete' || kind === 'fail') && parents.length > 0) {
          wake = (await this.#resumeParents(c, parents, now)) || wake;
        }
      }
      if (wake) await this.#notify(c);
      return { woke: wake, taken };
    });
    // Marked once committed: a transaction tried again starts over.
    for (const t of taken) markTaken(took, t.list, t.at, t.rows);
    if (!woke) this.#notifySoon();
    return took;
  }

  /** Dependents whose last dependency just completed become pending. Returns whether any did. */
  async #unblockDependents(c: pg.PoolClient, ids: string[], now: number): Promise<boolean> {
    // Lock the candidates first; the check below then reads a snapshot taken after any other
    // transaction that held them (and completed another of their dependencies) committed.
    const locked = await this.#q<{ id: string }>(
      `SELECT id FROM ${this.#t.jobs}
       WHERE id IN (SELECT job_id FROM ${this.#t.deps} WHERE depends_on = ANY($1::text[]))
         AND status IN (${fromStatesSql('unblock')})
       ORDER BY id FOR UPDATE`,
      [ids],
      c,
    );
    if (locked.length === 0) return false;
    const rows = await this.#q(
      `UPDATE ${this.#t.jobs} j SET status = 'pending', updated_at = $2
       WHERE j.id = ANY($1::text[]) AND j.status IN (${fromStatesSql('unblock')}) AND NOT EXISTS (
         SELECT 1 FROM ${this.#t.deps} d JOIN ${this.#t.jobs} x ON x.id = d.depends_on
         WHERE d.job_id = j.id AND x.status <> 'completed')
       RETURNING j.id`,
      [locked.map((r) => r.id), now],
      c,
    );
    return rows.length > 0;
  }

  /**
   * Parents of jobs that just finished: a waiting one whose last unfinished
   * child this was is due again. The parent rows are locked first (whatever
   * their status), so a parent suspending at this moment either is seen as
   * waiting here or sees these children finished itself.
   */
  async #resumeParents(c: pg.PoolClient, parentIds: readonly string[], now: number): Promise<boolean> {
    const unique = [...new Set(parentIds)];
    if (unique.length === 0) return false;
    const locked = await this.#q<{ id: string; status: JobStatus }>(
      `SELECT id, status FROM ${this.#t.jobs} WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`,
      [unique],
      c,
    );
    const waiting = locked.filter((r) => r.status === 'waiting').map((r) => r.id);
    return this.#resume(c, waiting, now);
  }

  /** Waiting jobs (already locked by this transaction) without unfinished children become pending. */
  async #resume(c: pg.PoolClient, ids: readonly string[], now: number): Promise<boolean> {
    if (ids.length === 0) return false;
    const rows = await this.#q(
      `UPDATE ${this.#t.jobs} j SET status = 'pending', run_at = $2, updated_at = $2
       WHERE j.id = ANY($1::text[]) AND j.status IN (${fromStatesSql('resume')}) AND j.wait_for IS NULL AND NOT EXISTS (
         SELECT 1 FROM ${this.#t.jobs} x WHERE x.parent_id = j.id AND x.status IN ('blocked','pending','running','waiting'))
       RETURNING j.id`,
      [ids, now],
      c,
    );
    return rows.length > 0;
  }

  /** Dependents (transitively) of a failed or cancelled job are cancelled, naming it. */
  async #cancelDependents(c: pg.PoolClient, id: string, status: JobStatus, now: number): Promise<string[]> {
    const cancelled: string[] = [];
    const parents: string[] = [];
    const queue: Array<[string, JobStatus]> = [[id, status]];
    while (queue.length > 0) {
      const [dep, depStatus] = queue.shift()!;
      const rows = await this.#q<{ id: string; has_dependents: boolean; parent_id: string | null }>(
        `UPDATE ${this.#t.jobs} SET status = 'cancelled', error = $2, finished_at = $3, updated_at = $3
         WHERE id IN (SELECT job_id FROM ${this.#t.deps} WHERE depends_on = $1)
           AND status IN (${fromStatesSql('dependencyLost')})
         RETURNING id, has_dependents, parent_id`,
        [dep, dependencyError(dep, depStatus), now],
        c,
      );
      rows.sort((a, b) => (a.id < b.id ? -1 : 1));
      for (const r of rows) {
        cancelled.push(r.id);
        if (r.parent_id != null) parents.push(r.parent_id);
        if (r.has_dependents) queue.push([r.id, 'cancelled']);
      }
    }
    await this.#resumeParents(c, parents, now);
    return cancelled;
  }

  /** Unfinished children of a job, recursively, are cancelled, naming the ancestor. */
  async #cancelDescendants(c: pg.PoolClient, id: string, now: number): Promise<string[]> {
    const cancelled: string[] = [];
    const parents = [id];
    while (parents.length > 0) {
      const parent = parents.shift()!;
      const children = await this.#q<{ id: string; has_dependents: boolean }>(
        `UPDATE ${this.#t.jobs} SET status = 'cancelled', error = $2, finished_at = $3, updated_at = $3,
           lease_expires_at = NULL
         WHERE parent_id = $1 AND status IN (${fromStatesSql('cancel')}) RETURNING id, has_dependents`,
        [parent, parentCancelledError(id), now],
        c,
      );
      children.sort((a, b) => (a.id < b.id ? -1 : 1));
      for (const child of children) {
        cancelled.push(child.id);
        if (child.has_dependents) cancelled.push(...(await this.#cancelDependents(c, child.id, 'cancelled', now)));
      }
      // Finished children may have unfinished children of their own.
      const all = await this.#q<{ id: string }>(
        `SELECT id FROM ${this.#t.jobs} WHERE parent_id = $1 ORDER BY id`,
        [parent],
        c,
      );
      parents.push(...all.map((r) => r.id));
    }
    return cancelled;
  }

  async setProgress(lease: Lease, progress: number, message: string | null): Promise<boolean> {
    refuseNul('message', message);
    const rows = await this.#one(
      `UPDATE ${this.#t.jobs} SET progress = $1, progress_message = $2, updated_at = $3
       WHERE id = $4 AND status = 'running' AND worker_id = $5 AND attempts = $6 RETURNING id`,
      [progress, message, this.now(), lease.id, lease.workerId, lease.attempt],
    );
    if (rows.length > 0) this.#notifySoon();
    return rows.length > 0;
  }

  async jobStates(ids: readonly string[]): Promise<JobState[]> {
    if (ids.length === 0) return [];
    const rows = await this.#one<{ id: string; status: JobStatus; worker_id: string | null; attempts: number; owner: string | null }>(
      `SELECT id, status, worker_id, attempts, owner FROM ${this.#t.jobs} WHERE id = ANY($1::text[])`,
      [ids],
    );
    return rows.map((r) => ({ id: r.id, status: r.status, workerId: r.worker_id, attempt: Number(r.attempts), owner: r.owner }));
  }

  // ---- user actions ---------------------------------------------------------------------------

  async cancelJob(id: string, error: string, options: { descendants?: boolean } = {}): Promise<CancelResult | null> {
    return this.#tx(async (c) => {
      const now = this.now();
      const [before] = await this.#q<{ status: JobStatus }>(
        `SELECT status FROM ${this.#t.jobs} WHERE id = $1 FOR UPDATE`,
        [id],
        c,
      );
      if (!before) return null;
      const [changed] = await this.#q<{ has_dependents: boolean; parent_id: string | null }>(
        `UPDATE ${this.#t.jobs} SET status = 'cancelled', error = $2, finished_at = $3, updated_at = $3,
           lease_expires_at = NULL
         WHERE id = $1 AND status IN (${fromStatesSql('cancel')}) RETURNING has_dependents, parent_id`,
        [id, error, now],
        c,
      );
      const cascaded: string[] = [];
      if (changed) {
        if (changed.has_dependents) cascaded.push(...(await this.#cancelDependents(c, id, 'cancelled', now)));
        if (changed.parent_id != null) await this.#resumeParents(c, [changed.parent_id], now);
      }
      if (options.descendants) cascaded.push(...(await this.#cancelDescendants(c, id, now)));
      if (changed || cascaded.length > 0) await this.#notify(c);
      const [row] = await this.#q<JobRow>(`SELECT * FROM ${this.#t.jobs} WHERE id = $1`, [id], c);
      return { job: rowToJob(row, now), previous: before.status, cascaded };
    });
  }

  async retryJob(id: string, extraAttempts: number): Promise<Job | null> {
    return this.#tx(async (c) => {
      const now = this.now();
      const [before] = await this.#q<{ status: JobStatus }>(
        `SELECT status FROM ${this.#t.jobs} WHERE id = $1 FOR UPDATE`,
        [id],
        c,
      );
      if (!before) return null;
      if (!(TRANSITIONS.retry.from as readonly JobStatus[]).includes(before.status)) {
        throw new ConflictError(`job ${id} is ${before.status}; only failed or cancelled jobs can be retried`, {
          status: before.status,
        });
      }
      // Lock (and flag) the dependencies, as an insert does, so none finishes unseen.
      const deps = await this.#q<{ id: string; status: JobStatus }>(
        `UPDATE ${this.#t.jobs} SET has_dependents = true
         WHERE id IN (SELECT depends_on FROM ${this.#t.deps} WHERE job_id = $1) RETURNING id, status`,
        [id],
        c,
      );
      deps.sort((a, b) => (a.id < b.id ? -1 : 1));
      const lost = deps.find((d) => d.status === 'failed' || d.status === 'cancelled');
      if (lost) {
        throw new ConflictError(`dependency ${lost.id} is ${lost.status}; retry it first`, { dependency: lost.id });
      }
      const status = deps.every((d) => d.status === 'completed') ? 'pending' : 'blocked';
      const [row] = await this.#q<JobRow>(
        `UPDATE ${this.#t.jobs} SET status = $2, max_attempts = greatest(max_attempts, attempts + $3), run_at = $4,
           result = NULL, error = NULL, progress = 0, progress_message = NULL, worker_id = NULL, lease_expires_at = NULL,
           started_at = NULL, finished_at = NULL, heartbeat_at = NULL, wait_for = NULL, updated_at = $4
         WHERE id = $1 AND status IN (${fromStatesSql('retry')}) RETURNING *`,
        [id, status, extraAttempts, now],
        c,
      );
      await this.#notify(c);
      return rowToJob(row, now);
    });
  }

  async rescueExpired(): Promise<RescueResult> {
    const result = await this.#tx(async (c) => {
      const now = this.now();
      const requeued = await this.#q<{ id: string }>(
        `UPDATE ${this.#t.jobs} SET status = 'pending', error = $1, run_at = $2, worker_id = NULL,
           lease_expires_at = NULL, updated_at = $2
         WHERE status IN (${fromStatesSql('rescue')}) AND lease_expires_at < $2 AND attempts < max_attempts
         RETURNING id`,
        [LEASE_EXPIRED_ERROR, now],
        c,
      );
      const failed = await this.#q<{ id: string; has_dependents: boolean; parent_id: string | null }>(
        `UPDATE ${this.#t.jobs} SET status = 'failed', error = $1, finished_at = $2, updated_at = $2,
           lease_expires_at = NULL
         WHERE status IN (${fromStatesSql('rescue')}) AND lease_expires_at < $2 AND attempts >= max_attempts
         RETURNING id, has_dependents, parent_id`,
        [LEASE_EXPIRED_ERROR, now],
        c,
      );
      for (const r of failed) if (r.has_dependents) await this.#cancelDependents(c, r.id, 'failed', now);
      await this.#resumeParents(
        c,
        failed.filter((r) => r.parent_id != null).map((r) => r.parent_id!),
        now,
      );
      if (requeued.length > 0 || failed.length > 0) await this.#notify(c);
      const ids = (rows: Array<{ id: string }>) => rows.map((r) => r.id).sort();
      return { requeued: ids(requeued), failed: ids(failed) };
    });
    return result;
  }

  async hungJobs(olderThanMs: number): Promise<Job[]> {
    const now = this.now();
    const rows = await this.#one<JobRow>(
      `SELECT * FROM ${this.#t.jobs} WHERE status = 'running' AND heartbeat_at < $1 ORDER BY heartbeat_at`,
      [now - olderThanMs],
    );
    return rows.map((r) => rowToJob(r, now));
  }

  async nextRunAt(agents: readonly string[]): Promise<number | null> {
    if (agents.length === 0) return null;
    const [row] = await this.#one<{ t: string | null }>(
      `SELECT min(run_at) AS t FROM ${this.#t.jobs} WHERE status = 'pending' AND agent = ANY($1::text[])`,
      [agents],
    );
    return row?.t == null ? null : Number(row.t);
  }

  // ---- logs -----------------------------------------------------------------------------------

  async appendLogs(logs: readonly NewLog[]): Promise<void> {
    if (logs.length === 0) return;
    logs.forEach((l) => refuseNul('message', l.message));
    // Once, even when tried again after a lost reply (see access.ts).
    await this.#one(
      `WITH w AS (${firstWriteSql(this.#t.writes, '$7')})
       INSERT INTO ${this.#t.logs} (job_id, attempt, at, level, message, data)
       SELECT u.job_id, u.attempt, $1, u.level, u.message, u.data
       FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY
         AS u(job_id, attempt, level, message, data, n)
       WHERE EXISTS (SELECT FROM w)
       ORDER BY u.n`,
      [
        this.now(),
        logs.map((l) => l.jobId),
        logs.map((l) => l.attempt),
        logs.map((l) => l.level),
        logs.map((l) => l.message),
        logs.map((l) => l.data),
        newWriteId(),
      ],
    );
    this.#notifySoon();
  }

  async listLogs(jobId: string, after: number, limit: number): Promise<JobLog[]> {
    const rows = await this.#one<LogRow>(
      `SELECT * FROM ${this.#t.logs} WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
      [jobId, after, limit],
    );
    return rows.map(rowToLog);
  }

  // ---- stats and retention --------------------------------------------------------------------

  async stats(owner?: string): Promise<StatsRow[]> {
    const rows = await this.#one<{ status: JobStatus; agent: string; count: number }>(
      owner == null
        ? `SELECT status, agent, count(*)::int AS count FROM ${this.#t.jobs} GROUP BY status, agent`
        : `SELECT status, agent, count(*)::int AS count FROM ${this.#t.jobs} WHERE owner = $1 GROUP BY status, agent`,
      owner == null ? undefined : [owner],
    );
    return rows.map((r) => ({ status: r.status, agent: r.agent, count: Number(r.count) }));
  }

  async throughput(since: number, owner?: string): Promise<ThroughputRow[]> {
    const rows = await this.#one<{ minute: string; status: JobStatus; count: number }>(
      `SELECT finished_at / 60000 AS minute, status, count(*)::int AS count FROM ${this.#t.jobs}
        WHERE finished_at >= $1 ${owner != null ? 'AND owner = $2' : ''} GROUP BY 1, 2`,
      owner != null ? [since, owner] : [since],
    );
    return rows.map((r) => ({ minute: Number(r.minute), status: r.status, count: Number(r.count) }));
  }

  async cleanup(p: CleanupParams): Promise<string[]> {
    const finished = p.statuses.filter((s) => s === 'completed' || s === 'failed' || s === 'cancelled');
    if (finished.length === 0) return [];
    const where = `status = ANY($1::text[]) AND finished_at < $2`;
    if (p.dryRun) {
      const rows = await this.#one<{ id: string }>(`SELECT id FROM ${this.#t.jobs} WHERE ${where} ORDER BY id`, [
        finished,
        p.finishedBefore,
      ]);
      return rows.map((r) => r.id);
    }
    const rows = await this.#one<{ id: string }>(
      `WITH gone AS (DELETE FROM ${this.#t.jobs} WHERE ${where} RETURNING id),
         logs AS (DELETE FROM ${this.#t.logs} WHERE job_id IN (SELECT id FROM gone)),
         deps AS (DELETE FROM ${this.#t.deps} WHERE job_id IN (SELECT id FROM gone))
       SELECT id FROM gone ORDER BY id`,
      [finished, p.finishedBefore],
    );
    return rows.map((r) => r.id);
  }

  // ---- workers and agents ---------------------------------------------------------------------

  async registerWorker(w: WorkerRegistration): Promise<void> {
    await this.#tx(async (c) => {
      const now = this.now();
      // Rows of workers silent for a day are history nobody reads.
      await this.#q(`DELETE FROM ${this.#t.workers} WHERE heartbeat_at < $1`, [now - 86_400_000], c);
      await this.#q(
        `INSERT INTO ${this.#t.workers} (id, name, host, pid, agents, types, concurrency, started_at, heartbeat_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, host = excluded.host, pid = excluded.pid,
           agents = excluded.agents, types = excluded.types, concurrency = excluded.concurrency,
           started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at`,
        [w.id, w.name, w.host, w.pid, JSON.stringify(w.agents), w.types ? JSON.stringify(w.types) : null, w.concurrency, now],
        c,
      );
    });
    this.#notifySoon();
  }

  async workerHeartbeat(id: string): Promise<void> {
    await this.#one(`UPDATE ${this.#t.workers} SET heartbeat_at = $1 WHERE id = $2`, [this.now(), id]);
  }

  async removeWorker(id: string): Promise<void> {
    await this.#one(`DELETE FROM ${this.#t.workers} WHERE id = $1`, [id]);
    this.#notifySoon();
  }

  async listWorkers(aliveWithinMs: number): Promise<WorkerInfo[]> {
    const rows = await this.#one<{
      id: string;
      name: string;
      host: string;
      pid: number;
      agents: string;
      types: string | null;
      concurrency: number;
      started_at: string;
      heartbeat_at: string;
    }>(`SELECT * FROM ${this.#t.workers} WHERE heartbeat_at >= $1 ORDER BY started_at`, [this.now() - aliveWithinMs]);
    const running = new Map<string, string[]>();
    for (const r of await this.#one<{ id: string; worker_id: string }>(
      `SELECT id, worker_id FROM ${this.#t.jobs} WHERE status = 'running' ORDER BY id`,
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
    refuseNul('agent', agent);
    await this.#tx(async (c) => {
      await this.#q(
        `INSERT INTO ${this.#t.agents} (name, max_concurrency, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET max_concurrency = excluded.max_concurrency, updated_at = excluded.updated_at`,
        [agent, max, this.now()],
        c,
      );
      // Every process drops its cached list of capped agents; a lifted cap may free work.
      await this.#notify(c, 'caps');
    });
    this.#cappedAt = -Infinity;
  }

  async agentConcurrency(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of await this.#one<{ name: string; max_concurrency: number }>(
      `SELECT name, max_concurrency FROM ${this.#t.agents} WHERE max_concurrency IS NOT NULL ORDER BY name`,
    )) {
      out[r.name] = Number(r.max_concurrency);
    }
    return out;
  }

  // ---- schedules (see schedules.ts) -------------------------------------------------------------

  getSchedule(idOrName: string): Promise<ScheduleRecord | null> {
    return this.#schedules.get(idOrName);
  }

  listSchedules(): Promise<ScheduleRecord[]> {
    return this.#schedules.list();
  }

  saveSchedules(changes: ScheduleChanges): Promise<void> {
    return this.#schedules.save(changes);
  }

  dueSchedules(now: number, limit: number): Promise<ScheduleRecord[]> {
    return this.#schedules.due(now, limit);
  }

  nextScheduleRunAt(): Promise<number | null> {
    return this.#schedules.nextRunAt();
  }

  fireSchedule(firing: ScheduleFiring): Promise<FiringResult> {
    return this.#schedules.fire(firing);
  }

  // ---- change notifications -------------------------------------------------------------------

  /** Whether the LISTEN connection is up (for health checks and tests). */
  get listening(): boolean {
    return this.#listener?.connected ?? false;
  }

  // ---- events (job events are written by triggers: see events.ts) ----------------------------

  appendEvents(events: readonly NewEvent[]): Promise<StoredEvent[]> {
    return this.#events.append(events);
  }

  listEvents(filter: EventFilter): Promise<StoredEvent[]> {
    return this.#events.list(filter);
  }

  lastEventId(): Promise<number> {
    return this.#events.lastId();
  }

  countEvents(after: number, upTo: number, types: readonly string[]): Promise<Array<{ type: string; target: string | null; n: number }>> {
    return this.#events.count(after, upTo, types);
  }

  /** Event retention, and the appends' ids past any retry with it. */
  async deleteEvents(before: number): Promise<number> {
    await this.#one(`DELETE FROM ${this.#t.writes} WHERE id < $1`, [oldWritesBefore(Date.now())]);
    return this.#events.delete(before);
  }

  // ---- rate limits and usage (their SQL is in limits.ts) -------------------------------------

  setRateLimit(key: string, limit: { max: number; perMs: number } | null): Promise<void> {
    return this.#limits.setRateLimit(key, limit);
  }

  listRateLimits(): Promise<RateLimitRecord[]> {
    return this.#limits.list();
  }

  takeRateSlots(requests: ReadonlyArray<readonly string[]>): Promise<RateSlot[]> {
    return this.#limits.take(requests);
  }

  pauseRateKeys(keys: readonly string[], until: number): Promise<void> {
    return this.#limits.pause(keys, until);
  }

  deferJob(lease: Lease, runAt: number): Promise<boolean> {
    return this.#limits.defer(lease, runAt);
  }

  addUsage(lease: Lease, usage: UsageRecord): Promise<boolean> {
    return this.#limits.addUsage(lease, usage);
  }

  jobUsage(jobId: string, options: { tree: boolean }): Promise<UsageTotals> {
    return this.#limits.jobUsage(jobId, options.tree);
  }

  usageBy(group: 'agent' | 'owner', owner?: string): Promise<Array<UsageTotals & { name: string | null }>> {
    return this.#limits.usageBy(group, owner);
  }

  budgetChain(jobId: string): Promise<Array<{ jobId: string; budget: string }>> {
    return this.#limits.budgetChain(jobId);
  }

  // ---- durable steps, suspended jobs, approvals (their SQL is in durable.ts) -----------------

  getSteps(jobId: string): Promise<Map<string, string>> {
    return this.#durable.getSteps(jobId);
  }

  saveStep(lease: Lease, name: string, value: string): Promise<boolean> {
    return this.#durable.saveStep(lease, name, value);
  }

  suspendJob(lease: Lease, waitFor: string, approval?: NewApproval): Promise<boolean> {
    return this.#durable.suspend(lease, waitFor, approval);
  }

  listWaits(): Promise<WaitingJob[]> {
    return this.#durable.listWaits();
  }

  resumeWait(id: string, waitFor: string, step: { name: string; value: string }): Promise<boolean> {
    return this.#durable.resumeWait(id, waitFor, step);
  }

  failWait(id: string, waitFor: string, error: string, approval?: ApprovalDecision): Promise<boolean> {
    return this.#durable.failWait(id, waitFor, error, approval);
  }

  getApproval(id: string): Promise<ApprovalRecord | null> {
    return this.#durable.getApproval(id);
  }

  listApprovals(filter: ApprovalFilter): Promise<ApprovalRecord[]> {
    return this.#durable.listApprovals(filter);
  }

  decideApproval(
    decision: ApprovalDecision,
    then: { waitFor: string; step: { name: string; value: string } } | { waitFor: string; error: string },
  ): Promise<ApprovalRecord | null> {
    return this.#durable.decideApproval(decision, then);
  }

  // ---- users and tokens (their SQL is in users.ts) --------------------------------------------

  createUser(name: string, role: UserRole): Promise<UserRecord> {
    return this.#users.create(name, role);
  }

  getUser(name: string): Promise<UserRecord | null> {
    return this.#users.get(name);
  }

  listUsers(): Promise<UserRecord[]> {
    return this.#users.list();
  }

  removeUser(name: string): Promise<boolean> {
    return this.#users.remove(name);
  }

  addToken(token: TokenRecord): Promise<boolean> {
    return this.#users.addToken(token);
  }

  findToken(hash: string): Promise<{ tokenId: string; user: string; role: UserRole } | null> {
    return this.#users.findToken(hash);
  }

  revokeTokens(user: string, tokenId?: string): Promise<number> {
    return this.#users.revoke(user, tokenId);
  }

  onChange(listener: () => void): () => void {
    if (this.#closed) return () => {};
    this.#listeners.add(listener);
    if (!this.#listener) {
      this.#listener = new ChangeListener({
        config: this.#pool.options as pg.ClientConfig,
        channel: `"${this.#channel}"`,
        onSignal: (payload) => {
          if (payload === 'caps') this.#cappedAt = -Infinity;
          if (payload === ACTIVITY) {
            // Completions and progress elsewhere: told at most every 100 ms, so busy
            // workers in other processes do not wake each other for every batch.
            this.#activityTimer ??= setTimeout(() => {
              this.#activityTimer = undefined;
              for (const l of this.#listeners) l();
            }, ACTIVITY_COALESCE_MS);
            return;
          }
          for (const l of this.#listeners) l();
        },
      });
    }
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0 && this.#listener) {
        void this.#listener.stop();
        this.#listener = undefined;
      }
    };
  }

  /** Resolves once the LISTEN connection has made its first attempt (tests wait for it). */
  async listenerReady(): Promise<void> {
    await this.#listener?.ready;
  }
}
