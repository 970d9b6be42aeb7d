/**
 * The event bus. Every job change is an event, written by the store in the
 * same transaction as the change (so none is lost and none describes a change
 * that did not happen); applications publish their own. Events have
 * increasing ids: a reader resumes after the last id it saw.
 *
 * Readers wake on the store's change hints (a file watch on SQLite, NOTIFY on
 * PostgreSQL) and poll slowly besides, so an idle subscriber costs next to
 * nothing and a new event reaches it within milliseconds.
 */
import { Nap } from './clock.ts';
import { ValidationError } from './errors.ts';
import type { Json } from './job.ts';
import { encodeJson } from './schema.ts';
import type { EventFilter, Store, StoredEvent } from './store/store.ts';

export interface AgentqEvent {
  id: number;
  /** Dotted words: `job.completed`, `email.processed`. */
  type: string;
  /** Who published it: `agentq` for job events. */
  source: string;
  /** The agent it is for; null is everyone. Job events are for the job's agent. */
  target: string | null;
  jobId: string | null;
  /** The owner of the job it is about, or of its publisher. */
  owner: string | null;
  payload: Json;
  createdAt: string;
}

export interface PublishInput {
  type: string;
  payload?: Json;
  /** Who publishes. (Default: `app`) */
  source?: string;
  /** Deliver to one agent's subscribers only. (Default: everyone) */
  target?: string | null;
  jobId?: string | null;
  owner?: string | null;
}

export interface ReadOptions {
  /** Event type patterns: `*` matches any run of characters (`job.*`, `*.failed`). (Default: all) */
  pattern?: string | readonly string[];
  /** Only events for this agent and those for everyone. */
  target?: string;
  /** Only events of this owner's jobs and their own. */
  owner?: string;
}

export interface SubscribeOptions extends ReadOptions {
  /** Start after this event id. (Default: the newest now: only new events) */
  after?: number;
  /** How often to look when no change hint came. (Default: 1000 ms) */
  pollMs?: number;
  /** Called when reading or a callback fails; the subscription goes on. */
  onError?: (error: unknown) => void;
}

export interface Subscription {
  /** The id of the last event delivered: resume after it. */
  readonly lastId: number;
  close(): void;
}

const TYPE = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_*-]+)*$/;
const PATTERN = /^[A-Za-z0-9_.*-]+$/;

/** One compiled type pattern: a regular expression and its SQL LIKE pre-filter. */
export interface TypePattern {
  source: string;
  regex: RegExp;
  like: string;
}

export function compilePattern(pattern: string): TypePattern {
  if (typeof pattern !== 'string' || !PATTERN.test(pattern) || pattern.length > 200) {
    throw new ValidationError('pattern', `${JSON.stringify(pattern)} is not an event pattern; use words, dots and *, e.g. job.*`);
  }
  const regex = new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  const like = pattern.replace(/[\\%_]/g, (c) => `\\${c}`).replace(/\*/g, '%');
  return { source: pattern, regex, like };
}

/** A stored event as readers see it (its payload parsed, its time in ISO 8601). */
export function toEvent(e: StoredEvent): AgentqEvent {
  return {
    id: e.id,
    type: e.type,
    source: e.source,
    target: e.target,
    jobId: e.jobId,
    owner: e.owner,
    payload: JSON.parse(e.payload) as Json,
    createdAt: new Date(e.createdAt).toISOString(),
  };
}

interface Filter {
  patterns: TypePattern[] | null;
  base: Omit<EventFilter, 'after' | 'limit'>;
}

export class Events {
  readonly #store: Store;
  readonly #maxPayloadBytes: number;

  constructor(store: Store, options: { maxPayloadBytes: number }) {
    this.#store = store;
    this.#maxPayloadBytes = options.maxPayloadBytes;
  }

