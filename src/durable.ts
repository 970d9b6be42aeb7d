/**
 * Durable steps, waits for events and approval gates: how a long agent job
 * survives its worker dying and waits for the world without holding a slot.
 *
 * - `ctx.step(name, fn)` stores fn's result when it finishes; when the job
 *   runs again (a retry, a lease recovered after a crash, a resume), a
 *   finished step returns its stored result at once and fn is not called.
 * - `ctx.checkpoint(value)` / `ctx.state` keep explicit state the same way.
 * - `ctx.waitForEvent(pattern)` and `ctx.approval(request)` suspend the job:
 *   `waiting`, no lease, no slot, the attempt given back. When the event
 *   comes or a person decides, the job is pending again and its handler runs
 *   from the top: its finished steps replay from storage, and the wait
 *   returns what came. A timeout, a rejection or an expiry fails the job.
 *
 * Replay is by order: the n-th `waitForEvent` (or `approval`) of a handler
 * is stored as `$event:n` (`$approval:n`), so a handler must make its waits
 * in the same order each run — as it does when it makes them from its steps'
 * results. Step names are the handler's own and must not start with `$`.
 */
import { durationFromText } from './duration.ts';
import { idFactory } from './ids.ts';
import { AmbiguousIdError, ConflictError, LeaseLostError, NotFoundError, NonRetryableError, ValidationError } from './errors.ts';
import { compilePattern, type AgentqEvent } from './events.ts';
import type { Job, Json, WaitCondition } from './job.ts';
import type { Queue } from './queue.ts';
import { encodeJson, isJsonValue } from './schema.ts';
import { APPROVAL_STATUSES, type ApprovalRecord, type ApprovalStatus, type Lease, type NewApproval } from './store/store.ts';

const newId = idFactory();

/** Thrown inside the handler to park the job; the worker turns it into a `waiting` job. */
export class Suspend {
  readonly name = 'Suspend';
  readonly waitFor: WaitCondition;
  readonly approval: NewApproval | undefined;
  constructor(waitFor: WaitCondition, approval?: NewApproval) {
    this.waitFor = waitFor;
    this.approval = approval;
  }
}

/** A wait that ran out, or an approval that was rejected or expired. */
export class WaitFailedError extends NonRetryableError {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'WaitFailedError';
    this.code = code;
  }
}

/** Milliseconds from a number of ms or `500ms`, `30s`, `10m`, `2h`, `1d`, `1h30m`. */
export function durationMs(field: string, value: unknown): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return Math.round(value);
  const ms = typeof value === 'string' ? durationFromText(value) : null;
  if (ms === null) throw new ValidationError(field, 'must be milliseconds or a duration such as 30s, 10m, 2h, 1d');
  return ms;
}

export interface Approval {
  id: string;
  jobId: string;
  owner: string | null;
  agent: string;
  title: string;
  details: Json;
  assignee: string | null;
  status: ApprovalStatus;
  comment: string | null;
  decidedBy: string | null;
  decidedAt: string | null;
  expiresAt: string | null;
  createdAt: string;
}

/** What `ctx.approval()` returns once a person approved. */
export interface ApprovalGranted {
  approved: true;
  approvalId: string;
  by: string | null;
  comment: string | null;
  at: string;
}

export function toApproval(r: ApprovalRecord): Approval {
  const t = (ms: number | null) => (ms == null ? null : new Date(ms).toISOString());
  return {
    id: r.id,
    jobId: r.jobId,
    owner: r.owner,
    agent: r.agent,
    title: r.title,
    details: JSON.parse(r.details) as Json,
    assignee: r.assignee,
    status: r.status,
    comment: r.comment,
    decidedBy: r.decidedBy,
    decidedAt: t(r.decidedAt),
    expiresAt: t(r.expiresAt),
    createdAt: new Date(r.createdAt).toISOString(),
  };
}

