/**
 * Jobs: their shape, their statuses, and the state machine that moves them.
 *
 * The state machine is defined here and only here. Every store builds its
 * guarded UPDATEs from `TRANSITIONS`, so a transition can only happen from the
 * states listed for it; a change that finds the job in any other state changes
 * nothing and reports a conflict.
 *
 * ```
 *             submit ─┬─> pending ──claim──> running ──> completed
 *                     │      ^                  │  └───> failed
 *                     │      └──retry/backoff───┘  └───> cancelled
 *                     └─> blocked ──deps completed──> pending
 *                           └──a dependency failed/cancelled──> cancelled
 *
 *   running ──wait for children──> waiting ──children finished──> pending
 * ```
 */

export const STATUSES = ['blocked', 'pending', 'running', 'waiting', 'completed', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof STATUSES)[number];

/** Statuses a job never leaves by itself. */
export const FINISHED_STATUSES = ['completed', 'failed', 'cancelled'] as const satisfies readonly JobStatus[];
export type FinishedStatus = (typeof FINISHED_STATUSES)[number];

/** The words the systems agentq replaces used for the same statuses. */
export const STATUS_ALIASES: Readonly<Record<string, JobStatus>> = {
  queued: 'pending',
  active: 'running',
  processing: 'running',
  success: 'completed',
  succeeded: 'completed',
  done: 'completed',
  error: 'failed',
  canceled: 'cancelled',
};

/** Resolves a status or one of its aliases; undefined when it is neither. */
export function resolveStatus(word: string): JobStatus | undefined {
  const lower = word.toLowerCase();
  if ((STATUSES as readonly string[]).includes(lower)) return lower as JobStatus;
  return STATUS_ALIASES[lower];
}

export function isFinished(status: JobStatus): status is FinishedStatus {
  return (FINISHED_STATUSES as readonly string[]).includes(status);
}

/**
 * Every transition, with the states it may start from and the state it ends in
 * (`to` is a list where the outcome depends on the job, e.g. attempts left).
 * Who moves a job along each edge:
 * - `claim`: a worker takes a due pending job (fills workerId, lease, attempt).
 * - `complete`, `fail`, `retryLater`: the worker holding the job's lease.
 * - `release`: a worker shutting down hands the job back unspent.
 * - `rescue`: any worker, for a running job whose lease expired.
 * - `cancel`: a user; cancelling a running job fires the handler's signal.
 * - `retry`: a user asks for another run of a finished job.
 * - `unblock`: the completion of a job's last dependency.
 * - `dependencyLost`: a dependency failed or was cancelled.
 * - `suspend`: the worker holding the lease parks the job until its children
 *   finish (`waiting`, no lease, no slot; `pending` at once if none is left).
 * - `resume`: the last unfinished child of a waiting job finished.
 */
export const TRANSITIONS = {
  claim: { from: ['pending'], to: ['running'] },
  complete: { from: ['running'], to: ['completed'] },
  fail: { from: ['running'], to: ['failed'] },
  retryLater: { from: ['running'], to: ['pending'] },
  release: { from: ['running'], to: ['pending'] },
  rescue: { from: ['running'], to: ['pending', 'failed'] },
  cancel: { from: ['blocked', 'pending', 'running', 'waiting'], to: ['cancelled'] },
  retry: { from: ['failed', 'cancelled'], to: ['pending', 'blocked'] },
  unblock: { from: ['blocked'], to: ['pending'] },
  dependencyLost: { from: ['blocked'], to: ['cancelled'] },
  suspend: { from: ['running'], to: ['waiting', 'pending'] },
  resume: { from: ['waiting'], to: ['pending'] },
} as const satisfies Record<string, { from: readonly JobStatus[]; to: readonly JobStatus[] }>;

export type TransitionName = keyof typeof TRANSITIONS;

export function canTransition(name: TransitionName, from: JobStatus): boolean {
  return (TRANSITIONS[name].from as readonly JobStatus[]).includes(from);
}

/** A SQL list of the states a transition may start from, e.g. `'pending','running'`. */
export function fromStatesSql(name: TransitionName): string {
  return TRANSITIONS[name].from.map((s) => `'${s}'`).join(',');
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface BackoffOptions {
  /** `exponential` doubles the delay each attempt; `fixed` keeps it. (Default: exponential) */
  type: 'exponential' | 'fixed';
  /** Delay before the second attempt. (Default: 1000 ms) */
  delayMs: number;
  /** Upper bound of any delay. (Default: 1 hour) */
  maxDelayMs: number;
  /** Randomize each delay between half and all of it, so retries spread out. (Default: true) */
  jitter: boolean;
}

export interface JobError {
  message: string;
  code?: string;
  name?: string;
  stack?: string;
  [key: string]: Json | undefined;
}

/** A job as the library, the REST API and the client show it. Times are ISO 8601 strings. */
export interface Job {
  id: string;
  agent: string;
  type: string;
  instructions: string;
  payload: Json;
  metadata: { [key: string]: Json };
  tags: string[];
  owner: string | null;
  priority: number;
  status: JobStatus;
  progress: number;
  progressMessage: string | null;
  result: Json;
  error: JobError | null;
  attempts: number;
  maxAttempts: number;
  backoff: BackoffOptions;
  timeoutMs: number | null;
  runAt: string;
  key: string | null;
  parentId: string | null;
  dependsOn: string[];
  scheduleId: string | null;
  workerId: string | null;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  heartbeatAt: string | null;
  leaseExpiresAt: string | null;
  /** What a `waiting` job waits for besides its children: an event or a person's decision. */
  waitingFor: WaitCondition | null;
  /** The rate-limit key its starts count against, besides its agent's (e.g. `openai:gpt-5`). */
  rateKey: string | null;
  /** What it and its descendants may use together. */
  budget: { tokens?: number; costUsd?: number } | null;
  /** finishedAt − startedAt for a finished job; now − startedAt for a running one. */
  durationMs: number | null;
}

/** What a suspended job waits for (see durable.ts). */
export type WaitCondition =
  | { kind: 'event'; key: string; pattern: string; match: { [key: string]: Json } | null; target: string | null; after: number; deadline: number | null }
  | { kind: 'approval'; key: string; approvalId: string; deadline: number | null };

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const satisfies readonly LogLevel[];

export interface JobLog {
  id: number;
  jobId: string;
  attempt: number;
  at: string;
  level: LogLevel;
  message: string;
  data: Json;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  type: 'exponential',
  delayMs: 1000,
  maxDelayMs: 3_600_000,
  jitter: true,
};

/**
 * The delay before the attempt after `attempt` (1-based) failed.
 * Exponential: delayMs · 2^(attempt−1), capped; with jitter a uniform pick in
 * [half, all] of that, so the delays still grow but retries do not stampede.
 */
export function backoffDelay(backoff: BackoffOptions, attempt: number, random: () => number = Math.random): number {
  const base =
    backoff.type === 'fixed' ? backoff.delayMs : backoff.delayMs * 2 ** Math.max(0, Math.min(attempt - 1, 40));
  const capped = Math.min(base, backoff.maxDelayMs);
  if (!backoff.jitter) return Math.round(capped);
  return Math.round(capped / 2 + random() * (capped / 2));
}
