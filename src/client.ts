/**
 * `agentq/client`: the REST API from Node or a browser, over `fetch`, with
 * the library's method names. Errors come back as the library's typed errors
 * (ValidationError with its field, NotFoundError, ConflictError, ...), plus
 * UnauthorizedError and ForbiddenError.
 *
 *   const agentq = new AgentqClient({ url: 'http://127.0.0.1:8080', token });
 *   const job = await agentq.submit({ agent: 'researcher', instructions: 'Find papers' });
 *   const done = await agentq.wait(job.id);
 */
import {
  AgentqError,
  AmbiguousIdError,
  ConflictError,
  NotFoundError,
  PayloadTooLargeError,
  ValidationError,
  WaitTimeoutError,
} from './errors.ts';
import type { Job, JobLog } from './job.ts';
import type { AgentqEvent, PublishInput, Subscription } from './events.ts';
import type { CleanupResult, JobPage, JobTree, ListOptions, Stats, Throughput } from './queue.ts';
import type { GraphJobInput, SubmitInput } from './schema.ts';
import type { ApplyResult, Schedule } from './schedules/schedules.ts';
import type { WorkerInfo } from './store/store.ts';
import type { Approval } from './durable.ts';
import type { User } from './users.ts';
import type { RateLimit, RemainingBudget, UsageSummary } from './limits.ts';

export interface JobUsage {
  job: UsageSummary;
  tree: UsageSummary;
  budget: { tokens?: number; costUsd?: number } | null;
  remaining: RemainingBudget;
}

export class UnauthorizedError extends AgentqError {}
export class ForbiddenError extends AgentqError {}

export interface ClientOptions {
  /** The server, e.g. http://127.0.0.1:8080 */
  url: string;
  /** An API token (agentq users token NAME). In a browser signed in by cookie, leave it out. */
  token?: string;
  /** A fetch of your own (default: the global one). */
  fetch?: typeof fetch;
}

export interface AgentInfo {
  name: string;
  workers: number;
  concurrency: number;
  maxConcurrency: number | null;
  jobs: Record<string, number>;
}

const FINISHED = new Set(['completed', 'failed', 'cancelled']);

interface ErrorBody {
  error?: { code?: string; message?: string; details?: Record<string, unknown> };
}

/** The library's error class for an API error code, so `instanceof` works the same on both. */
function toError(status: number, body: ErrorBody | null): AgentqError {
  const code = body?.error?.code ?? 'http_error';
  const message = body?.error?.message ?? `the server answered ${status}`;
  const details = body?.error?.details;
  const kind =
    {
      invalid_input: ValidationError,
      not_found: NotFoundError,
      ambiguous_id: AmbiguousIdError,
      conflict: ConflictError,
      payload_too_large: PayloadTooLargeError,
      wait_timeout: WaitTimeoutError,
      unauthorized: UnauthorizedError,
      forbidden: ForbiddenError,
    }[code] ?? AgentqError;
  const error = Reflect.construct(AgentqError, [code, status, message, details], kind) as AgentqError;
  if (error instanceof ValidationError) (error as { field: string }).field = String(details?.field ?? '');
  return error;
}

function query(params: Record<string, unknown>): string {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value == null) continue;
    for (const v of Array.isArray(value) ? value : [value]) q.append(key, String(v));
  }
  const text = q.toString();
  return text ? `?${text}` : '';
}

/** Reads a Server-Sent Events stream, calling `onEvent` for each `data:` message. */
async function readSse(body: ReadableStream<Uint8Array>, onEvent: (id: string | undefined, data: string) => Promise<void> | void): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let id: string | undefined;
  let data: string[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const lineText = buffer.slice(0, nl).replace(/\r$/, '');
      buffer = buffer.slice(nl + 1);
      if (lineText === '') {
        if (data.length) await onEvent(id, data.join('\n'));
        data = [];
        continue;
      }
      if (lineText.startsWith(':')) continue;
      const colon = lineText.indexOf(':');
      const field = colon < 0 ? lineText : lineText.slice(0, colon);
      const val = colon < 0 ? '' : lineText.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') data.push(val);
      else if (field === 'id') id = val;
    }
  }
}

export class AgentqClient {
  readonly url: string;
  readonly #token: string | undefined;
  readonly #fetch: typeof fetch;

  constructor(options: ClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.#token = options.token;
    this.#fetch = options.fetch ?? ((...args) => fetch(...args));
  }

