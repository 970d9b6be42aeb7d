/**
 * What the job, event and schedule commands need of a queue, and that same
 * shape over the REST API: `--server URL --token T` runs those commands
 * through a server instead of on a database. (The worker, serve, scheduler,
 * migrate and users commands work on a database only.)
 */
import { AgentqClient } from '../client.ts';
import { AgentqError, NotFoundError } from '../errors.ts';
import type { Events } from '../events.ts';
import type { Job } from '../job.ts';
import type { Queue } from '../queue.ts';
import type { Schedules } from '../schedules/schedules.ts';
import type { Approval } from '../durable.ts';
import type { Users } from '../users.ts';
import type { RateLimit, UsageSummary } from '../limits.ts';
import type { ApprovalStatus } from '../store/store.ts';

/** The part of a Queue the CLI's job, event and schedule commands use. */
export interface CliQueue {
  submit: Queue['submit'];
  get: Queue['get'];
  resolveId: Queue['resolveId'];
  list: Queue['list'];
  cancel: Queue['cancel'];
  retry: Queue['retry'];
  logs: Queue['logs'];
  tree: Queue['tree'];
  stats: Queue['stats'];
  workers: Queue['workers'];
  wait: Queue['wait'];
  hung: Queue['hung'];
  cleanup: Queue['cleanup'];
  readonly hungTimeoutMs: number;
  readonly clock: { now(): number };
  readonly store: {
    getJob(id: string): Promise<Job | null>;
    /** A hint that something changed; callers poll as well. */
    onChange(listener: () => void): () => void;
  };
  readonly events: Pick<Events, 'publish' | 'list' | 'lastId' | 'subscribe'>;
  readonly schedules: Pick<Schedules, 'list' | 'get' | 'enable' | 'disable' | 'runNow' | 'remove' | 'executions' | 'applyFile'>;
  readonly approvals: {
    list(options?: { status?: ApprovalStatus[]; jobId?: string; limit?: number }): Promise<Approval[]>;
    get(id: string): Promise<Approval>;
    approve(id: string, options?: { by?: string | null; comment?: string }): Promise<Approval>;
    reject(id: string, options?: { by?: string | null; comment?: string }): Promise<Approval>;
  };
  readonly limits: {
    usage(id: string): Promise<{ job: UsageSummary; tree: UsageSummary }>;
    usageBy(group: 'agent' | 'owner'): Promise<Array<UsageSummary & { name: string | null }>>;
    rateLimits(): Promise<RateLimit[]>;
    setRateLimit(key: string, limit: { max: number; per: number | string } | null): Promise<unknown>;
  };
  readonly users: Pick<Users, 'add' | 'list' | 'issueToken' | 'revoke' | 'remove'>;
  /** Whether decisions are made as the server's token user (not --by). */
  readonly remote?: boolean;
}

/** Fetch failures say which server could not be reached. */
function reach<T>(url: string, promise: Promise<T>): Promise<T> {
  return promise.catch((error: unknown) => {
    if (error instanceof AgentqError) throw error;
    const cause = (error as { cause?: { code?: string } }).cause;
    throw new AgentqError('unreachable', 503, `cannot reach the agentq server at ${url}${cause?.code ? ` (${cause.code})` : ''}`);
  });
}

/** A CliQueue over the REST API. */
export class RemoteQueue implements CliQueue {
  readonly #client: AgentqClient;
  readonly #url: string;
  readonly hungTimeoutMs = 300_000;
  readonly clock = { now: () => Date.now() };
  readonly #subscriptions = new Set<{ close(): void }>();

  constructor(url: string, token: string) {
    this.#url = url;
    this.#client = new AgentqClient({ url, token });
  }

  #r<T>(promise: Promise<T>): Promise<T> {
    return reach(this.#url, promise);
  }

