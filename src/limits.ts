/**
 * Rate limits and budgets for LLM work.
 *
 * Rate limits: at most `max` starts per `per` for a key, across every worker
 * and machine (the store counts the window). A job is limited by its agent's
 * key (`agent:NAME`) and by its own `rateKey` (e.g. `openai:gpt-5`), where a
 * limit is declared for them. A job over a limit is put back, due when the
 * window frees, without spending an attempt. A handler that meets a 429 calls
 * `ctx.retryAfter(ms)` (or throws RetryAfterError): its job is put back for
 * that long, also unspent, and its keys pause for everyone meanwhile.
 *
 * Usage and budgets: `ctx.usage({model, inputTokens, outputTokens, costUsd})`
 * records what a call cost, per job; sums come per job, per delegation tree,
 * per agent and per owner. A job's `budget: {tokens?, costUsd?}` is shared by
 * its tree: what its descendants use counts against it, so a child draws from
 * its parent's remainder. A job whose use takes any budget of its own or of an
 * ancestor over is aborted through `ctx.signal` and fails with a budget error.
 */
import { NonRetryableError, ValidationError } from './errors.ts';
import type { Job } from './job.ts';
import type { Queue } from './queue.ts';
import type { Lease, UsageTotals } from './store/store.ts';
import { durationMs } from './durable.ts';

/** Throw it from a handler that was told to slow down (an HTTP 429): the job comes back after `ms`, its attempt unspent. */
export class RetryAfterError extends Error {
  readonly retryAfterMs: number;
  constructor(ms: number, message = `retry after ${ms} ms`) {
    super(message);
    this.name = 'RetryAfterError';
    if (!Number.isFinite(ms) || ms < 0) throw new ValidationError('retryAfter', 'must be a non-negative number of milliseconds');
    this.retryAfterMs = Math.round(ms);
  }
}

/** A job's use went over a budget: its own, or one of an ancestor's that its tree shares. */
export class BudgetExceededError extends NonRetryableError {
  readonly code = 'budget_exceeded';
  readonly budgetJobId: string;
  constructor(message: string, budgetJobId: string) {
    super(message);
    this.name = 'BudgetExceededError';
    this.budgetJobId = budgetJobId;
  }
}

export interface Budget {
  tokens?: number;
  costUsd?: number;
}

export interface Usage {
  model?: string;
  inputTokens?: number;
  outputTokens?: number;
  costUsd?: number;
}

export interface UsageSummary extends UsageTotals {
  /** inputTokens + outputTokens */
  tokens: number;
}

export interface RemainingBudget {
  /** Tokens left before a budget is reached; null: no token budget applies. */
  tokens: number | null;
  costUsd: number | null;
}

export interface RateLimit {
  key: string;
  max: number | null;
  perMs: number | null;
  pausedUntil: string | null;
}

export function summary(t: UsageTotals): UsageSummary {
  return { ...t, tokens: t.inputTokens + t.outputTokens, costUsd: Math.round(t.costUsd * 1e6) / 1e6 };
}

/** The keys a job's starts count against. */
export function rateKeysOf(job: Pick<Job, 'agent' | 'rateKey'>): string[] {
  return job.rateKey ? [`agent:${job.agent}`, job.rateKey] : [`agent:${job.agent}`];
}

const KEY = /^[^\u0000-\u001f]{1,200}$/;

/** The queue's side: declare limits, read usage. */
export class Limits {
  readonly #queue: Queue;

  constructor(queue: Queue) {
    this.#queue = queue;
  }

  /**
   * At most `max` starts per `per` (ms or `1s`, `1m`, `1h`) for a key, across
   * all workers: `agent:NAME` for an agent, or any key jobs name as `rateKey`.
   * `null` removes the limit. Workers see a change within a second.
   */
  async setRateLimit(key: string, limit: { max: number; per: number | string } | null): Promise<void> {
    if (typeof key !== 'string' || !KEY.test(key)) throw new ValidationError('key', 'must be 1-200 characters, no control characters');
    if (limit === null) return this.#queue.store.setRateLimit(key, null);
    if (!Number.isInteger(limit.max) || limit.max < 1 || limit.max > 1_000_000) throw new ValidationError('max', 'must be an integer from 1 to 1000000');
    const perMs = durationMs('per', limit.per);
    if (perMs < 1) throw new ValidationError('per', 'must be more than zero');
    await this.#queue.store.setRateLimit(key, { max: limit.max, perMs });
  }

