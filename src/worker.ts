/**
 * The worker: claims jobs for its agents, runs their handlers, keeps their
 * leases alive, and records how each attempt ended.
 *
 * Claims and outcomes are batched: one transaction claims as many jobs as
 * there are free slots, and the outcomes of all attempts that finished in the
 * same turn of the event loop are written in one transaction.
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { monotonicFactory } from 'ulidx';
import {
  JobCancelledError,
  JobTimeoutError,
  LeaseLostError,
  ShutdownError,
  ValidationError,
} from './errors.ts';
import { backoffDelay, LOG_LEVELS, type Job, type Json, type LogLevel } from './job.ts';
import type { Queue } from './queue.ts';
import type { SubmitInput } from './schema.ts';
import { encodeJson, isJsonValue } from './schema.ts';
import type { JobState, Lease, Outcome, RateSlot } from './store/store.ts';
import type { AgentqEvent, PublishInput } from './events.ts';
import { durableContext, Suspend, WaitWatcher, type DurableContext } from './durable.ts';
import { limitContext, rateKeysOf, RetryAfterError, type LimitContext } from './limits.ts';

export interface JobContext extends DurableContext, LimitContext {
  readonly job: Job;
  /** 1 on the first run, 2 on the first retry, ... Write handlers so a second run is harmless. */
  readonly attempt: number;
  /** Fires on cancel, timeout, lost lease and shutdown; `signal.reason` says which. */
  readonly signal: AbortSignal;
  readonly workerId: string;
  /** Reports progress (0–100) and what the job is doing. */
  progress(percent: number, message?: string): Promise<void>;
  log(level: LogLevel, message: string, data?: Json): Promise<void>;
  /** Submits a child job: its parentId is this job. */
  spawn(child: Omit<SubmitInput, 'parentId'>): Promise<Job>;
  /** Publishes an event from this job (source: its agent; to everyone unless `target` names an agent). */
  publish(event: Omit<PublishInput, 'jobId' | 'owner'>): Promise<AgentqEvent>;
  /** This job's children (as spawned), oldest first, with their status and result. */
  children(): Promise<Job[]>;
  /**
   * Parks the job until every child has finished, holding no slot and no lease;
   * then the handler runs again (the attempt is not spent) and can read the
   * children's results with `children()`. Use it as `return ctx.waitForChildren()`.
   */
  waitForChildren(): Promise<never>;
}

/** Thrown by `ctx.waitForChildren()`; the worker turns it into a `waiting` job. */
class WaitForChildren {
  readonly name = 'WaitForChildren';
}

/**
 * What a handler gets beside its job. One object per attempt, its functions
 * made when read: a context of closures made every function of every
 * attempt, and most handlers use none of them. Read once, a function stays
 * tied to its attempt, so `const { progress, log } = ctx` works.
 */
class AttemptContext implements JobContext {
  readonly job: Job;
  readonly attempt: number;
  readonly workerId: string;
  readonly #queue: Queue;
  readonly #lease: Lease;
  readonly #running: Running;
  #durable: DurableContext | undefined;
  #limits: LimitContext | undefined;

  constructor(queue: Queue, running: Running) {
    this.#queue = queue;
    this.#running = running;
    this.#lease = running.lease;
    this.job = running.job;
    this.attempt = running.lease.attempt;
    this.workerId = running.lease.workerId;
  }

  get signal(): AbortSignal {
    return signalOf(this.#running);
  }

  #durableOf(): DurableContext {
    return (this.#durable ??= durableContext(this.#queue, this.job, this.#lease));
  }

  #limitsOf(): LimitContext {
    return (this.#limits ??= limitContext(this.#queue, this.job, this.#lease, (error) => abortRun(this.#running, error)));
  }

  get progress(): JobContext['progress'] {
    return async (percent, message) => {
      if (typeof percent !== 'number' || !Number.isFinite(percent) || percent < 0 || percent > 100) {
        throw new ValidationError('progress', 'must be a number from 0 to 100');
      }
      await this.#queue.store.setProgress(this.#lease, percent, message ?? null);
    };
  }

  get log(): JobContext['log'] {
    return async (level, message, data) => {
      if (!(LOG_LEVELS as readonly string[]).includes(level)) {
        throw new ValidationError('level', `must be one of ${LOG_LEVELS.join(', ')}`);
      }
      await this.#queue.store.appendLogs([
        {
          jobId: this.job.id,
          attempt: this.attempt,
          level,
          message: String(message),
          data: data === undefined ? null : encodeJson('data', data, this.#queue.maxPayloadBytes),
        },
      ]);
    };
  }

  get spawn(): JobContext['spawn'] {
    return (child) => this.#queue.submit({ owner: this.job.owner, ...child, parentId: this.job.id });
  }

  get children(): JobContext['children'] {
    return () => this.#queue.store.listChildren(this.job.id);
  }

  get publish(): JobContext['publish'] {
    return (event) => this.#queue.events.publish({ source: this.job.agent, ...event, jobId: this.job.id, owner: this.job.owner });
  }

  get waitForChildren(): JobContext['waitForChildren'] {
    return () => Promise.reject(new WaitForChildren());
  }

  get step(): JobContext['step'] {
    return (name, fn) => this.#durableOf().step(name, fn);
  }

  get state(): JobContext['state'] {
    return () => this.#durableOf().state();
  }

  get checkpoint(): JobContext['checkpoint'] {
    return (value) => this.#durableOf().checkpoint(value);
  }

  get waitForEvent(): JobContext['waitForEvent'] {
    return (pattern, options) => this.#durableOf().waitForEvent(pattern, options);
  }