  submit: Queue['submit'] = (input) => this.#r(this.#client.submit(input));
  get: Queue['get'] = (id) => this.#r(this.#client.get(id));
  resolveId: Queue['resolveId'] = (id) => this.#r(this.#client.resolveId(id));
  list: Queue['list'] = (options) => this.#r(this.#client.list(options));
  cancel: Queue['cancel'] = (id, options) => this.#r(this.#client.cancel(id, options));
  retry: Queue['retry'] = (id) => this.#r(this.#client.retry(id));
  logs: Queue['logs'] = (id, options) => this.#r(this.#client.logs(id, options));
  tree: Queue['tree'] = (id) => this.#r(this.#client.tree(id));
  stats: Queue['stats'] = () => this.#r(this.#client.stats());
  workers: Queue['workers'] = () => this.#r(this.#client.workers());
  wait: Queue['wait'] = (id, options) => this.#r(this.#client.wait(id, options));
  hung: Queue['hung'] = (options) => this.#r(this.#client.hung(options));
  cleanup: Queue['cleanup'] = (options = {}) =>
    this.#r(this.#client.cleanup({ ...options, status: options.status == null ? undefined : [...(typeof options.status === 'string' ? [options.status] : options.status)] }));

  readonly store = {
    getJob: async (id: string): Promise<Job | null> => {
      try {
        return await this.#r(this.#client.get(id));
      } catch (error) {
        if (error instanceof NotFoundError) return null;
        throw error;
      }
    },
    onChange: (listener: () => void): (() => void) => {
      const sub = this.#client.events.subscribe('*', () => listener(), { onError: () => {} });
      this.#subscriptions.add(sub);
      return () => {
        sub.close();
        this.#subscriptions.delete(sub);
      };
    },
  };

  readonly events: CliQueue['events'] = {
    publish: (input) => {
      const { source: _s, owner: _o, ...rest } = input;
      return this.#r(this.#client.events.publish(rest));
    },
    list: (options = {}) =>
      this.#r(this.#client.events.list({ ...options, pattern: options.pattern == null ? undefined : typeof options.pattern === 'string' ? options.pattern : [...options.pattern] })),
    lastId: () => this.#r(this.#client.events.lastId()),
    subscribe: (pattern, callback, options = {}) => {
      const sub = this.#client.events.subscribe(pattern, callback, { after: options.after, target: options.target, onError: options.onError });
      this.#subscriptions.add(sub);
      return sub;
    },
  };

  readonly schedules: CliQueue['schedules'] = {
    list: () => this.#r(this.#client.schedules.list()),
    get: (name) => this.#r(this.#client.schedules.get(name)),
    enable: (name) => this.#r(this.#client.schedules.enable(name)),
    disable: (name) => this.#r(this.#client.schedules.disable(name)),
    runNow: (name) => this.#r(this.#client.schedules.runNow(name)),
    remove: (name) => this.#r(this.#client.schedules.remove(name)),
    executions: (name, options) => this.#r(this.#client.schedules.executions(name, options)),
    applyFile: (text, options) => this.#r(this.#client.schedules.applyFile(text, options)),
  };

  readonly remote = true;

  readonly users: CliQueue['users'] = {
    add: async (name, options = {}) => (await this.#r(this.#client.users.add(name, { admin: options.admin, token: false }))).user,
    list: () => this.#r(this.#client.users.list()),
    issueToken: (name) => this.#r(this.#client.users.issueToken(name)),
    revoke: (name, tokenId) => this.#r(this.#client.users.revoke(name, tokenId)),
    remove: (name) => this.#r(this.#client.users.remove(name)),
  };

  readonly limits: CliQueue['limits'] = {
    usage: (id) => this.#r(this.#client.usage(id)),
    usageBy: (group) => this.#r(this.#client.usageBy(group)),
    rateLimits: () => this.#r(this.#client.rateLimits()),
    setRateLimit: (key, limit) => this.#r(this.#client.setRateLimit(key, limit)),
  };

  readonly approvals: CliQueue['approvals'] = {
    list: (options = {}) => this.#r(this.#client.approvals.list(options)),
    get: (id) => this.#r(this.#client.approvals.get(id)),
    approve: (id, options = {}) => this.#r(this.#client.approvals.approve(id, { comment: options.comment })),
    reject: (id, options = {}) => this.#r(this.#client.approvals.reject(id, { comment: options.comment })),
  };

  close(): void {
    for (const sub of this.#subscriptions) sub.close();
    this.#subscriptions.clear();
  }
}
