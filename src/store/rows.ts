/** Mapping between stored rows (snake_case, ms timestamps, JSON text) and Job objects. */
import type { BackoffOptions, Job, JobError, JobLog, JobStatus, Json, LogLevel } from '../job.ts';
import type { ApprovalRecord, ApprovalStatus, NewJob, StoredEvent, UsageTotals } from './store.ts';

export interface JobRow {
  id: string;
  agent: string;
  type: string;
  instructions: string;
  payload: string;
  metadata: string;
  tags: string;
  owner: string | null;
  priority: number;
  status: JobStatus;
  progress: number;
  progress_message: string | null;
  result: string | null;
  error: string | null;
  attempts: number;
  max_attempts: number;
  backoff: string;
  timeout_ms: number | null;
  run_at: number;
  key: string | null;
  parent_id: string | null;
  depends_on: string;
  schedule_id: string | null;
  worker_id: string | null;
  created_at: number;
  updated_at: number;
  started_at: number | null;
  finished_at: number | null;
  heartbeat_at: number | null;
  lease_expires_at: number | null;
  /** Absent where a query does not select it. */
  wait_for?: string | null;
  rate_key?: string | null;
  budget?: string | null;
}

export interface LogRow {
  id: number;
  job_id: string;
  attempt: number;
  at: number;
  level: LogLevel;
  message: string;
  data: string | null;
}

/**
 * ISO 8601 for a time in ms. The last few answers are kept: the rows of a
 * batch share a handful of times (created, claimed, lease end), which a
 * single cached answer would miss as each row goes through them in turn.
 */
const ISO_KEPT = 8;
const isoMs = new Float64Array(ISO_KEPT).fill(NaN);
const isoText: string[] = new Array<string>(ISO_KEPT).fill('');
let isoNext = 0;
const iso = (ms: number): string => {
  for (let i = 0; i < ISO_KEPT; i++) if (isoMs[i] === ms) return isoText[i];
  const text = new Date(ms).toISOString();
  isoMs[isoNext] = ms;
  isoText[isoNext] = text;
  isoNext = (isoNext + 1) % ISO_KEPT;
  return text;
};
const isoOrNull = (ms: number | null): string | null => (ms == null ? null : iso(Number(ms)));

export function rowToJob(r: JobRow, now: number): Job {
  const startedAt = r.started_at == null ? null : Number(r.started_at);
  const finishedAt = r.finished_at == null ? null : Number(r.finished_at);
  let durationMs: number | null = null;
  if (startedAt != null) {
    if (finishedAt != null) durationMs = Math.max(0, finishedAt - startedAt);
    else if (r.status === 'running') durationMs = Math.max(0, now - startedAt);
  }
  return {
    id: r.id,
    agent: r.agent,
    type: r.type,
    instructions: r.instructions,
    payload: JSON.parse(r.payload) as Json,
    metadata: JSON.parse(r.metadata) as Job['metadata'],
    tags: JSON.parse(r.tags) as string[],
    owner: r.owner,
    priority: Number(r.priority),
    status: r.status,
    progress: Number(r.progress),
    progressMessage: r.progress_message,
    result: r.result == null ? null : (JSON.parse(r.result) as Json),
    error: r.error == null ? null : (JSON.parse(r.error) as JobError),
    attempts: Number(r.attempts),
    maxAttempts: Number(r.max_attempts),
    backoff: JSON.parse(r.backoff) as BackoffOptions,
    timeoutMs: r.timeout_ms == null ? null : Number(r.timeout_ms),
    runAt: iso(Number(r.run_at)),
    key: r.key,
    parentId: r.parent_id,
    dependsOn: JSON.parse(r.depends_on) as string[],
    scheduleId: r.schedule_id,
    workerId: r.worker_id,
    createdAt: iso(Number(r.created_at)),
    updatedAt: iso(Number(r.updated_at)),
    startedAt: isoOrNull(startedAt),
    finishedAt: isoOrNull(finishedAt),
    heartbeatAt: isoOrNull(r.heartbeat_at),
    leaseExpiresAt: isoOrNull(r.lease_expires_at),
    waitingFor: r.wait_for == null ? null : (JSON.parse(r.wait_for) as Job['waitingFor']),
    rateKey: r.rate_key ?? null,
    budget: r.budget == null ? null : (JSON.parse(r.budget) as Job['budget']),
    durationMs,
  };
}