  /** Publishes an application event to everyone, or to one agent with `target`. */
  async publish(input: PublishInput): Promise<AgentqEvent> {
    if (input === null || typeof input !== 'object') throw new ValidationError('event', 'expected an event object');
    const known = new Set(['type', 'payload', 'source', 'target', 'jobId', 'owner']);
    for (const key of Object.keys(input)) if (!known.has(key)) throw new ValidationError(key, 'is not a known field');
    if (typeof input.type !== 'string' || !TYPE.test(input.type) || input.type.length > 200 || input.type.includes('*')) {
      throw new ValidationError('type', 'must be dotted words of letters, digits, _ and -, e.g. email.processed');
    }
    if (input.type.startsWith('job.')) throw new ValidationError('type', 'job.* events are agentq\'s own; choose another prefix');
    const text = (field: string, value: unknown): string | null => {
      if (value == null) return null;
      if (typeof value !== 'string' || value.length === 0 || value.length > 200) {
        throw new ValidationError(field, 'must be a non-empty string of at most 200 characters');
      }
      return value;
    };
    const [stored] = await this.#store.appendEvents([
      {
        type: input.type,
        source: text('source', input.source) ?? 'app',
        target: text('target', input.target),
        jobId: text('jobId', input.jobId),
        owner: text('owner', input.owner),
        payload: encodeJson('payload', input.payload ?? null, this.#maxPayloadBytes),
      },
    ]);
    return toEvent(stored);
  }

  /** Events after an id, oldest first, at most `limit`. */
  async list(options: ReadOptions & { after?: number; limit?: number } = {}): Promise<AgentqEvent[]> {
    return (await this.page(options)).events;
  }

  /**
   * A page of `list`, and where reading got to: `readTo`, the id of the last
   * event looked at (a page of `limit` stored events may hold fewer that
   * match), and `full`, whether more may follow it.
   */
  async page(options: ReadOptions & { after?: number; limit?: number } = {}): Promise<{ events: AgentqEvent[]; readTo: number; full: boolean }> {
    const limit = options.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new ValidationError('limit', 'must be an integer from 1 to 10000');
    const after = options.after ?? 0;
    if (!Number.isInteger(after) || after < 0) throw new ValidationError('after', 'must be a non-negative integer event id');
    return this.#read(after, limit, this.#filter(options));
  }

  /** The id of the newest event (0 when there is none): subscribe after it to get only new ones. */
  lastId(): Promise<number> {
    return this.#store.lastEventId();
  }

  /**
   * Calls `callback` for each event matching the pattern, in order, from
   * `after` on. A callback that returns a promise is awaited before the next.
   */
  subscribe(pattern: string | readonly string[], callback: (event: AgentqEvent) => unknown, options: SubscribeOptions = {}): Subscription {
    const filter = this.#filter({ ...options, pattern });
    const pollMs = options.pollMs ?? 1000;
    let lastId = options.after ?? -1;
    let closed = false;
    let reading = false;
    let again = false;
    const read = async (): Promise<void> => {
      if (closed) return;
      if (reading) {
        again = true;
        return;
      }
      reading = true;
      try {
        if (lastId < 0) lastId = await this.#store.lastEventId();
        for (;;) {
          const batch = await this.#read(lastId, 500, filter);
          for (const event of batch.events) {
            if (closed) return;
            try {
              await callback(event);
            } catch (error) {
              options.onError?.(error);
            }
            lastId = event.id;
          }
          lastId = Math.max(lastId, batch.readTo);
          if (!batch.full && !again) break;
          again = false;
        }
      } catch (error) {
        if (!closed) options.onError?.(error);
      } finally {
        reading = false;
        if (again && !closed) {
          again = false;
          void read();
        }
      }
    };
    const stop = this.#store.onChange(() => void read());
    // Keeps the process alive while subscribed, as an open socket would.
    const timer = setInterval(() => void read(), pollMs);
    void read();
    return {
      get lastId() {
        return Math.max(lastId, 0);
      },
      close() {
        closed = true;
        stop();
        clearInterval(timer);
      },
    };
  }

  /**
   * Waits for matching events after `after` (default: now) and returns them:
   * at least one, or none when `timeoutMs` passes first.
   */
  async listen(options: ReadOptions & { after?: number; timeoutMs?: number; limit?: number; signal?: AbortSignal } = {}): Promise<AgentqEvent[]> {
    const filter = this.#filter(options);
    const limit = options.limit ?? 100;
    let after = options.after ?? (await this.#store.lastEventId());
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    const nap = new Nap();
    const stop = this.#store.onChange(nap.wake);
    try {
      for (;;) {
        const batch = await this.#read(after, limit, filter);
        if (batch.events.length > 0) return batch.events;
        after = batch.readTo;
        const left = deadline - Date.now();
        if (left <= 0 || options.signal?.aborted) return [];
        await nap.sleep(Math.min(left, 1000), options.signal);
      }
    } finally {
      stop();
    }
  }

  /** Deletes events older than `olderThanMs`; returns how many went. */
  async cleanup(options: { olderThanMs: number }): Promise<number> {
    const ms = options.olderThanMs;
    if (!Number.isFinite(ms) || ms < 0) throw new ValidationError('olderThanMs', 'must be a non-negative number of milliseconds');
    return this.#store.deleteEvents(this.#store.now() - ms);
  }

  #filter(options: ReadOptions): Filter {
    const list = options.pattern == null ? [] : typeof options.pattern === 'string' ? [options.pattern] : [...options.pattern];
    const patterns = list.length === 0 || list.includes('*') ? null : list.map(compilePattern);
    return {
      patterns,
      base: { typeLike: patterns?.map((p) => p.like), target: options.target, owner: options.owner },
    };
  }

  /** Matching events after `after`, and where reading got to (past rows that only looked like matches). */
  async #read(after: number, limit: number, filter: Filter): Promise<{ events: AgentqEvent[]; readTo: number; full: boolean }> {
    const rows = await this.#store.listEvents({ ...filter.base, after, limit });
    let events = rows.map(toEvent);
    // LIKE is only a pre-filter (its case rules differ between engines): match exactly here.
    if (filter.patterns) events = events.filter((e) => filter.patterns!.some((p) => p.regex.test(e.type)));
    return { events, readTo: rows.length ? rows[rows.length - 1].id : after, full: rows.length === limit };
  }
}