  async rateLimits(): Promise<RateLimit[]> {
    return (await this.#queue.store.listRateLimits()).map((r) => ({
      key: r.key,
      max: r.max,
      perMs: r.perMs,
      pausedUntil: r.pausedUntil == null ? null : new Date(r.pausedUntil).toISOString(),
    }));
  }

  /** A job's usage: its own, and its delegation tree's (itself and every descendant). */
  async usage(idOrPrefix: string): Promise<{ job: UsageSummary; tree: UsageSummary }> {
    const id = await this.#queue.resolveId(idOrPrefix);
    const [own, tree] = await Promise.all([this.#queue.store.jobUsage(id, { tree: false }), this.#queue.store.jobUsage(id, { tree: true })]);
    return { job: summary(own), tree: summary(tree) };
  }

  /** Usage summed per agent or per owner. */
  async usageBy(group: 'agent' | 'owner', options: { owner?: string } = {}): Promise<Array<UsageSummary & { name: string | null }>> {
    if (group !== 'agent' && group !== 'owner') throw new ValidationError('groupBy', 'must be agent or owner');
    return (await this.#queue.store.usageBy(group, options.owner)).map((r) => ({ name: r.name, ...summary(r) }));
  }

  /** What is left of the budgets that apply to a job (its own and its ancestors'). */
  async remaining(jobId: string): Promise<RemainingBudget & { limitedBy: string | null }> {
    const chain = await this.#queue.store.budgetChain(jobId);
    let tokens: number | null = null;
    let costUsd: number | null = null;
    let limitedBy: string | null = null;
    for (const { jobId: holder, budget } of chain) {
      const b = JSON.parse(budget) as Budget;
      const used = summary(await this.#queue.store.jobUsage(holder, { tree: true }));
      if (b.tokens != null) {
        const left = b.tokens - used.tokens;
        if (tokens === null || left < tokens) {
          tokens = left;
          if (left <= 0) limitedBy = holder;
        }
      }
      if (b.costUsd != null) {
        const left = Math.round((b.costUsd - used.costUsd) * 1e6) / 1e6;
        if (costUsd === null || left < costUsd) {
          costUsd = left;
          if (left <= 0) limitedBy ??= holder;
        }
      }
    }
    return { tokens, costUsd, limitedBy };
  }
}

/** What a handler's context gains. */
export interface LimitContext {
  /** Records what one model call used; over a budget, the job is aborted through ctx.signal. */
  usage(usage: Usage): Promise<void>;
  /** What is left of the budgets this job draws from (null where none applies). */
  remainingBudget(): Promise<RemainingBudget>;
  /** Puts the job back for `ms` without spending an attempt, and slows its rate keys for everyone meanwhile. */
  retryAfter(ms: number): Promise<never>;
}

export function limitContext(queue: Queue, job: Job, lease: Lease, abort: (error: Error) => void): LimitContext {
  const checked = (name: string, v: unknown) => {
    if (v === undefined) return 0;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new ValidationError(name, 'must be a non-negative number');
    return v;
  };
  return {
    async usage(u: Usage) {
      if (u === null || typeof u !== 'object') throw new ValidationError('usage', 'expected {model, inputTokens, outputTokens, costUsd}');
      const record = {
        jobId: job.id,
        model: u.model == null ? null : String(u.model).slice(0, 200),
        inputTokens: Math.round(checked('inputTokens', u.inputTokens)),
        outputTokens: Math.round(checked('outputTokens', u.outputTokens)),
        costUsd: checked('costUsd', u.costUsd),
      };
      await queue.store.addUsage(lease, record);
      if (job.budget == null && job.parentId == null) return;
      const left = await queue.limits.remaining(job.id);
      if ((left.tokens != null && left.tokens < 0) || (left.costUsd != null && left.costUsd < 0)) {
        const whose = left.limitedBy === job.id ? 'its budget' : `the budget of job ${left.limitedBy}, which it shares`;
        abort(new BudgetExceededError(`job ${job.id} went over ${whose} (${left.tokens != null && left.tokens < 0 ? `${-left.tokens} tokens` : `$${-(left.costUsd ?? 0)}`} over)`, left.limitedBy ?? job.id));
      }
    },
    async remainingBudget() {
      const { tokens, costUsd } = await queue.limits.remaining(job.id);
      return { tokens, costUsd };
    },
    retryAfter(ms: number): Promise<never> {
      return Promise.reject(new RetryAfterError(ms));
    },
  };
}