  get approval(): JobContext['approval'] {
    return (request) => this.#durableOf().approval(request);
  }

  get usage(): JobContext['usage'] {
    return (usage) => this.#limitsOf().usage(usage);
  }

  get remainingBudget(): JobContext['remainingBudget'] {
    return () => this.#limitsOf().remainingBudget();
  }

  get retryAfter(): JobContext['retryAfter'] {
    return (ms) => this.#limitsOf().retryAfter(ms);
  }
}

/** A handler returns the job's result (any JSON value; undefined is stored as null). */
export type Handler = (job: Job, ctx: JobContext) => unknown;

/** Per agent, one handler, or one per job type (`'*'` for the other types). */
export type Handlers = Record<string, Handler | Record<string, Handler>>;

export interface WorkerOptions {
  handlers: Handlers;
  /** Serve only these agents. (Default: every agent in `handlers`) */
  agents?: readonly string[];
  /** Serve only jobs of these types. (Default: all types) */
  types?: readonly string[];
  /** Jobs run at once by this worker. (Default: 10) */
  concurrency?: number;
  /** How long a claim is held without a heartbeat. (Default: 30000 ms) */
  leaseMs?: number;
  /** How often leases are renewed. (Default: leaseMs / 3) */
  heartbeatIntervalMs?: number;
  /** How often the worker looks for work when nothing woke it. (Default: 1000 ms) */
  pollIntervalMs?: number;
  /** How often expired leases of any worker are taken back. (Default: leaseMs / 2, at most 15000 ms) */
  rescueIntervalMs?: number;
  /** On stop, how long running jobs may take to finish before they are aborted and handed back. (Default: 10000 ms) */
  shutdownGraceMs?: number;
  /** A readable name for listings. (Default: host:pid) */
  name?: string;
  /** Randomness for backoff jitter. (Default: Math.random) */
  random?: () => number;
  /** How often jobs waiting for an event or a decision are looked at when nothing woke the worker. (Default: pollIntervalMs, at most 1000 ms) */
  waitCheckMs?: number;
  /**
   * At most this many jobs claimed ahead of free slots. When jobs take
   * milliseconds, the worker claims the next ones while these run, instead
   * of waiting for a claim between them. It holds what its slots get through
   * in about 10 ms (judged from how long its jobs have taken), so slow jobs
   * are never claimed ahead, and no more than it starts in 50 ms at its
   * recent rate; a job held longer than a quarter of the lease
   * (at most 1 s) is handed back unspent, for any worker to take.
   * (Default: 16 × concurrency on PostgreSQL, 8 × on SQLite; 0 turns it off)
   */
  prefetch?: number;
}

/**
 * Jobs a worker may hold ahead, per slot, by default. A PostgreSQL claim
 * is a round trip with a fixed cost on the server, which larger batches
 * spread thinner; a SQLite claim is cheap, and a worker that holds fewer
 * keeps its memory smaller.
 */
const PREFETCH_PER_SLOT = { sqlite: 8, postgres: 16 } as const;

/** A held job is looked at for cancels made elsewhere once held this long. */
const HELD_LOOK_AFTER_MS = 100;

/** Jobs claimed ahead should wait about this long for a slot. */
const AHEAD_WAIT_MS = 10;
/**
 * ... and a worker holds no more than it starts in this long, so a job held
 * ahead waits no longer than that for a slot while other workers might be
 * free to run it. At 20 ms, four worker processes on one PostgreSQL server
 * claimed batches less than half the size, and the server's fixed cost per
 * claim showed (22,300 against 24,800 no-op jobs/s, with one outcome write).
 */
const AHEAD_RATE_MS = 50;
/** ... though it may always hold this many (or one per slot, if more). */
const AHEAD_AT_LEAST = 8;

export interface WorkerEvents {
  started: [];
  stopped: [];
  'job:start': [job: Job];
  'job:complete': [job: Job, result: Json];
  'job:retry': [job: Job, error: Error, runAt: number];
  'job:fail': [job: Job, error: Error];
  /** The attempt ended without a write: cancelled, lease lost, or its write was refused. */
  'job:dropped': [job: Job, reason: Error];
  'job:release': [job: Job];
  /** The handler parked the job: until its children finish, an event comes or a person decides. */
  'job:wait': [job: Job];
  /** Put back unspent, due at `runAt`: a rate limit was full, or the handler asked to retry after a while. */
  'job:deferred': [job: Job, runAt: number, reason: string];
  error: [error: unknown];
}

interface Running {
  job: Job;
  lease: Lease;
  /** Why it was aborted (cancel, timeout, lost lease, shutdown); unset while it may run on. */
  reason?: Error;
  /** The controller of its signal, made when its handler first reads `ctx.signal`. */
  controller?: AbortController;
  done: Promise<void>;
  /** Its index in the running set; -1 once it has left. */
  slot: number;
  /** Ends the wait for the handler with the abort's reason (set while the handler runs). */
  stop?: (reason: unknown) => void;
  /** Its handler is done (its outcome may still be being written). */
  settled?: boolean;
}

/** Whether the stored state of a job still is this attempt, running under this lease. */
function stillHolds(state: JobState | undefined, lease: Lease): boolean {
  return state != null && state.status === 'running' && state.workerId === lease.workerId && state.attempt === lease.attempt;
}

/** Aborts an attempt (the first reason stands): its signal fires and the worker stops waiting for its handler. */
function abortRun(r: Running, reason: Error): void {
  r.reason ??= reason;
  r.controller?.abort(r.reason);
  r.stop?.(r.reason);
}