/** The durable part of a handler's context. */
export interface DurableContext {
  /** Runs `fn` once across all runs of this job: its stored result is returned on the next ones. */
  step<T extends Json>(name: string, fn: () => T | Promise<T>): Promise<T>;
  /** The last value given to `checkpoint`, in this run or an earlier one (undefined if none). */
  state(): Promise<Json | undefined>;
  /** Stores explicit state (a conversation so far, a cursor) for the next runs. */
  checkpoint(value: Json): Promise<void>;
  /**
   * Suspends the job until an event of `pattern` arrives (with `match`: whose
   * payload has these fields with these values), then returns it. The job holds
   * no slot meanwhile; it fails when `timeout` passes first.
   */
  waitForEvent(pattern: string, options?: { timeout?: number | string; match?: { [key: string]: Json }; target?: string }): Promise<AgentqEvent>;
  /** Suspends the job until a person approves (returned) or rejects (the job fails); `expiresIn` fails it when no one decides in time. */
  approval(request: { title: string; details?: Json; assignee?: string; expiresIn?: number | string }): Promise<ApprovalGranted>;
}

export function durableContext(queue: Queue, job: Job, lease: Lease): DurableContext {
  const store = queue.store;
  let steps: Promise<Map<string, string>> | undefined;
  const loaded = () => (steps ??= store.getSteps(job.id));
  let events = 0;
  let approvals = 0;
  const save = async (name: string, value: string) => {
    if (!(await store.saveStep(lease, name, value))) throw new LeaseLostError();
    (await loaded()).set(name, value);
  };
  return {
    async step<T extends Json>(name: string, fn: () => T | Promise<T>): Promise<T> {
      if (typeof name !== 'string' || name === '' || name.length > 200 || name.startsWith('$')) {
        throw new ValidationError('step', 'a step needs a name of 1-200 characters, not starting with $');
      }
      const done = (await loaded()).get(name);
      if (done !== undefined) return JSON.parse(done) as T;
      const value = await fn();
      if (!isJsonValue(value ?? null)) throw new ValidationError(`step ${name}`, 'must return JSON (or nothing)');
      await save(name, encodeJson(`step ${name}`, (value ?? null) as Json, queue.maxPayloadBytes));
      return (value ?? null) as T;
    },
    async state() {
      const raw = (await loaded()).get('$state');
      return raw === undefined ? undefined : (JSON.parse(raw) as Json);
    },
    async checkpoint(value: Json) {
      if (!isJsonValue(value)) throw new ValidationError('checkpoint', 'must be JSON');
      await save('$state', encodeJson('checkpoint', value, queue.maxPayloadBytes));
    },
    async waitForEvent(pattern, options = {}) {
      const key = `$event:${++events}`;
      const done = (await loaded()).get(key);
      if (done !== undefined) return JSON.parse(done) as AgentqEvent;
      compilePattern(pattern);
      const match = options.match ?? null;
      if (match !== null && (typeof match !== 'object' || Array.isArray(match) || !isJsonValue(match))) {
        throw new ValidationError('match', 'must be an object of payload fields and the values they must have');
      }
      const timeout = options.timeout == null ? null : durationMs('timeout', options.timeout);
      const after = await queue.events.lastId();
      throw new Suspend({
        kind: 'event',
        key,
        pattern,
        match,
        target: options.target ?? null,
        after,
        deadline: timeout == null ? null : queue.clock.now() + timeout,
      });
    },
    async approval(request) {
      const key = `$approval:${++approvals}`;
      const done = (await loaded()).get(key);
      if (done !== undefined) return JSON.parse(done) as ApprovalGranted;
      if (request === null || typeof request !== 'object' || typeof request.title !== 'string' || request.title.trim() === '' || request.title.length > 500) {
        throw new ValidationError('title', 'an approval needs a title of 1-500 characters');
      }
      const expires = request.expiresIn == null ? null : queue.clock.now() + durationMs('expiresIn', request.expiresIn);
      const id = newId();
      throw new Suspend(
        { kind: 'approval', key, approvalId: id, deadline: expires },
        {
          id,
          title: request.title,
          details: encodeJson('details', request.details ?? null, queue.maxPayloadBytes),
          assignee: request.assignee ?? null,
          expiresAt: expires,
        },
      );
    },
  };
}

function matches(event: AgentqEvent, match: { [key: string]: Json } | null): boolean {
  if (!match) return true;
  const payload = event.payload as { [key: string]: Json } | null;
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return false;
  return Object.entries(match).every(([k, v]) => JSON.stringify(payload[k]) === JSON.stringify(v));
}