/** The job as just inserted, built from what was stored rather than read back. */
export function newJobToJob(j: NewJob, status: JobStatus, error: string | null, now: number): Job {
  const created = iso(now);
  return {
    id: j.id,
    agent: j.agent,
    type: j.type,
    instructions: j.instructions,
    payload: j.decoded.payload,
    metadata: j.decoded.metadata,
    tags: j.decoded.tags,
    owner: j.owner,
    priority: j.priority,
    status,
    progress: 0,
    progressMessage: null,
    result: null,
    error: error == null ? null : (JSON.parse(error) as JobError),
    attempts: 0,
    maxAttempts: j.maxAttempts,
    backoff: j.decoded.backoff,
    timeoutMs: j.timeoutMs,
    runAt: j.runAt === now ? created : iso(j.runAt),
    key: j.key,
    parentId: j.parentId,
    dependsOn: j.dependsOn,
    scheduleId: j.scheduleId,
    workerId: null,
    createdAt: created,
    updatedAt: created,
    startedAt: null,
    finishedAt: status === 'cancelled' ? created : null,
    heartbeatAt: null,
    leaseExpiresAt: null,
    waitingFor: null,
    rateKey: j.rateKey,
    budget: j.budget == null ? null : (JSON.parse(j.budget) as Job['budget']),
    durationMs: null,
  };
}

export function rowToLog(r: LogRow): JobLog {
  return {
    id: Number(r.id),
    jobId: r.job_id,
    attempt: Number(r.attempt),
    at: iso(Number(r.at)),
    level: r.level,
    message: r.message,
    data: r.data == null ? null : (JSON.parse(r.data) as Json),
  };
}

/** The error stored on a job whose dependency failed or was cancelled. */
export function dependencyError(dependencyId: string, dependencyStatus: JobStatus): string {
  return JSON.stringify({
    message: `dependency ${dependencyId} ${dependencyStatus === 'failed' ? 'failed' : 'was cancelled'}`,
    code: 'dependency_failed',
    dependency: dependencyId,
  });
}

/** The error stored on an unfinished descendant of a job cancelled with its descendants. */
export function parentCancelledError(ancestorId: string): string {
  return JSON.stringify({ message: `ancestor ${ancestorId} was cancelled`, code: 'parent_cancelled', ancestor: ancestorId });
}

/**
 * Whether a new job may refer to (depend on, be a child of) a stored job: a
 * job without an owner may refer to any; an owned one only to the same owner's.
 */
export function sameOwner(job: { owner: string | null }, otherOwner: string | null): boolean {
  return job.owner == null || job.owner === otherOwner;
}

export const LEASE_EXPIRED_ERROR = JSON.stringify({
  message: 'the worker running this job stopped renewing its lease (crashed, killed or cut off)',
  code: 'lease_expired',
});

export interface EventRow {
  id: number | string;
  type: string;
  source: string;
  target: string | null;
  job_id: string | null;
  owner: string | null;
  payload: string;
  created_at: number | string;
}

export function rowToEvent(r: EventRow): StoredEvent {
  return {
    id: Number(r.id),
    type: r.type,
    source: r.source,
    target: r.target,
    jobId: r.job_id,
    owner: r.owner,
    payload: r.payload,
    createdAt: Number(r.created_at),
  };
}

/** An approval row joined with its job's owner and agent (numbers may come as strings from PostgreSQL). */
export interface ApprovalRow {
  id: string;
  job_id: string;
  owner: string | null;
  agent: string;
  title: string;
  details: string;
  assignee: string | null;
  status: ApprovalStatus;
  comment: string | null;
  decided_by: string | null;
  decided_at: number | string | null;
  expires_at: number | string | null;
  created_at: number | string;
}

export function rowToApproval(r: ApprovalRow): ApprovalRecord {
  const n = (v: number | string | null) => (v == null ? null : Number(v));
  return {
    id: r.id,
    jobId: r.job_id,
    owner: r.owner,
    agent: r.agent,
    title: r.title,
    details: r.details,
    assignee: r.assignee,
    status: r.status,
    comment: r.comment,
    decidedBy: r.decided_by,
    decidedAt: n(r.decided_at),
    expiresAt: n(r.expires_at),
    createdAt: Number(r.created_at),
  };
}

/** Sums of job_usage rows, as both engines select them (`USAGE_SUMS` below). */
export interface TotalsRow {
  calls: number | string;
  input: number | string | null;
  output: number | string | null;
  cost: number | string | null;
}

export const USAGE_SUMS = `count(u.id) AS calls, sum(u.input_tokens) AS input, sum(u.output_tokens) AS output, sum(u.cost_usd) AS cost`;

export function rowToTotals(r: TotalsRow | undefined): UsageTotals {
  return {
    calls: Number(r?.calls ?? 0),
    inputTokens: Number(r?.input ?? 0),
    outputTokens: Number(r?.output ?? 0),
    costUsd: Number(r?.cost ?? 0),
  };
}