/** An attempt's signal: made on first read (most handlers never read it), aborted if the attempt already is. */
function signalOf(r: Running): AbortSignal {
  if (!r.controller) {
    r.controller = new AbortController();
    if (r.reason) r.controller.abort(r.reason);
  }
  return r.controller.signal;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value != null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * The attempts a worker runs: an array with swap-removal. Not a Map: a Map
 * that entries keep entering and leaving is rehashed into a new table every
 * few dozen jobs, and V8 links each discarded table to its successor, so
 * one discarded table that reached the old generation keeps every later
 * table, and every job they held, alive until the next full collection —
 * the young generation then grows to its maximum and the old one fills.
 */
class RunningSet {
  readonly #items: Running[] = [];

  get size(): number {
    return this.#items.length;
  }

  add(r: Running): void {
    r.slot = this.#items.push(r) - 1;
  }

  delete(r: Running): void {
    const items = this.#items;
    if (r.slot < 0 || items[r.slot] !== r) return;
    const last = items.pop()!;
    if (last !== r) {
      items[r.slot] = last;
      last.slot = r.slot;
    }
    r.slot = -1;
  }

  has(r: Running): boolean {
    return r.slot >= 0 && this.#items[r.slot] === r;
  }

  /** A copy, for callers that await while they go through it. */
  list(): Running[] {
    return this.#items.slice();
  }

  /** Without a copy: aborting one removes nothing at once (that happens once its run settles). */
  forEach(fn: (r: Running) => void): void {
    for (const r of this.#items) fn(r);
  }
}

/** An attempt's outcome waiting for its (batched) write. */
interface PendingOutcome {
  outcome: Outcome;
  job: Job;
  error?: Error;
  resolve: (took: boolean) => void;
}

const newWorkerId = monotonicFactory();

export function errorToJson(error: unknown): Record<string, Json> {
  if (error instanceof Error) {
    const out: Record<string, Json> = { message: error.message, name: error.name };
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string') out.code = code;
    // Plain-JSON details (a command agent's exit code, signal and stderr tail) are kept.
    const details = (error as { details?: unknown }).details;
    if (details !== null && typeof details === 'object' && !Array.isArray(details) && isJsonValue(details)) {
      out.details = details as Json;
    }
    if (error.stack) out.stack = error.stack.split('\n').slice(0, 12).join('\n');
    return out;
  }
  return { message: typeof error === 'string' ? error : JSON.stringify(error) ?? String(error) };
}

export class Worker extends EventEmitter<WorkerEvents> {
  readonly queue: Queue;
  readonly agents: readonly string[];
  readonly types: readonly string[] | undefined;
  readonly concurrency: number;
  readonly leaseMs: number;
  readonly name: string;
  #id = '';
  readonly #handlers: Handlers;
  readonly #heartbeatMs: number;
  readonly #pollMs: number;
  readonly #rescueMs: number;
  readonly #graceMs: number;
  readonly #random: () => number;
  /** A cancelled attempt and its retry may overlap here. */
  readonly #running = new RunningSet();
  #outcomes: PendingOutcome[] = [];
  #flushScheduled: NodeJS.Immediate | undefined;
  /**
   * The outcome write under way. One at a time: what finishes while it
   * commits goes in the next, so a busy worker writes large batches, and an
   * idle one writes each outcome at once. With two under way, four worker
   * processes on one PostgreSQL server wrote batches half the size, and the
   * server's fixed cost per statement showed (about 23,300 against 24,100
   * no-op jobs/s).
   */
  #writing: Promise<void> | undefined;
  #claiming = false;
  /** Settles when the claim under way (if any) has returned its jobs. */
  #claimDone: Promise<void> = Promise.resolve();
  /** Claimed ahead of a free slot (see `prefetch`), oldest first, with when they were claimed. */
  #ahead: Array<{ job: Job; at: number }> = [];
  #aheadTimer: NodeJS.Timeout | undefined;
  readonly #prefetch: number;
  /** A job held ahead longer than this is handed back. */
  readonly #holdMs: number;
  /** How long a handler takes (ms, smoothed over recent jobs); unknown before the first. */
  #runMs: number | undefined;
  /** Attempts whose handler has returned and whose outcome is being written: their slot is free. */
  #settling = 0;
  #claimAgain = false;
  #state: 'idle' | 'running' | 'stopping' | 'stopped' = 'idle';
  #timers: NodeJS.Timeout[] = [];
  #nextRunTimer: NodeJS.Timeout | undefined;
  #unsubscribe: Array<() => void> = [];
  #lastLeaseCheck = 0;
  #lastRetention = 0;
  #waits: WaitWatcher | undefined;
  /** Rate-limited keys (refreshed every second): a job whose keys have none starts without a look. */
  #limitedKeys = new Set<string>();
  readonly #waitCheckMs: number;
  #stopping: Promise<void> | undefined;

  constructor(queue: Queue, options: WorkerOptions) {
    super();
    this.queue = queue;
    this.#handlers = options.handlers;
    this.agents = options.agents ?? Object.keys(options.handlers);
    for (const agent of this.agents) {
      if (!options.handlers[agent]) throw new ValidationError('agents', `no handler for agent ${agent}`);
    }
    if (this.agents.length === 0) throw new ValidationError('handlers', 'a worker needs at least one agent handler');
    this.types = options.types?.length ? options.types : undefined;
    this.concurrency = options.concurrency ?? 10;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new ValidationError('concurrency', 'must be a positive integer');
    }
    this.leaseMs = options.leaseMs ?? 30_000;
    this.#prefetch = options.prefetch ?? PREFETCH_PER_SLOT[queue.store.engine] * this.concurrency;
    if (!Number.isInteger(this.#prefetch) || this.#prefetch < 0) {
      throw new ValidationError('prefetch', 'must be a whole number, 0 or more');
    }
    this.#holdMs = Math.min(1000, Math.floor(this.leaseMs / 4));
    this.#heartbeatMs = options.heartbeatIntervalMs ?? Math.max(10, Math.floor(this.leaseMs / 3));
    this.#pollMs = options.pollIntervalMs ?? 1000;
    this.#rescueMs = options.rescueIntervalMs ?? Math.max(10, Math.min(15_000, Math.floor(this.leaseMs / 2)));
    this.#graceMs = options.shutdownGraceMs ?? 10_000;
    this.#random = options.random ?? Math.random;
    this.#waitCheckMs = options.waitCheckMs ?? Math.min(this.#pollMs, 1000);
    this.name = options.name ?? `${hostname()}:${process.pid}`;
  }

  /** This run's id; a new one each start, so an old run's leases never match a new run's. */
  get id(): string {
    return this.#id;
  }

  /** Jobs running now. */
  get running(): Job[] {
    return this.#running.list().map((r) => r.job);
  }

  #emit<K extends keyof WorkerEvents>(event: K, ...args: WorkerEvents[K]): void {
    // Work that was under way when the queue closed has nothing to report.
    if (event === 'error' && this.queue.closed) return;
    // A listener that throws must not break the worker's loop.
    try {
      (this.emit as (e: K, ...a: WorkerEvents[K]) => boolean)(event, ...args);
    } catch (error) {
      if (event !== 'error') this.#emit('error', error);
    }
  }

  async start(): Promise<this> {
    if (this.#state !== 'idle') throw new Error(`worker is ${this.#state}; create a new one to start again`);
    this.#state = 'running';
    this.#id = `${this.name}/${newWorkerId()}`;
    await this.queue.store.registerWorker({
      id: this.#id,
      name: this.name,
      host: hostname(),
      // The agentq command runs workers in a child process: it shows the pid that was started.
      pid: Number(process.env.AGENTQ_PARENT_PID) || process.pid,
      agents: this.agents,
      types: this.types ?? null,
      concurrency: this.concurrency,
    });
    const wake = () => this.#wake();
    this.queue.local.on('submitted', this.#onSubmitted);
    this.queue.local.on('cancelled', this.#onCancelled);
    this.#unsubscribe.push(
      () => this.queue.local.off('submitted', this.#onSubmitted),
      () => this.queue.local.off('cancelled', this.#onCancelled),
      this.queue.store.onChange(this.#onStoreChange),
    );
    const jump = this.queue.clock.onJump?.(() => void this.#maintain().then(wake));
    if (jump) this.#unsubscribe.push(jump);
    this.#timers.push(
      setInterval(wake, this.#pollMs),
      setInterval(() => void this.#heartbeat(), this.#heartbeatMs),
      setInterval(() => void this.#rescue(), this.#rescueMs),
    );
    await this.#refreshLimits();
    this.#timers.push(setInterval(() => void this.#refreshLimits(), 1000));
    this.#waits = new WaitWatcher(this.queue, { pollMs: this.#waitCheckMs, onError: (error) => this.#emit('error', error) });
    this.#waits.start();
    this.#emit('started');
    void this.#rescue();
    this.#wake();
    return this;
  }

  async #refreshLimits(): Promise<void> {
    try {
      this.#limitedKeys = new Set((await this.queue.store.listRateLimits()).map((r) => r.key));
    } catch (error) {
      this.#emit('error', error);
    }
  }

  /** Claimed jobs whose rate slots are being taken: they hold their worker slots meanwhile. */
  #taking = 0;

  async #startLimited(jobs: Job[], keys: string[][]): Promise<void> {
    this.#taking += jobs.length;
    let slots: RateSlot[];
    try {
      slots = await this.queue.store.takeRateSlots(keys);
    } catch (error) {
      this.#emit('error', error);
      const later = this.queue.clock.now() + 1000;
      slots = keys.map((k) => ({ ok: false as const, retryAt: later, key: k[0] }));
    } finally {
      this.#taking -= jobs.length;
    }
    const started: Job[] = [];
    for (const [i, job] of jobs.entries()) {
      const slot = slots[i];
      if (slot.ok) started.push(job);
      else void this.#defer(job, this.#leaseOf(job), slot.retryAt, `rate limit ${slot.key}`, false);
    }
    this.#start(started);
  }

  /**
   * Puts a job back unspent, due at runAt. A job that was running frees its
   * slot for the next claim while this is written (`fromRun`); one deferred
   * before it started never held one.
   */
  async #defer(job: Job, lease: Lease, runAt: number, reason: string, fromRun: boolean): Promise<void> {
    if (fromRun) {
      this.#settling++;
      this.#wake();
    }
    try {
      if (await this.queue.store.deferJob(lease, runAt)) this.#emit('job:deferred', job, runAt, reason);
      else this.#emit('job:dropped', job, new LeaseLostError());
    } catch (error) {
      this.#emit('error', error);
    } finally {
      if (fromRun) this.#settling--;
    }
  }

  #onSubmitted = (agents: Set<string>) => {
    if (agents.has('*') || this.agents.some((a) => agents.has(a))) this.#wake();
  };

  #onCancelled = (ids: string[], options?: { force?: boolean }) => {
    const cancelled = new Set(ids);
    // Held ahead, not started: the cancel has already written their end.
    this.#dropAhead(cancelled, () => new JobCancelledError({ force: options?.force }));
    this.#running.forEach((r) => {
      if (cancelled.has(r.job.id)) abortRun(r, new JobCancelledError({ force: options?.force }));
    });
  };

  #onStoreChange = () => {
    this.#wake();
    // Another process may have cancelled one of our jobs: look, at most every 100 ms.
    if ((this.#running.size === 0 && this.#ahead.length === 0) || this.#leaseCheckTimer) return;
    const wait = this.#lastLeaseCheck + 100 - Date.now();
    if (wait <= 0) {
      void this.#checkLeases().catch((error) => this.#emit('error', error));
      return;
    }
    this.#leaseCheckTimer = setTimeout(() => {
      this.#leaseCheckTimer = undefined;
      if (this.#state !== 'stopped') void this.#checkLeases().catch((error) => this.#emit('error', error));
    }, wait);
  };
  #leaseCheckTimer: NodeJS.Timeout | undefined;

  #wakeScheduled = false;
  #wake(): void {
    if (this.#wakeScheduled || this.#state !== 'running') return;
    this.#wakeScheduled = true;
    setImmediate(() => {
      this.#wakeScheduled = false;
      void this.#fill();
    });
  }

  #freeSlots(): number {
    return this.concurrency - this.#running.size + this.#settling - this.#taking;
  }

  /** How many jobs to hold ahead of free slots: what the slots get through in about 10 ms. */
  #aheadTarget(): number {
    // Jobs under a rate limit take their slots as they start: none are held for them.
    if (this.#prefetch === 0 || this.#runMs === undefined || this.#limitedKeys.size > 0) return 0;
    const bySlots = Math.floor((this.concurrency * AHEAD_WAIT_MS) / Math.max(this.#runMs, 0.01));
    // What the worker starts in AHEAD_RATE_MS at its recent rate: with quick jobs the slots could take
    // far more than the worker gets through, and the rest would only wait, holding rows.
    const byRate = Math.max(this.concurrency, AHEAD_AT_LEAST, Math.ceil(this.#startRate() * AHEAD_RATE_MS));
    return Math.min(this.#prefetch, bySlots, byRate);
  }

  /** Starts jobs held ahead in the free slots, claims for the slots and the jobs to hold, and starts what fits. */
  async #fill(): Promise<void> {
    if (this.#state !== 'running') return;
    void this.#startHeld();
    if (this.#claiming) {
      this.#claimAgain = true;
      return;
    }
    const target = this.#aheadTarget();
    const slots = this.#freeSlots();
    const limit = slots + target - this.#ahead.length;
    // Claims come in batches: when slots would go idle, or the jobs held ahead are down to half.
    if (limit <= 0 || (slots <= 0 && this.#ahead.length > target / 2)) return;
    this.#claiming = true;
    let claimed!: () => void;
    this.#claimDone = new Promise((resolve) => (claimed = resolve));
    const params = { workerId: this.#id, agents: this.agents, types: this.types, limit, leaseMs: this.leaseMs };
    const store = this.queue.store;
    // Outcomes waiting for their write go in the claim's transaction, where the engine offers it.
    const batch = store.finishAndClaimJobs && this.#outcomes.length > 0 ? this.#takeOutcomes() : [];
    let jobs: Job[] = [];
    try {
      if (batch.length > 0) {
        const done = await store.finishAndClaimJobs!(
          batch.map((b) => b.outcome),
          params,
        );
        batch.forEach((b, i) => b.resolve(done.took[i]));
        jobs = done.jobs;
      } else {
        jobs = await store.claimJobs(params);
      }
    } catch (error) {
      this.#emit('error', error);
      // Nothing of that transaction was written: the outcomes are written on their own.
      if (batch.length > 0) await this.#write(batch);
    } finally {
      this.#claiming = false;
      claimed();
    }
    // In claim order, after any held before them; a stopping worker hands them all back.
    const at = performance.now();
    for (const job of jobs) this.#ahead.push({ job, at });
    if (this.#state === 'running') await this.#startHeld();
    this.#armHold();
    if (this.#claimAgain) {
      this.#claimAgain = false;
      this.#wake();
    } else if (jobs.length < limit) {
      void this.#armNextRun();
    }
  }

  /** Starts the oldest jobs held ahead in the slots that are free. */
  async #startHeld(): Promise<void> {
    if (this.#ahead.length === 0) return;
    await this.#launch(this.#ahead.splice(0, Math.max(0, this.#freeSlots())).map((a) => a.job));
  }

  /** Starts claimed jobs; those under a rate limit once their slots are taken (one transaction for the batch). */
  async #launch(jobs: Job[]): Promise<void> {
    if (jobs.length === 0) return;
    if (this.#limitedKeys.size === 0) {
      this.#start(jobs);
      return;
    }
    const needs = jobs.map((job) => rateKeysOf(job).filter((k) => this.#limitedKeys.has(k)));
    const limited = jobs.filter((_, i) => needs[i].length > 0);
    this.#start(jobs.filter((_, i) => needs[i].length === 0));
    if (limited.length > 0) await this.#startLimited(limited, needs.filter((n) => n.length > 0));
  }

  /** Hands back, when they are due, the jobs held ahead for too long. */
  #armHold(): void {
    if (this.#aheadTimer || this.#ahead.length === 0) return;
    const wait = Math.max(0, this.#ahead[0].at + this.#holdMs - performance.now());
    this.#aheadTimer = setTimeout(() => {
      this.#aheadTimer = undefined;
      const now = performance.now();
      const fresh = this.#ahead.findIndex((a) => now - a.at < this.#holdMs);
      const stale = fresh < 0 ? this.#ahead.length : fresh;
      // Jobs took longer than judged: claim ahead again only once one has finished and shown how long.
      if (stale > 0) this.#runMs = undefined;
      void this.#handBack(stale);
      this.#armHold();
    }, wait);
  }

  /** Hands back the first `count` jobs held ahead, unspent: they never started. */
  #handBack(count = this.#ahead.length): Promise<unknown> {
    const back = this.#ahead.splice(0, count);
    return Promise.all(
      back.map((a) => this.#record({ kind: 'release', lease: this.#leaseOf(a.job) }, a.job)),
    );
  }

  /** When the earliest delayed job falls due before the next poll, wake for it. */
  async #armNextRun(): Promise<void> {
    try {
      const next = await this.queue.store.nextRunAt(this.agents);
      if (next == null || this.#state !== 'running') return;
      const delay = next - this.queue.clock.now();
      if (delay <= 0 || delay >= this.#pollMs) return;
      clearTimeout(this.#nextRunTimer);
      this.#nextRunTimer = setTimeout(() => this.#wake(), delay + 1);
    } catch (error) {
      this.#emit('error', error);
    }
  }

  #handlerFor(job: Job): Handler | undefined {
    const entry = this.#handlers[job.agent];
    if (typeof entry === 'function') return entry;
    return entry?.[job.type] ?? entry?.['*'];
  }

  /** Starts per ms, smoothed over windows of 50 ms or more. */
  #startsPerMs = 0;
  #rateFrom = 0;
  #rateStarts = 0;
  #startRate(): number {
    const elapsed = performance.now() - this.#rateFrom;
    // A window under way counts once it is long enough to mean something.
    return Math.max(this.#startsPerMs, this.#rateFrom > 0 && elapsed >= 10 ? this.#rateStarts / elapsed : 0);
  }

  #countStart(): void {
    this.#rateStarts++;
    const now = performance.now();
    if (this.#rateFrom === 0) this.#rateFrom = now;
    else if (now - this.#rateFrom >= 50) {
      this.#startsPerMs = (this.#startsPerMs + this.#rateStarts / (now - this.#rateFrom)) / 2;
      this.#rateFrom = now;
      this.#rateStarts = 0;
    }
  }

  /** This worker's claim on an attempt it claimed. */
  #leaseOf(job: Job): Lease {
    return { id: job.id, workerId: this.#id, attempt: job.attempts };
  }

  /** Starts attempts (of distinct jobs). */
  #start(jobs: readonly Job[]): void {
    if (jobs.length === 0) return;
    if (this.#running.size > 0) {
      // A new attempt proves any older one of the same job has lost its lease. One pass over
      // what runs for the whole batch: a pass per job was a tenth of a busy worker's time.
      const ids = new Set(jobs.map((job) => job.id));
      this.#running.forEach((r) => {
        if (ids.has(r.job.id) && !r.reason) abortRun(r, new LeaseLostError());
      });
    }
    for (const job of jobs) {
      this.#countStart();
      const running: Running = { job, lease: this.#leaseOf(job), done: Promise.resolve(), slot: -1 };
      this.#running.add(running);
      running.done = this.#run(running).finally(() => {
        this.#running.delete(running);
        if (this.#state === 'running') this.#wake();
      });
    }
  }

  async #run(running: Running): Promise<void> {
    const { job, lease } = running;
    this.#emit('job:start', job);
    const timer = job.timeoutMs != null ? setTimeout(() => abortRun(running, new JobTimeoutError(job.timeoutMs!)), job.timeoutMs) : undefined;
    let outcome: Outcome | null;
    let error: Error | undefined;
    let suspend: Suspend | undefined;
    let retryAfter: RetryAfterError | undefined;
    const began = performance.now();
    try {
      const handler = this.#handlerFor(job);
      if (!handler) throw new ValidationError('type', `worker has no handler for ${job.agent}/${job.type}`);
      const ctx = new AttemptContext(this.queue, running);
      if (running.reason) throw running.reason;
      const returned = handler(job, ctx);
      // Whichever comes first: the handler's result, or an abort (no listener on the signal per job).
      const value = isThenable(returned)
        ? await new Promise((resolve, reject) => {
            running.stop = reject;
            if (running.reason) reject(running.reason);
            returned.then(resolve, reject);
          })
        : returned;
      outcome = { kind: 'complete', lease, result: encodeJson('result', (value ?? null) as Json, this.queue.maxPayloadBytes) };
    } catch (thrown) {
      if (thrown instanceof WaitForChildren && !running.reason) {
        outcome = { kind: 'wait', lease };
      } else if (thrown instanceof Suspend && !running.reason) {
        suspend = thrown;
        outcome = null;
      } else if (thrown instanceof RetryAfterError && !running.reason) {
        retryAfter = thrown;
        outcome = null;
      } else if (thrown instanceof LeaseLostError) {
        // A step found the lease gone (or the handler says so).
        error = thrown;
        abortRun(running, error);
        outcome = null;
      } else {
        error = running.reason ?? toError(thrown);
        outcome = this.#outcomeOf(job, lease, error);
      }
    } finally {
      clearTimeout(timer);
      running.stop = undefined;
      running.settled = true;
      const ran = performance.now() - began;
      this.#runMs = this.#runMs === undefined ? ran : this.#runMs + (ran - this.#runMs) / 20;
    }
    if (retryAfter) {
      // Told to slow down: back later, unspent, and its keys pause for everyone meanwhile.
      const until = this.queue.clock.now() + retryAfter.retryAfterMs;
      try {
        await this.queue.store.pauseRateKeys(rateKeysOf(job), until);
      } catch (e) {
        this.#emit('error', e);
      }
      await this.#defer(job, lease, until, retryAfter.message, true);
      return;
    }
    if (suspend) {
      // Parked until an event or a decision: written at once (it may create an approval).
      this.#settling++;
      this.#wake();
      let parked = false;
      try {
        parked = await this.queue.store.suspendJob(lease, JSON.stringify(suspend.waitFor), suspend.approval);
      } catch (e) {
        this.#emit('error', e);
      } finally {
        this.#settling--;
      }
      if (!parked) {
        this.#emit('job:dropped', job, new LeaseLostError());
        return;
      }
      this.#emit('job:wait', job);
      this.#waits?.poke();
      return;
    }
    if (!outcome) {
      this.#emit('job:dropped', job, error!);
      return;
    }
    // The handler is done: its slot takes the next job while the outcome is written
    // (the job stays running, and counted against caps, until that write commits).
    this.#settling++;
    this.#wake();
    let took: boolean;
    try {
      took = await this.#record(outcome, job, error);
    } finally {
      this.#settling--;
    }
    if (!took) {
      this.#emit('job:dropped', job, new LeaseLostError());
      return;
    }
    switch (outcome.kind) {
      case 'complete':
        this.#emit('job:complete', job, JSON.parse(outcome.result) as Json);
        break;
      case 'retry':
        this.#emit('job:retry', job, error!, outcome.runAt);
        break;
      case 'fail':
        this.#emit('job:fail', job, error!);
        break;
      case 'release':
        this.#emit('job:release', job);
        break;
      case 'wait':
        this.#emit('job:wait', job);
        break;
    }
  }

  /**
   * How a thrown error or an abort ends the attempt — the one place this is decided:
   * - cancelled or lease lost: nothing to write (someone else already changed the job);
   * - shutdown: handed back, the attempt not spent;
   * - non-retryable, or attempts used up: failed;
   * - anything else (timeouts included): retried after the backoff.
   */
  #outcomeOf(job: Job, lease: Lease, error: Error): Outcome | null {
    if (error instanceof JobCancelledError || error instanceof LeaseLostError) return null;
    if (error instanceof ShutdownError) return { kind: 'release', lease };
    const encoded = JSON.stringify(errorToJson(error));
    const retryable = (error as { retryable?: unknown }).retryable !== false;
    if (!retryable || job.attempts >= job.maxAttempts) return { kind: 'fail', lease, error: encoded };
    const runAt = this.queue.clock.now() + backoffDelay(job.backoff, job.attempts, this.#random);
    return { kind: 'retry', lease, error: encoded, runAt };
  }

  /** Queues an outcome for the next batched write; resolves with whether it took. */
  #record(outcome: Outcome, job: Job, error?: Error): Promise<boolean> {
    return new Promise((resolve) => {
      this.#outcomes.push({ outcome, job, error, resolve });
      this.#scheduleFlush();
    });
  }

  /** The outcomes waiting for their write; a flush already scheduled for them is called off. */
  #takeOutcomes(): PendingOutcome[] {
    clearImmediate(this.#flushScheduled);
    this.#flushScheduled = undefined;
    const batch = this.#outcomes;
    this.#outcomes = [];
    return batch;
  }

  /** A write is due once the one under way is done. */
  #scheduleFlush(): void {
    if (!this.#writing) this.#flushScheduled ??= setImmediate(() => void this.#flush());
  }

  async #flush(): Promise<void> {
    const batch = this.#takeOutcomes();
    if (batch.length === 0) return;
    this.#writing = this.#write(batch);
    try {
      await this.#writing;
    } finally {
      this.#writing = undefined;
      if (this.#outcomes.length > 0) this.#scheduleFlush();
    }
  }

  async #write(batch: PendingOutcome[]): Promise<void> {
    let took: boolean[];
    try {
      took = await this.queue.store.finishJobs(batch.map((b) => b.outcome));
    } catch (error) {
      // The write failed (database gone?): the leases will expire and the jobs run again.
      this.#emit('error', error);
      took = batch.map(() => false);
    }
    batch.forEach((b, i) => b.resolve(took[i]));
  }

  async #heartbeat(): Promise<void> {
    try {
      await this.queue.store.workerHeartbeat(this.#id);
      await this.#checkLeases(true);
    } catch (error) {
      this.#emit('error', error);
    }
  }

  /**
   * Renews (or only checks) the leases of running jobs; aborts the jobs whose
   * lease is gone. A check also looks at held jobs (`lookAgain`: those too
   * young this time are looked at once more, later).
   */
  async #checkLeases(renew = false, lookAgain = true): Promise<void> {
    this.#lastLeaseCheck = Date.now();
    // Only attempts whose handler still runs: one whose outcome is being written needs its lease for
    // milliseconds, and renewing it would wait for the row that write holds (a heartbeat over hundreds
    // of such rows held up every outcome write behind it).
    const running = this.#running.list().filter((r) => !r.settled);
    const held = renew ? [] : this.#heldToLookAt(lookAgain);
    if (running.length === 0 && held.length === 0) return;
    let lost: Running[];
    if (renew) {
      const held = await this.queue.store.heartbeat(
        running.map((r) => r.lease),
        this.leaseMs,
      );
      // `held` names jobs, not attempts: of two attempts of one job, only the newer can hold it.
      const newest = new Map<string, number>();
      for (const r of running) newest.set(r.lease.id, Math.max(newest.get(r.lease.id) ?? 0, r.lease.attempt));
      lost = running.filter((r) => !held.has(r.lease.id) || newest.get(r.lease.id) !== r.lease.attempt);
    } else {
      // One read for the running attempts and the held jobs.
      const ids = [...running.map((r) => r.job.id), ...held.map((a) => a.job.id)];
      const states = new Map((await this.queue.store.jobStates(ids)).map((s) => [s.id, s]));
      this.#dropHeld(held, states);
      lost = running.filter((r) => !stillHolds(states.get(r.job.id), r.lease));
    }
    if (lost.length === 0) return;
    const states = new Map((await this.queue.store.jobStates(lost.map((r) => r.job.id))).map((s) => [s.id, s]));
    const forced = await this.#forcedCancels(lost.filter((r) => states.get(r.job.id)?.status === 'cancelled'));
    for (const r of lost) {
      if (!this.#running.has(r) || r.reason) continue;
      const cancelled = states.get(r.job.id)?.status === 'cancelled';
      abortRun(r, cancelled ? new JobCancelledError({ force: forced.has(r.job.id) }) : new LeaseLostError());
    }
  }

  /**
   * Held jobs to look at for cancels made elsewhere: the oldest, the next to
   * start, once held 100 ms (one held for less is like one just claimed: a
   * cancel reaches it once it runs); the rest are looked at in turn.
   */
  #heldToLookAt(lookAgain: boolean): Array<{ job: Job; at: number }> {
    const before = performance.now() - HELD_LOOK_AFTER_MS;
    const next = this.#ahead.slice(0, Math.max(32, this.concurrency));
    // Those too young this time are looked at once more when they are old enough: the change
    // that called for this look may have been a cancel of one of them.
    if (lookAgain && !this.#heldLookTimer && next.some((a) => a.at > before)) {
      this.#heldLookTimer = setTimeout(() => {
        this.#heldLookTimer = undefined;
        if (this.#state === 'running') void this.#checkLeases(false, false).catch((error) => this.#emit('error', error));
      }, HELD_LOOK_AFTER_MS);
    }
    return next.filter((a) => a.at <= before);
  }
  #heldLookTimer: NodeJS.Timeout | undefined;

  /** Of the held jobs looked at, those cancelled (or taken back) elsewhere are dropped, never started. */
  #dropHeld(looked: ReadonlyArray<{ job: Job }>, states: Map<string, JobState>): void {
    if (looked.length === 0) return;
    const gone = new Set(looked.filter((a) => !stillHolds(states.get(a.job.id), this.#leaseOf(a.job))).map((a) => a.job.id));
    // Those started meanwhile have already left the list.
    this.#dropAhead(gone, (job) => (states.get(job.id)?.status === 'cancelled' ? new JobCancelledError() : new LeaseLostError()));
  }

  /** Takes these jobs out of those held ahead, never to start, and says why (`job:dropped`). */
  #dropAhead(ids: ReadonlySet<string>, reason: (job: Job) => Error): void {
    if (ids.size === 0 || this.#ahead.length === 0) return;
    this.#ahead = this.#ahead.filter((a) => {
      if (!ids.has(a.job.id)) return true;
      this.#emit('job:dropped', a.job, reason(a.job));
      return false;
    });
  }

  /** Of these cancelled jobs, the ids cancelled with `force` (`kill --force`), read from their stored error. */
  async #forcedCancels(cancelled: readonly Running[]): Promise<Set<string>> {
    const forced = new Set<string>();
    for (const r of cancelled) {
      const job = await this.queue.store.getJob(r.job.id).catch(() => null);
      const error = job?.error as { force?: unknown } | null | undefined;
      if (error && typeof error === 'object' && error.force === true) forced.add(r.job.id);
    }
    return forced;
  }

  async #rescue(): Promise<void> {
    try {
      const { requeued } = await this.queue.store.rescueExpired();
      if (requeued.length > 0) this.#wake();
      // Event retention rides along, at most once a minute.
      const now = Date.now();
      if (now - this.#lastRetention >= 60_000) {
        this.#lastRetention = now;
        await this.queue.events.cleanup({ olderThanMs: this.queue.eventRetentionMs });
      }
    } catch (error) {
      this.#emit('error', error);
    }
  }

  /** After a clock jump: renew what we hold, take back what others lost. */
  async #maintain(): Promise<void> {
    await this.#heartbeat();
    await this.#rescue();
  }

  /**
   * Stops claiming, lets running jobs finish for the grace period, then aborts
   * the rest and hands them back without spending an attempt.
   */
  stop(options: { graceMs?: number } = {}): Promise<void> {
    this.#stopping ??= this.#shutdown(options.graceMs ?? this.#graceMs);
    return this.#stopping;
  }

  async #shutdown(graceMs: number): Promise<void> {
    if (this.#state === 'idle') {
      this.#state = 'stopped';
      return;
    }
    this.#state = 'stopping';
    clearTimeout(this.#nextRunTimer);
    // Jobs claimed ahead (by a claim under way, too) never started: they go back unspent.
    await this.#claimDone;
    clearTimeout(this.#aheadTimer);
    this.#aheadTimer = undefined;
    const handedBack = this.#handBack();
    const all = () => Promise.all(this.#running.list().map((r) => r.done));
    if (this.#running.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([all(), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
      for (const r of this.#running.list()) abortRun(r, new ShutdownError());
      await all();
    }
    while (this.#outcomes.length > 0 || this.#flushScheduled || this.#writing) {
      if (this.#writing) await this.#writing;
      else await this.#flush();
    }
    await handedBack;
    await this.#waits?.stop();
    for (const t of this.#timers) clearInterval(t);
    for (const off of this.#unsubscribe) off();
    clearTimeout(this.#leaseCheckTimer);
    this.#leaseCheckTimer = undefined;
    clearTimeout(this.#heldLookTimer);
    this.#timers = [];
    this.#unsubscribe = [];
    try {
      await this.queue.store.removeWorker(this.#id);
    } catch (error) {
      this.#emit('error', error);
    }
    this.#state = 'stopped';
    this.#emit('stopped');
  }
}

function toError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  const error = new Error(typeof thrown === 'string' ? thrown : `non-error thrown: ${JSON.stringify(thrown)}`);
  return error;
}