/**
 * Resumes and times out waiting jobs. Every worker runs one: a resume checks
 * that the job still waits for the same thing, so when several see the same
 * event, one of them resumes it.
 */
export class WaitWatcher {
  readonly #queue: Queue;
  readonly #pollMs: number;
  readonly #onError: (error: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #stopChange: (() => void) | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #soon: NodeJS.Timeout | undefined;
  #stopped = false;
  #readTo = new Map<string, number>();

  constructor(queue: Queue, options: { pollMs?: number; onError?: (error: unknown) => void } = {}) {
    this.#queue = queue;
    this.#pollMs = options.pollMs ?? 1000;
    this.#onError = options.onError ?? (() => {});
  }

  start(): void {
    this.#timer = setInterval(() => this.poke(), this.#pollMs);
    this.poke();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#soon);
    this.#stopChange?.();
    await this.#running;
  }

  /** Looks again soon (a job of ours just suspended, an event may have come). */
  poke(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#check()
      .catch((error) => this.#onError(error))
      .finally(() => {
        this.#running = undefined;
        if (this.#again) {
          this.#again = false;
          this.poke();
        }
      });
  }

  async #check(): Promise<void> {
    const waits = await this.#queue.store.listWaits();
    // Only while something waits: look on every change hint (at most every 50 ms).
    if (waits.length > 0 && !this.#stopChange && !this.#stopped) {
      this.#stopChange = this.#queue.store.onChange(() => {
        if (this.#soon) return;
        this.#soon = setTimeout(() => {
          this.#soon = undefined;
          this.poke();
        }, 50);
      });
    } else if (waits.length === 0 && this.#stopChange) {
      this.#stopChange();
      this.#stopChange = undefined;
    }
    const now = this.#queue.clock.now();
    // Where each wait has read the bus up to: a tick reads only what came since.
    const last = waits.length > 0 ? await this.#queue.events.lastId() : 0;
    const readTo = new Map<string, number>();
    for (const w of waits) {
      if (this.#stopped) return;
      const cond = JSON.parse(w.waitFor) as WaitCondition;
      if (cond.kind === 'event') {
        // Per job: two jobs may wait for the same text, but each reads only its owner's events.
        const cursor = `${w.id}\u0000${w.waitFor}`;
        let from = Math.max(cond.after, this.#readTo.get(cursor) ?? 0);
        let event: AgentqEvent | undefined;
        while (from < last && !event) {
          const page = await this.#queue.events.page({ pattern: cond.pattern, target: cond.target ?? undefined, owner: w.owner ?? undefined, after: from, limit: 500 });
          event = page.events.find((e) => matches(e, cond.match));
          // A page that is not full has read every event up to `last`; a full one up to its last row,
          // whether or not that row matched the pattern.
          from = page.full ? page.readTo : Math.max(page.readTo, last);
        }
        readTo.set(cursor, from);
        if (event) {
          await this.#queue.store.resumeWait(w.id, w.waitFor, { name: cond.key, value: JSON.stringify(event) });
          continue;
        }
        if (cond.deadline != null && now >= cond.deadline) {
          const error = new WaitFailedError('wait_timeout', `no ${cond.pattern} event came before the wait's timeout`);
          await this.#queue.store.failWait(w.id, w.waitFor, JSON.stringify({ message: error.message, code: error.code, name: error.name }));
        }
      } else if (cond.deadline != null && now >= cond.deadline) {
        const message = 'the approval expired before anyone decided';
        await this.#queue.store.failWait(w.id, w.waitFor, JSON.stringify({ message, code: 'approval_expired', approvalId: cond.approvalId }), {
          id: cond.approvalId,
          status: 'expired',
          by: null,
          comment: null,
          at: now,
        });
      }
    }
    this.#readTo = readTo;
  }
}

/** Approvals: listed, shown and decided, with who, when and why kept. */
export class Approvals {
  readonly #queue: Queue;

  constructor(queue: Queue) {
    this.#queue = queue;
  }