  #headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.#token ? { authorization: `Bearer ${this.#token}` } : {}), ...extra };
  }

  async #call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const response = await this.#fetch(`${this.url}${path}`, {
      method,
      headers: this.#headers(body === undefined ? {} : { 'content-type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      credentials: 'same-origin',
    });
    const text = await response.text();
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      if (!response.ok) throw toError(response.status, { error: { message: text.slice(0, 200) } });
      throw new AgentqError('bad_response', response.status, `the server sent something that is not JSON`);
    }
    if (!response.ok) throw toError(response.status, parsed as ErrorBody);
    return parsed as T;
  }

  // ---- jobs: the library's method names -------------------------------------------------------

  submit(input: SubmitInput): Promise<Job> {
    return this.#call('POST', '/api/v1/jobs', input);
  }

  async submitMany(inputs: readonly SubmitInput[]): Promise<Job[]> {
    return (await this.#call<{ jobs: Job[] }>('POST', '/api/v1/jobs', { jobs: inputs })).jobs;
  }

  async submitGraph(inputs: readonly GraphJobInput[]): Promise<Job[]> {
    return (await this.#call<{ jobs: Job[] }>('POST', '/api/v1/jobs', { jobs: inputs })).jobs;
  }

  get(idOrPrefix: string): Promise<Job> {
    return this.#call('GET', `/api/v1/jobs/${encodeURIComponent(idOrPrefix)}`);
  }

  /** The full id of an id or unambiguous prefix. */
  async resolveId(idOrPrefix: string): Promise<string> {
    return (await this.get(idOrPrefix)).id;
  }

  list(options: ListOptions = {}): Promise<JobPage> {
    return this.#call('GET', `/api/v1/jobs${query({ ...options })}`);
  }

  /** One user's jobs (yours, unless you are an admin). */
  userJobs(user: string, options: Omit<ListOptions, 'owner'> = {}): Promise<JobPage> {
    return this.#call('GET', `/api/v1/users/${encodeURIComponent(user)}/jobs${query({ ...options })}`);
  }

  cancel(idOrPrefix: string, options: { reason?: string; descendants?: boolean; force?: boolean } = {}): Promise<Job> {
    return this.#call('POST', `/api/v1/jobs/${encodeURIComponent(idOrPrefix)}/cancel`, options);
  }

  retry(idOrPrefix: string): Promise<Job> {
    return this.#call('POST', `/api/v1/jobs/${encodeURIComponent(idOrPrefix)}/retry`);
  }

  async logs(idOrPrefix: string, options: { after?: number; limit?: number } = {}): Promise<JobLog[]> {
    return (await this.#call<{ logs: JobLog[] }>('GET', `/api/v1/jobs/${encodeURIComponent(idOrPrefix)}/logs${query(options)}`)).logs;
  }

  tree(idOrPrefix: string): Promise<JobTree> {
    return this.#call('GET', `/api/v1/jobs/${encodeURIComponent(idOrPrefix)}/tree`);
  }

  stats(): Promise<Stats> {
    return this.#call('GET', '/api/v1/stats');
  }

  /** Jobs finished per minute over the last `minutes` (default 60), oldest first. */
  throughput(minutes?: number): Promise<Throughput> {
    return this.#call('GET', `/api/v1/stats/throughput${query({ minutes })}`);
  }

  async workers(): Promise<WorkerInfo[]> {
    return (await this.#call<{ workers: WorkerInfo[] }>('GET', '/api/v1/workers')).workers;
  }

  async agents(): Promise<AgentInfo[]> {
    return (await this.#call<{ agents: AgentInfo[] }>('GET', '/api/v1/agents')).agents;
  }

  async hung(options: { timeoutMs?: number } = {}): Promise<Job[]> {
    return (await this.#call<{ jobs: Job[] }>('GET', `/api/v1/hung${query(options)}`)).jobs;
  }

  /** Deletes finished jobs older than a cut-off (admins). */
  cleanup(options: { olderThanMs?: number; status?: string | string[]; dryRun?: boolean } = {}): Promise<CleanupResult> {
    const status = options.status == null ? undefined : typeof options.status === 'string' ? [options.status] : options.status;
    return this.#call('POST', '/api/v1/cleanup', { ...options, status });
  }

  health(): Promise<{ ok: boolean; engine: string }> {
    return this.#call('GET', '/healthz');
  }

  /**
   * Resolves when the job has finished. Listens on the event stream (SSE) and
   * falls back to polling when streaming is not available.
   */
  async wait(idOrPrefix: string, options: { timeoutMs?: number; signal?: AbortSignal; pollMs?: number } = {}): Promise<Job> {
    let job = await this.get(idOrPrefix);
    if (FINISHED.has(job.status)) return job;
    const deadline = options.timeoutMs == null ? Infinity : Date.now() + options.timeoutMs;
    const abort = new AbortController();
    const onAbort = () => abort.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = Number.isFinite(deadline) ? setTimeout(() => abort.abort(), Math.max(0, deadline - Date.now())) : undefined;
    const id = job.id;
    try {
      for (;;) {
        try {
          const response = await this.#fetch(
            `${this.url}/api/v1/events${query({ pattern: ['job.completed', 'job.failed', 'job.cancelled'] })}`,
            { headers: this.#headers({ accept: 'text/event-stream' }), signal: abort.signal, credentials: 'same-origin' },
          );
          if (!response.ok || !response.body) throw new Error('no stream');
          // Subscribed: anything that finished before now is seen by this read.
          job = await this.get(id);
          if (FINISHED.has(job.status)) {
            abort.abort();
            return job;
          }
          let finished = false;
          await readSse(response.body, (_eventId, data) => {
            const event = JSON.parse(data) as AgentqEvent;
            if (event.jobId === id) {
              finished = true;
              abort.abort();
            }
          }).catch((error) => {
            if (!finished) throw error;
          });
        } catch (error) {
          if (options.signal?.aborted) throw options.signal.reason ?? error;
          if (Date.now() >= deadline) break;
          // No stream: poll instead (below), then try again.
          if (!abort.signal.aborted) await new Promise((r) => setTimeout(r, Math.min(options.pollMs ?? 1000, Math.max(0, deadline - Date.now()))));
        }
        job = await this.get(id);
        if (FINISHED.has(job.status)) return job;
        if (Date.now() >= deadline) break;
      }
      throw new WaitTimeoutError(id, job.status, options.timeoutMs ?? 0);
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      abort.abort();
    }
  }

  // ---- events ----------------------------------------------------------------------------------

  readonly events = {
    list: async (options: { pattern?: string | string[]; target?: string; after?: number; limit?: number } = {}): Promise<AgentqEvent[]> =>
      (await this.#call<{ events: AgentqEvent[] }>('GET', `/api/v1/events${query(options)}`)).events,
    /** The newest event id: start after it to follow events from now. */
    lastId: async (): Promise<number> => (await this.#call<{ lastId: number }>('GET', '/api/v1/events/last-id')).lastId,
    publish: (event: Omit<PublishInput, 'owner' | 'source'>): Promise<AgentqEvent> => this.#call('POST', '/api/v1/events', event),
    /** Follows the event stream, resuming after the last id seen when the connection drops. */
    subscribe: (
      pattern: string | readonly string[],
      callback: (event: AgentqEvent) => unknown,
      options: { after?: number; target?: string; onError?: (error: unknown) => void } = {},
    ): Subscription => {
      const abort = new AbortController();
      let lastId = options.after ?? -1;
      const patterns = typeof pattern === 'string' ? [pattern] : [...pattern];
      void (async () => {
        while (!abort.signal.aborted) {
          try {
            const headers = this.#headers({ accept: 'text/event-stream', ...(lastId >= 0 ? { 'last-event-id': String(lastId) } : {}) });
            const response = await this.#fetch(`${this.url}/api/v1/events${query({ pattern: patterns.includes('*') ? undefined : patterns, target: options.target })}`, {
              headers,
              signal: abort.signal,
              credentials: 'same-origin',
            });
            if (!response.ok || !response.body) throw toError(response.status, (await response.json().catch(() => null)) as ErrorBody);
            await readSse(response.body, async (id, data) => {
              const event = JSON.parse(data) as AgentqEvent;
              await callback(event);
              lastId = id != null ? Number(id) : event.id;
            });
          } catch (error) {
            if (abort.signal.aborted) return;
            options.onError?.(error);
            if (error instanceof UnauthorizedError || error instanceof ForbiddenError || error instanceof ValidationError) return;
          }
          if (!abort.signal.aborted) await new Promise((r) => setTimeout(r, 1000));
        }
      })();
      return {
        get lastId() {
          return Math.max(lastId, 0);
        },
        close: () => abort.abort(),
      };
    },
  };

  // ---- users (admins) ------------------------------------------------------------------------

  readonly users = {
    list: async (): Promise<User[]> => (await this.#call<{ users: User[] }>('GET', '/api/v1/users')).users,
    add: (name: string, options: { admin?: boolean; token?: boolean } = {}): Promise<{ user: User; token?: string; tokenId?: string }> =>
      this.#call('POST', '/api/v1/users', { name, ...options }),
    issueToken: async (name: string): Promise<{ user: string; token: string; id: string }> => {
      const r = await this.#call<{ user: string; token: string; tokenId: string }>('POST', `/api/v1/users/${encodeURIComponent(name)}/tokens`);
      return { user: r.user, token: r.token, id: r.tokenId };
    },
    revoke: async (name: string, tokenId?: string): Promise<number> =>
      (await this.#call<{ revoked: number }>('POST', `/api/v1/users/${encodeURIComponent(name)}/revoke`, tokenId ? { tokenId } : {})).revoked,
    remove: async (name: string): Promise<void> => {
      await this.#call('DELETE', `/api/v1/users/${encodeURIComponent(name)}`);
    },
  };

  // ---- usage and rate limits -------------------------------------------------------------------

  /** What a job and its tree used, its budget and what is left. */
  usage(idOrPrefix: string): Promise<JobUsage> {
    return this.#call('GET', `/api/v1/jobs/${encodeURIComponent(idOrPrefix)}/usage`);
  }

  async usageBy(groupBy: 'agent' | 'owner' = 'agent'): Promise<Array<UsageSummary & { name: string | null }>> {
    return (await this.#call<{ usage: Array<UsageSummary & { name: string | null }> }>('GET', `/api/v1/usage${query({ groupBy })}`)).usage;
  }

  async rateLimits(): Promise<RateLimit[]> {
    return (await this.#call<{ rateLimits: RateLimit[] }>('GET', '/api/v1/rate-limits')).rateLimits;
  }

  /** Declares (or with null removes) a rate limit (admins). */
  async setRateLimit(key: string, limit: { max: number; per: number | string } | null): Promise<RateLimit[]> {
    const path = `/api/v1/rate-limits/${encodeURIComponent(key)}`;
    return (await this.#call<{ rateLimits: RateLimit[] }>(limit ? 'PUT' : 'DELETE', path, limit ?? undefined)).rateLimits;
  }

  // ---- approvals -------------------------------------------------------------------------------

  readonly approvals = {
    list: async (options: { status?: Approval['status'] | Approval['status'][]; jobId?: string; limit?: number } = {}): Promise<Approval[]> =>
      (await this.#call<{ approvals: Approval[] }>('GET', `/api/v1/approvals${query(options)}`)).approvals,
    get: (id: string): Promise<Approval> => this.#call('GET', `/api/v1/approvals/${encodeURIComponent(id)}`),
    /** Approves as the token's user; the job resumes. */
    approve: (id: string, options: { comment?: string } = {}): Promise<Approval> =>
      this.#call('POST', `/api/v1/approvals/${encodeURIComponent(id)}/approve`, options.comment == null ? {} : { comment: options.comment }),
    /** Rejects as the token's user; the job fails with the reason. */
    reject: (id: string, options: { comment?: string } = {}): Promise<Approval> =>
      this.#call('POST', `/api/v1/approvals/${encodeURIComponent(id)}/reject`, options.comment == null ? {} : { comment: options.comment }),
  };

  // ---- schedules -------------------------------------------------------------------------------

  readonly schedules = {
    list: async (): Promise<Schedule[]> => (await this.#call<{ schedules: Schedule[] }>('GET', '/api/v1/schedules')).schedules,
    get: (idOrName: string): Promise<Schedule> => this.#call('GET', `/api/v1/schedules/${encodeURIComponent(idOrName)}`),
    create: (input: Record<string, unknown>): Promise<Schedule> => this.#call('POST', '/api/v1/schedules', input),
    update: (idOrName: string, patch: Record<string, unknown>): Promise<Schedule> =>
      this.#call('PUT', `/api/v1/schedules/${encodeURIComponent(idOrName)}`, patch),
    remove: (idOrName: string): Promise<Schedule> => this.#call('DELETE', `/api/v1/schedules/${encodeURIComponent(idOrName)}`),
    enable: (idOrName: string): Promise<Schedule> => this.#call('POST', `/api/v1/schedules/${encodeURIComponent(idOrName)}/enable`),
    disable: (idOrName: string): Promise<Schedule> => this.#call('POST', `/api/v1/schedules/${encodeURIComponent(idOrName)}/disable`),
    runNow: (idOrName: string): Promise<Job> => this.#call('POST', `/api/v1/schedules/${encodeURIComponent(idOrName)}/run`),
    /** Applies a YAML schedules file (admins). */
    applyFile: (text: string, options: { prune?: boolean; dryRun?: boolean } = {}): Promise<ApplyResult> =>
      this.#call('POST', '/api/v1/schedules/apply', { text, ...options }),
    executions: (idOrName: string, options: Pick<ListOptions, 'status' | 'cursor' | 'limit' | 'order'> = {}): Promise<JobPage> =>
      this.#call('GET', `/api/v1/schedules/${encodeURIComponent(idOrName)}/executions${query({ ...options })}`),
  };
}

export type { Approval, User, RateLimit, UsageSummary, Job, JobLog, JobPage, JobTree, ListOptions, Stats, Throughput, AgentqEvent, Schedule, ApplyResult, CleanupResult, WorkerInfo };
export { AgentqError, ValidationError, NotFoundError, ConflictError, PayloadTooLargeError, AmbiguousIdError, WaitTimeoutError };
