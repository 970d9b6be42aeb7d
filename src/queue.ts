/**
 * The queue: submit, read, cancel, retry and tidy jobs. A thin, validating
 * layer over a Store; the worker (worker.ts) runs what it holds.
 */
import { EventEmitter } from 'node:events';
import { idFactory } from './ids.ts';
import type { Pool } from 'pg';
import { Nap, systemClock, type Clock } from './clock.ts';
import { openStore } from './connect.ts';
import { AmbiguousIdError, ConflictError, NotFoundError, SchemaBehindError, ValidationError, WaitTimeoutError } from './errors.ts';
import {
  DEFAULT_BACKOFF,
  FINISHED_STATUSES,
  isFinished,
  resolveStatus,
  STATUSES,
  type BackoffOptions,
  type Job,
  type JobLog,
  type JobStatus,
} from './job.ts';
import {
  encodeJson,
  parseOrThrow,
  refSchema,
  resolveBackoff,
  submitSchema,
  toMillis,
  type GraphJobInput,
  type SubmitInput,
} from './schema.ts';
import type { JobFilter, NewJob, RescueResult, Store, WorkerInfo } from './store/store.ts';
import { Schedules } from './schedules/schedules.ts';
import { Events, toEvent, type AgentqEvent } from './events.ts';
import { Users } from './users.ts';
import { Approvals } from './durable.ts';
import { Limits } from './limits.ts';

export interface QueueOptions {
  /** The clock for leases, run-at and backoff. (Default: the store's — the database server's on PostgreSQL) */
  clock?: Clock;
  /** Largest payload, metadata or instructions, in bytes of JSON. (Default: 1 MiB) */
  maxPayloadBytes?: number;
  /** maxAttempts of a job that does not say. (Default: 3) */
  defaultMaxAttempts?: number;
  /** Backoff of a job that does not say. (Default: exponential from 1 s, up to 1 h, with jitter) */
  defaultBackoff?: Partial<BackoffOptions>;
  /** A running job is hung when its last heartbeat is older than this. (Default: 5 minutes) */
  hungTimeoutMs?: number;
  /** Events older than this are deleted by the workers. (Default: 7 days) */
  eventRetentionMs?: number;
  /** Apply migrations when opening. (Default: true) */
  migrate?: boolean;
  /** PostgreSQL: an application's own `pg.Pool` to work through (agentq never closes it); no URL needed. */
  pool?: Pool;
  /** PostgreSQL: the schema agentq's tables live in. (Default: the URL's `?schema=`, then `agentq`) */
  schema?: string;
}

export interface ListOptions {
  /** Statuses, or the seeds' words for them (`queued`, `active`, `success`, ...). */
  status?: string | readonly string[];
  agent?: string | readonly string[];
  type?: string | readonly string[];
  owner?: string | readonly string[];
  tag?: string;
  parentId?: string;
  scheduleId?: string;
  /** Only jobs whose id starts with this (case does not matter). */
  idPrefix?: string;
  /** The `nextCursor` of the previous page. */
  cursor?: string;
  /** Page size. (Default: 50, at most 1000) */
  limit?: number;
  /** Newest first (`desc`, the default) or oldest first. */
  order?: 'asc' | 'desc';
}

export interface JobTree {
  job: Job;
  children: JobTree[];
}