  async list(
    options: { status?: ApprovalStatus | ApprovalStatus[]; owner?: string; visibleTo?: string; jobId?: string; limit?: number } = {},
  ): Promise<Approval[]> {
    const status = options.status == null ? undefined : typeof options.status === 'string' ? [options.status] : options.status;
    for (const s of status ?? []) {
      if (!APPROVAL_STATUSES.includes(s)) throw new ValidationError('status', 'must be pending, approved, rejected or expired');
    }
    const limit = options.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new ValidationError('limit', 'must be an integer from 1 to 1000');
    return (
      await this.#queue.store.listApprovals({ status, owner: options.owner, visibleTo: options.visibleTo, jobId: options.jobId, limit })
    ).map(toApproval);
  }

  /**
   * One approval by id or unambiguous prefix. With `visibleTo`, only the
   * approvals of that user's jobs or assigned to them count: another's is
   * not found, and does not make a prefix ambiguous.
   */
  async get(idOrPrefix: string, options: { visibleTo?: string } = {}): Promise<Approval> {
    return toApproval(await this.#find(idOrPrefix, options.visibleTo));
  }

  async #find(idOrPrefix: string, visibleTo?: string): Promise<ApprovalRecord> {
    const text = String(idOrPrefix ?? '').trim().toUpperCase();
    if (text === '' || /[^0-9A-Z]/.test(text)) throw new NotFoundError('approval', String(idOrPrefix));
    const exact = await this.#queue.store.getApproval(text);
    if (exact) {
      if (visibleTo === undefined || exact.owner === visibleTo || exact.assignee === visibleTo) return exact;
      throw new NotFoundError('approval', text);
    }
    const candidates = await this.#queue.store.listApprovals({ idPrefix: text, visibleTo, limit: 6 });
    if (candidates.length === 1) return candidates[0];
    if (candidates.length === 0) throw new NotFoundError('approval', text);
    throw new AmbiguousIdError(text, candidates.map((a) => a.id), 'approvals');
  }

  /** Approves: the job resumes, and its `ctx.approval()` returns who approved and why. */
  approve(idOrPrefix: string, options: { by?: string | null; comment?: string } = {}): Promise<Approval> {
    return this.#decide(idOrPrefix, 'approved', options);
  }

  /** Rejects: the job fails with the reason. */
  reject(idOrPrefix: string, options: { by?: string | null; comment?: string } = {}): Promise<Approval> {
    return this.#decide(idOrPrefix, 'rejected', options);
  }

  async #decide(idOrPrefix: string, status: 'approved' | 'rejected', options: { by?: string | null; comment?: string }): Promise<Approval> {
    if (options.comment != null && (typeof options.comment !== 'string' || options.comment.length > 10_000 || options.comment.includes('\u0000'))) {
      throw new ValidationError('comment', 'must be text of at most 10000 characters');
    }
    const approval = await this.#find(idOrPrefix);
    if (approval.status !== 'pending') {
      throw new ConflictError(`approval ${approval.id} is already ${approval.status}`, { id: approval.jobId, status: approval.status });
    }
    const job = await this.#queue.store.getJob(approval.jobId);
    const at = this.#queue.clock.now();
    const decision = { id: approval.id, status, by: options.by ?? null, comment: options.comment ?? null, at };
    const cond = job?.waitingFor;
    const waitFor = cond && cond.kind === 'approval' && cond.approvalId === approval.id ? JSON.stringify(cond) : '';
    const granted: ApprovalGranted = { approved: true, approvalId: approval.id, by: decision.by, comment: decision.comment, at: new Date(at).toISOString() };
    const message = `rejected${decision.by ? ` by ${decision.by}` : ''}${decision.comment ? `: ${decision.comment}` : ''}`;
    const decided = await this.#queue.store.decideApproval(
      decision,
      status === 'approved'
        ? { waitFor, step: { name: cond?.key ?? '', value: JSON.stringify(granted) } }
        : { waitFor, error: JSON.stringify({ message, code: 'approval_rejected', approvalId: approval.id, by: decision.by, comment: decision.comment }) },
    );
    if (!decided) throw new ConflictError(`approval ${approval.id} was decided meanwhile`, { id: approval.jobId });
    return toApproval(decided);
  }
}