export interface JobPage {
  jobs: Job[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

export interface Stats {
  total: number;
  byStatus: Record<JobStatus, number>;
  byAgent: Record<string, Record<JobStatus, number> & { total: number }>;
}

/** Jobs finished per minute, oldest minute first. */
export interface Throughput {
  /** The first minute's start (epoch ms). */
  since: number;
  minutes: { at: number; completed: number; failed: number; cancelled: number }[];
}

export interface CleanupOptions {
  /** Only jobs that finished longer ago than this. (Default: 30 days) */
  olderThanMs?: number;
  /** Which finished statuses. (Default: completed, failed, cancelled) */
  status?: string | readonly string[];
  /** List what would go, delete nothing. */
  dryRun?: boolean;
}

export interface CleanupResult {
  dryRun: boolean;
  count: number;
  ids: string[];
}

/** What happens inside the queue object, for workers in the same process. */
interface LocalEvents {
  submitted: [agents: Set<string>];
  /** `force`: the cancel was a `kill --force` (no grace period for subprocesses). */
  cancelled: [ids: string[], options?: { force?: boolean }];
}

const DEFAULT_PAYLOAD_LIMIT = 1024 * 1024;
const newId = idFactory();

function list<T extends string>(value: T | readonly T[] | undefined): readonly T[] | undefined {
  if (value === undefined) return undefined;
  return typeof value === 'string' ? [value] : value;
}

export function emptyCounts(): Record<JobStatus, number> {
  return Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
}

export class Queue {
  readonly store: Store;
  readonly clock: Clock;
  readonly maxPayloadBytes: number;
  readonly eventRetentionMs: number;
  readonly hungTimeoutMs: number;
  readonly #defaultMaxAttempts: number;
  readonly #defaultBackoff: BackoffOptions;
  /** @internal Wakes workers of this process at once; other processes hear the store. */
  readonly local = new EventEmitter<LocalEvents>();

  constructor(store: Store, options: QueueOptions = {}) {
    this.store = store;
    this.clock = options.clock ?? (store.engine === 'sqlite' ? systemClock : { now: () => store.now() });
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_PAYLOAD_LIMIT;
    this.eventRetentionMs = options.eventRetentionMs ?? 7 * 86_400_000;
    this.hungTimeoutMs = options.hungTimeoutMs ?? 300_000;
    this.#defaultMaxAttempts = options.defaultMaxAttempts ?? 3;
    this.#defaultBackoff = { ...DEFAULT_BACKOFF, ...options.defaultBackoff };
    this.local.setMaxListeners(0);
  }

  /** Opens (and migrates) the database a connection string names. */
  static async open(url?: string, options: QueueOptions = {}): Promise<Queue> {
    const store = await openStore(url, { clock: options.clock, pool: options.pool, schema: options.schema });
    try {
      if (options.migrate !== false) await store.migrate();
      else {
        // Not migrating here: refuse a schema this code would misread, and say what to do.
        const { current, latest } = await store.schemaVersion();
        if (current < latest) throw new SchemaBehindError(current, latest);
      }
    } catch (error) {
      await store.close().catch(() => {});
      throw error;
    }
    return new Queue(store, options);
  }

  #closed = false;
  /** Whether close() was called: loops still running on this queue (workers, schedulers) then go quiet. */
  get closed(): boolean {
    return this.#closed;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.local.removeAllListeners();
    await this.store.close();
  }

  #events: Events | undefined;
  /** The event bus: every job change, and what applications publish. */
  get events(): Events {
    return (this.#events ??= new Events(this.store, { maxPayloadBytes: this.maxPayloadBytes }));
  }

  #limits: Limits | undefined;
  /** Rate limits, usage and budgets. */
  get limits(): Limits {
    return (this.#limits ??= new Limits(this));
  }

  #approvals: Approvals | undefined;
  /** Approval gates of waiting jobs: list, show, approve, reject. */
  get approvals(): Approvals {
    return (this.#approvals ??= new Approvals(this));
  }

  #users: Users | undefined;
  /** Users and their API tokens (for the REST API). */
  get users(): Users {
    return (this.#users ??= new Users(this.store));
  }

  #schedules: Schedules | undefined;
  /** Recurring jobs: cron and interval schedules, and their executions. */
  get schedules(): Schedules {
    return (this.#schedules ??= new Schedules(this));
  }

  /** @internal A validated job with defaults applied, ready for the store (schedules submit through their firing transaction). */
  prepareJob(input: SubmitInput, field = ''): NewJob {
    return this.#prepare(input, field);
  }

  // ---- submit -------------------------------------------------------------------------------

  #prepare(input: unknown, field: string): NewJob {
    const v = parseOrThrow(submitSchema, input, field);
    const at = (name: string) => (field ? `${field}.${name}` : name);
    if (v.runAt !== undefined && v.delayMs !== undefined) {
      throw new ValidationError(at('delayMs'), 'give runAt or delayMs, not both');
    }
    const now = this.store.now();
    const runAt = v.runAt !== undefined ? toMillis(v.runAt) : now + (v.delayMs ?? 0);
    const instructions = v.instructions ?? '';
    const backoff = resolveBackoff(v.backoff, this.#defaultBackoff);
    const payload = v.payload ?? null;
    const metadata = v.metadata ?? {};
    const tags = v.tags ?? [];
    if (instructions.length > this.maxPayloadBytes) encodeJson(at('instructions'), instructions, this.maxPayloadBytes);
    return {
      id: newId(),
      agent: v.agent,
      type: v.type ?? 'default',
      instructions,
      payload: encodeJson(at('payload'), payload, this.maxPayloadBytes),
      metadata: encodeJson(at('metadata'), metadata, this.maxPayloadBytes),
      tags: JSON.stringify(tags),
      owner: v.owner ?? null,
      priority: v.priority ?? 0,
      maxAttempts: v.maxAttempts ?? this.#defaultMaxAttempts,
      backoff: JSON.stringify(backoff),
      timeoutMs: v.timeoutMs ?? null,
      runAt,
      key: v.key ?? null,
      parentId: v.parentId ?? null,
      dependsOn: v.dependsOn ?? [],
      scheduleId: v.scheduleId ?? null,
      rateKey: v.rateKey ?? null,
      budget: v.budget == null ? null : JSON.stringify(v.budget),
      decoded: { payload, metadata, tags, backoff },
    };
  }

  /**
   * Submits one job. With a `key` that an existing job has, returns that job
   * instead (idempotent submit). Bad input throws a ValidationError naming the
   * field, or PayloadTooLargeError, and stores nothing.
   */
  async submit(input: SubmitInput): Promise<Job> {
    const [inserted] = await this.store.insertJobs([this.#prepare(input, '')]);
    if (inserted.created) this.local.emit('submitted', new Set([inserted.job.agent]));
    return inserted.job;
  }

  /** Submits many jobs in one transaction: all of them, or (on bad input) none. */
  async submitMany(inputs: readonly SubmitInput[]): Promise<Job[]> {
    if (!Array.isArray(inputs)) throw new ValidationError('jobs', 'expected an array of jobs');
    const prepared = inputs.map((input, i) => this.#prepare(input, String(i)));
    let inserted;
    try {
      inserted = await this.store.insertJobs(prepared);
    } catch (error) {
      if (error instanceof ValidationError && error.index !== undefined) throw error.within(String(error.index));
      throw error;
    }
    const agents = new Set(inserted.filter((r) => r.created).map((r) => r.job.agent));
    if (agents.size > 0) this.local.emit('submitted', agents);
    return inserted.map((r) => r.job);
  }

  /**
   * Submits a graph of jobs in one transaction. Each job has a `ref`; its
   * `dependsOn` and `parentId` may name other jobs of the graph by ref, or
   * stored jobs by id. A cycle, a duplicate ref, an unknown id (or another
   * owner's job) refuses the whole graph with an error that names it, and
   * stores nothing. Returns the jobs in the order given.
   */
  async submitGraph(inputs: readonly GraphJobInput[]): Promise<Job[]> {
    if (!Array.isArray(inputs)) throw new ValidationError('jobs', 'expected an array of jobs');
    if (inputs.length === 0) return [];
    if (inputs.length > 10_000) throw new ValidationError('jobs', 'a graph has at most 10000 jobs');
    const byRef = new Map<string, number>();
    const prepared = inputs.map((input, i) => {
      if (input === null || typeof input !== 'object' || Array.isArray(input)) {
        throw new ValidationError(String(i), 'expected a job object');
      }
      const { ref, ...job } = input;
      const r = parseOrThrow(refSchema, ref, `${i}.ref`);
      if (byRef.has(r)) throw new ValidationError(`${i}.ref`, `${r} is used by job ${byRef.get(r)} too; refs must be unique`);
      byRef.set(r, i);
      return this.#prepare(job, String(i));
    });
    const refs = [...byRef.keys()];
    // Edges within the graph, by index: what each job needs stored before it.
    const needs = prepared.map((job) => {
      const edges: number[] = [];
      job.dependsOn = job.dependsOn.map((dep) => {
        const j = byRef.get(dep);
        if (j === undefined) return dep;
        edges.push(j);
        return prepared[j].id;
      });
      if (job.parentId != null) {
        const j = byRef.get(job.parentId);
        if (j !== undefined) {
          edges.push(j);
          job.parentId = prepared[j].id;
        }
      }
      return edges;
    });
    const order = topologicalOrder(needs, (cycle) => {
      const names = cycle.map((i) => refs[i]);
      throw new ValidationError(`${cycle[0]}.dependsOn`, `the graph has a cycle: ${names.join(' → ')}`, { cycle: names });
    });
    let inserted;
    try {
      inserted = await this.store.insertJobs(order.map((i) => prepared[i]));
    } catch (error) {
      if (error instanceof ValidationError && error.index !== undefined) throw error.within(String(order[error.index]));
      throw error;
    }
    const out = new Array<Job>(inputs.length);
    order.forEach((i, k) => (out[i] = inserted[k].job));
    const agents = new Set(inserted.filter((r) => r.created).map((r) => r.job.agent));
    if (agents.size > 0) this.local.emit('submitted', agents);
    return out;
  }

  // ---- read ---------------------------------------------------------------------------------

  /**
   * A job and its delegation tree: its children, recursively, oldest first.
   * (Each job's `dependsOn` names what it waits for.)
   */
  async tree(idOrPrefix: string, options: { maxDepth?: number } = {}): Promise<JobTree> {
    const root = await this.get(idOrPrefix);
    const maxDepth = options.maxDepth ?? 100;
    const seen = new Set<string>([root.id]);
    const grow = async (job: Job, depth: number): Promise<JobTree> => {
      const node: JobTree = { job, children: [] };
      if (depth >= maxDepth) return node;
      for (const child of await this.store.listChildren(job.id)) {
        if (seen.has(child.id)) continue;
        seen.add(child.id);
        node.children.push(await grow(child, depth + 1));
      }
      return node;
    };
    return grow(root, 0);
  }

  /** The full id for an id or an unambiguous prefix of one. */
  async resolveId(idOrPrefix: string): Promise<string> {
    return (await this.#find(idOrPrefix)).id;
  }

  /**
   * One job by id or unambiguous prefix; NotFoundError when there is none.
   * With `owner`, only that owner's jobs count: another's is not found.
   */
  async get(idOrPrefix: string, options: { owner?: string } = {}): Promise<Job> {
    return this.#find(idOrPrefix, options.owner);
  }

  async #find(idOrPrefix: string, owner?: string): Promise<Job> {
    const text = String(idOrPrefix ?? '').trim();
    if (text === '') throw new ValidationError('id', 'must not be empty');
    // No id holds a control character (and PostgreSQL text cannot hold NUL).
    if (/[\u0000-\u001f]/.test(text)) throw new NotFoundError('job', JSON.stringify(text));
    const exact = await this.store.getJob(text);
    if (exact) {
      if (owner === undefined || exact.owner === owner) return exact;
      throw new NotFoundError('job', text);
    }
    // A range on the primary key: a prefix costs an index seek, and the one match is read with it.
    const matches = await this.store.listJobs({ idPrefix: text.toUpperCase(), owner: owner === undefined ? undefined : [owner], order: 'asc', limit: 6 });
    if (matches.length === 1) return matches[0];
    if (matches.length === 0) throw new NotFoundError('job', text);
    throw new AmbiguousIdError(text, matches.map((j) => j.id));
  }

  /** A page of jobs, newest first, with a keyset cursor for the next page. */
  async list(options: ListOptions = {}): Promise<JobPage> {
    const limit = options.limit ?? 50;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      throw new ValidationError('limit', 'must be an integer from 1 to 1000');
    }
    const status = list(options.status)?.map((word) => {
      const s = resolveStatus(word);
      if (!s) throw new ValidationError('status', `unknown status ${word}; use one of ${STATUSES.join(', ')}`);
      return s;
    });
    const filter: JobFilter = {
      status,
      agent: list(options.agent),
      type: list(options.type),
      owner: list(options.owner),
      tag: options.tag,
      parentId: options.parentId,
      scheduleId: options.scheduleId,
      idPrefix: options.idPrefix == null || options.idPrefix.trim() === '' ? undefined : options.idPrefix.trim().toUpperCase(),
      after: options.cursor,
      order: options.order,
      limit: limit + 1,
    };
    const jobs = await this.store.listJobs(filter);
    const more = jobs.length > limit;
    if (more) jobs.length = limit;
    return { jobs, nextCursor: more ? jobs[jobs.length - 1].id : null };
  }

  async logs(idOrPrefix: string, options: { after?: number; limit?: number } = {}): Promise<JobLog[]> {
    const id = await this.resolveId(idOrPrefix);
    return this.store.listLogs(id, options.after ?? 0, Math.min(options.limit ?? 1000, 10_000));
  }

  /** Counts per status and per agent: of every job, or of one owner's. */
  async stats(options: { owner?: string } = {}): Promise<Stats> {
    const stats: Stats = { total: 0, byStatus: emptyCounts(), byAgent: {} };
    for (const row of await this.store.stats(options.owner)) {
      const count = Number(row.count);
      stats.total += count;
      stats.byStatus[row.status] += count;
      const agent = (stats.byAgent[row.agent] ??= { ...emptyCounts(), total: 0 });
      agent[row.status] += count;
      agent.total += count;
    }
    return stats;
  }

  /**
   * What happened to a job, oldest first: its events (job.created, job.started, job.failed, ...)
   * as long as the event retention kept them. Reads only the events of the job's lifetime.
   */
  async jobEvents(idOrPrefix: string, options: { limit?: number } = {}): Promise<AgentqEvent[]> {
    const job = await this.get(idOrPrefix);
    const limit = Math.min(options.limit ?? 500, 10_000);
    const from = Date.parse(job.createdAt) - 1000;
    const to = job.finishedAt ? Date.parse(job.finishedAt) + 60_000 : undefined;
    const rows = await this.store.listEvents({ after: 0, limit, jobId: job.id, createdFrom: from, createdTo: to });
    return rows.map(toEvent);
  }

  /** Jobs that finished in each of the last `minutes` minutes (this one included), per status: of every job, or of one owner's. */
  async throughput(options: { minutes?: number; owner?: string } = {}): Promise<Throughput> {
    const minutes = options.minutes ?? 60;
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > 1440) throw new ValidationError('minutes', 'must be an integer from 1 to 1440');
    const first = Math.floor(this.store.now() / 60_000) - minutes + 1;
    const out: Throughput = { since: first * 60_000, minutes: [] };
    for (let i = 0; i < minutes; i++) out.minutes.push({ at: (first + i) * 60_000, completed: 0, failed: 0, cancelled: 0 });
    for (const row of await this.store.throughput(first * 60_000, options.owner)) {
      const slot = out.minutes[row.minute - first];
      if (slot && (row.status === 'completed' || row.status === 'failed' || row.status === 'cancelled')) slot[row.status] += row.count;
    }
    return out;
  }

  /** Running jobs whose last heartbeat is older than the hung timeout. */
  async hung(options: { timeoutMs?: number } = {}): Promise<Job[]> {
    return this.store.hungJobs(options.timeoutMs ?? this.hungTimeoutMs);
  }

  /** Workers that sent a heartbeat recently. */
  async workers(options: { aliveWithinMs?: number } = {}): Promise<WorkerInfo[]> {
    return this.store.listWorkers(options.aliveWithinMs ?? 60_000);
  }

  // ---- change -------------------------------------------------------------------------------

  /**
   * Cancels a job: a blocked or pending one at once, a running one by firing its
   * handler's signal. Dependents are cancelled too. Cancelling a cancelled job
   * returns it unchanged; a completed or failed one is a ConflictError.
   * `force` asks for a hard stop: it is stored in the error (`force: true`)
   * and the handler's abort reason carries it, so a subprocess gets SIGKILL
   * without a grace period.
   */
  async cancel(idOrPrefix: string, options: { reason?: string; descendants?: boolean; force?: boolean } = {}): Promise<Job> {
    const id = await this.resolveId(idOrPrefix);
    const force = options.force === true;
    const error = JSON.stringify({ message: options.reason ?? 'cancelled by request', code: 'cancelled', ...(force ? { force } : {}) });
    const result = await this.store.cancelJob(id, error, { descendants: options.descendants === true });
    if (!result) throw new NotFoundError('job', id);
    if (result.cascaded.length > 0) this.local.emit('cancelled', result.cascaded);
    if (result.previous === 'cancelled') return result.job;
    if (result.job.status !== 'cancelled') {
      throw new ConflictError(`job ${id} is already ${result.job.status} and cannot be cancelled`, {
        status: result.job.status,
      });
    }
    this.local.emit('cancelled', [id], { force });
    return result.job;
  }

  /**
   * Runs a failed or cancelled job again. `attempts` more attempts are allowed
   * (Default: 1) on top of those spent; the count of attempts keeps growing.
   */
  async retry(idOrPrefix: string, options: { attempts?: number } = {}): Promise<Job> {
    const id = await this.resolveId(idOrPrefix);
    const extra = options.attempts ?? 1;
    if (!Number.isInteger(extra) || extra < 1) throw new ValidationError('attempts', 'must be a positive integer');
    const job = await this.store.retryJob(id, extra);
    if (!job) throw new NotFoundError('job', id);
    if (job.status === 'pending') this.local.emit('submitted', new Set([job.agent]));
    return job;
  }

  /** Deletes finished jobs (and their logs) older than a cut-off; with dryRun, only lists them. */
  async cleanup(options: CleanupOptions = {}): Promise<CleanupResult> {
    const olderThanMs = options.olderThanMs ?? 30 * 86_400_000;
    if (!Number.isFinite(olderThanMs) || olderThanMs < 0) {
      throw new ValidationError('olderThanMs', 'must be a non-negative number of milliseconds');
    }
    const statuses = (list(options.status) ?? FINISHED_STATUSES).map((word) => {
      const s = resolveStatus(word);
      if (!s || !isFinished(s)) {
        throw new ValidationError('status', `${word} is not a finished status; use completed, failed or cancelled`);
      }
      return s;
    });
    const dryRun = options.dryRun ?? false;
    const ids = await this.store.cleanup({ statuses, finishedBefore: this.store.now() - olderThanMs, dryRun });
    return { dryRun, count: ids.length, ids };
  }

  /** At most `max` jobs of `agent` run at once across every worker; null lifts the cap. */
  async setAgentConcurrency(agent: string, max: number | null): Promise<void> {
    if (max !== null && (!Number.isInteger(max) || max < 0)) {
      throw new ValidationError('max', 'must be a non-negative integer or null');
    }
    await this.store.setAgentConcurrency(agent, max);
  }

  /** Takes back running jobs whose lease expired. Workers do this on their own; tests call it after moving the clock. */
  async rescueExpired(): Promise<RescueResult> {
    const result = await this.store.rescueExpired();
    if (result.requeued.length > 0) this.local.emit('submitted', new Set(['*']));
    return result;
  }

  /** Resolves when the job has finished (completed, failed or cancelled). */
  async wait(idOrPrefix: string, options: { timeoutMs?: number; signal?: AbortSignal; pollMs?: number } = {}): Promise<Job> {
    const id = await this.resolveId(idOrPrefix);
    const deadline = options.timeoutMs == null ? Infinity : Date.now() + options.timeoutMs;
    const pollMs = options.pollMs ?? 1000;
    const nap = new Nap();
    const stop = this.store.onChange(nap.wake);
    try {
      for (;;) {
        const job = await this.store.getJob(id);
        if (!job) throw new NotFoundError('job', id);
        if (isFinished(job.status)) return job;
        options.signal?.throwIfAborted();
        const left = deadline - Date.now();
        if (left <= 0) throw new WaitTimeoutError(id, job.status, options.timeoutMs ?? 0);
        await nap.sleep(Math.min(pollMs, left), options.signal);
      }
    } finally {
      stop();
    }
  }
}

export type { SubmitInput };

/**
 * Indexes ordered so that each comes after those it needs. Calls `onCycle`
 * with the indexes of a cycle (first repeated last) when there is one.
 */
function topologicalOrder(needs: readonly number[][], onCycle: (cycle: number[]) => never): number[] {
  const state = new Uint8Array(needs.length); // 0 new, 1 on the path, 2 done
  const order: number[] = [];
  const path: number[] = [];
  const visit = (i: number): void => {
    if (state[i] === 2) return;
    if (state[i] === 1) onCycle([...path.slice(path.indexOf(i)), i]);
    state[i] = 1;
    path.push(i);
    for (const j of needs[i]) visit(j);
    path.pop();
    state[i] = 2;
    order.push(i);
  };
  for (let i = 0; i < needs.length; i++) visit(i);
  return order;
}
