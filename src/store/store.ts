/**
 * The storage boundary. Everything above it (queue, worker, CLI, server)
 * speaks only to this interface; SQLite and PostgreSQL implement it with the
 * same behaviour, checked by one test suite. Every method that changes a job is
 * one transaction that checks the state it expects (see TRANSITIONS in job.ts).
 */
import type { Job, JobLog, JobStatus, LogLevel } from '../job.ts';

/** A job ready to be stored: validated, defaults applied, JSON already encoded. */
export interface NewJob {
  id: string;
  agent: string;
  type: string;
  instructions: string;
  payload: string;
  metadata: string;
  tags: string;
  owner: string | null;
  priority: number;
  maxAttempts: number;
  backoff: string;
  timeoutMs: number | null;
  runAt: number;
  key: string | null;
  parentId: string | null;
  dependsOn: string[];
  scheduleId: string | null;
  rateKey: string | null;
  /** Encoded JSON {tokens?, costUsd?}, or null. */
  budget: string | null;
  /** The JSON fields above, decoded, so a stored job can be shown without parsing them back. */
  decoded: Pick<Job, 'payload' | 'metadata' | 'tags' | 'backoff'>;
}

export interface JobState {
  id: string;
  status: JobStatus;
  workerId: string | null;
  attempt: number;
  owner: string | null;
}

export interface InsertedJob {
  job: Job;
  /** false when a job with the same idempotency key already existed and is returned instead. */
  created: boolean;
}

/** The right to change a running job: held by one worker for one attempt. */
export interface Lease {
  id: string;
  workerId: string;
  attempt: number;
}

export interface ClaimParams {
  workerId: string;
  agents: readonly string[];
  /** Only jobs of these types, when given. */
  types?: readonly string[];
  limit: number;
  leaseMs: number;
}

/** How an attempt ended, as the worker reports it. Encoded JSON in `result`/`error`. */
export type Outcome =
  | { kind: 'complete'; lease: Lease; result: string }
  | { kind: 'fail'; lease: Lease; error: string }
  | { kind: 'retry'; lease: Lease; error: string; runAt: number }
  | { kind: 'release'; lease: Lease }
  /** Park the job until its children finish; the attempt is given back, as on release. */
  | { kind: 'wait'; lease: Lease };

export interface JobFilter {
  status?: readonly JobStatus[];
  agent?: readonly string[];
  type?: readonly string[];
  owner?: readonly string[];
  tag?: string;
  parentId?: string;
  scheduleId?: string;
  /** Only ids that start with this (a range on the primary key). */
  idPrefix?: string;
  /** Keyset cursor: the id of the last job of the previous page. */
  after?: string;
  /** Newest first (desc, the default) or oldest first. */
  order?: 'asc' | 'desc';
  limit: number;
}

export interface NewLog {
  jobId: string;
  attempt: number;
  level: LogLevel;
  message: string;
  data: string | null;
}

export interface StatsRow {
  status: JobStatus;
  agent: string;
  count: number;
}

/** Jobs that finished in one minute with one status (`minute` = epoch ms / 60000, floored). */
export interface ThroughputRow {
  minute: number;
  status: JobStatus;
  count: number;
}

export interface CleanupParams {
  statuses: readonly JobStatus[];
  finishedBefore: number;
  dryRun: boolean;
}

export interface WorkerInfo {
  id: string;
  name: string;
  host: string;
  pid: number;
  agents: string[];
  types: string[] | null;
  concurrency: number;
  startedAt: string;
  heartbeatAt: string;
  /** Ids of the jobs this worker holds now. */
  running: string[];
}

export interface WorkerRegistration {
  id: string;
  name: string;
  host: string;
  pid: number;
  agents: readonly string[];
  types: readonly string[] | null;
  concurrency: number;
}

export interface CancelResult {
  job: Job;
  /** The status before the cancel; equal to job.status when nothing changed. */
  previous: JobStatus;
  /** Dependents (and, when asked, descendants) cancelled along with it. */
  cascaded: string[];
}

export interface RescueResult {
  requeued: string[];
  failed: string[];
}

/** A schedule as stored. Times are ms since the epoch; `job` is the encoded job template. */
export interface ScheduleRecord {
  id: string;
  name: string;
  description: string | null;
  cron: string | null;
  intervalMs: number | null;
  timezone: string;
  /** The job each firing submits, as JSON text (agent, type, instructions, payload, ...). */
  job: string;
  enabled: boolean;
  overlap: 'allow' | 'skip';
  /** null while disabled, or when the expression never fires again. */
  nextRunAt: number | null;
  lastRunAt: number | null;
  lastJobId: string | null;
  /** The status of the job `lastJobId` names (null when it is gone or there is none). */
  lastJobStatus: JobStatus | null;
  /** Grows on every change (edit, firing), so writers can check they changed what they read. */
  revision: number;
  createdAt: number;
  updatedAt: number;
}

/** The fields of a schedule its owner sets; the rest the store and the scheduler keep. */
export type ScheduleDefinitionRecord = Pick<
  ScheduleRecord,
  'id' | 'name' | 'description' | 'cron' | 'intervalMs' | 'timezone' | 'job' | 'enabled' | 'overlap' | 'nextRunAt'
>;

/**
 * Schedules to create, replace and remove in one transaction. Each put names
 * the revision it was computed from (null: it must not exist yet); when any
 * differs, a ConflictError is thrown and nothing is changed.
 */
export interface ScheduleChanges {
  put: ReadonlyArray<{ schedule: ScheduleDefinitionRecord; expectedRevision: number | null }>;
  remove: ReadonlyArray<{ id: string; expectedRevision: number }>;
}

/**
 * One firing of a schedule. With `expectedRevision` it is the scheduler's:
 * it takes only if the schedule is still enabled and unchanged since it was
 * read, moves `nextRunAt` on in the same transaction, and (overlap `skip`)
 * submits nothing while the schedule's last job is unfinished. Without it, it
 * is a manual run: it always submits and leaves `nextRunAt` alone.
 */
export interface ScheduleFiring {
  scheduleId: string;
  expectedRevision?: number;
  nextRunAt?: number | null;
  /** The time the firing was due (manual runs: now). */
  firedAt: number;
  /** The job to submit; its key makes a second submit of the same firing return the first job. */
  job: NewJob;
}

export type FiringResult =
  | { outcome: 'fired'; job: Job; created: boolean }
  | { outcome: 'skipped'; runningJobId: string }
  /** Another scheduler took this firing, or the schedule changed or went since it was read. */
  | { outcome: 'lost' };

/** Schedule storage (the schedules.ts of each engine): part of every engine. */
export interface ScheduleStore {
  /** A schedule by id, or else by name. */
  getSchedule(idOrName: string): Promise<ScheduleRecord | null>;
  /** Every schedule, by name. */
  listSchedules(): Promise<ScheduleRecord[]>;
  /** Creates, replaces and removes schedules in one transaction (see ScheduleChanges). A taken name is a ConflictError. */
  saveSchedules(changes: ScheduleChanges): Promise<void>;
  /** Enabled schedules whose next run is at or before `now`, earliest first. */
  dueSchedules(now: number, limit: number): Promise<ScheduleRecord[]>;
  /** The earliest next run of an enabled schedule, or null. */
  nextScheduleRunAt(): Promise<number | null>;
  /** Claims one firing and submits its job, in one transaction. */
  fireSchedule(firing: ScheduleFiring): Promise<FiringResult>;
}

export type UserRole = 'admin' | 'user';

export interface UserRecord {
  name: string;
  role: UserRole;
  createdAt: number;
  /** Tokens not revoked. */
  tokens: number;
}

export interface TokenRecord {
  id: string;
  user: string;
  /** The SHA-256 of the token, hex: the token itself is never stored. */
  hash: string;
  createdAt: number;
}

/** Users and their API tokens: part of every engine. */
export interface UserStore {
  /** Creates a user; a taken name is a ConflictError. */
  createUser(name: string, role: UserRole): Promise<UserRecord>;
  getUser(name: string): Promise<UserRecord | null>;
  listUsers(): Promise<UserRecord[]>;
  /** Removes a user and every token of theirs; false when there was none. */
  removeUser(name: string): Promise<boolean>;
  /** Stores a token (hashed) for an existing user; false when the user does not exist. */
  addToken(token: TokenRecord): Promise<boolean>;
  /** The user a token hash belongs to, unless revoked. */
  findToken(hash: string): Promise<{ tokenId: string; user: string; role: UserRole } | null>;
  /** Revokes a user's tokens (all, or one by id); returns how many. */
  revokeTokens(user: string, tokenId?: string): Promise<number>;
}

export const APPROVAL_STATUSES = ['pending', 'approved', 'rejected', 'expired'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];

/** Which approvals to list, newest first. */
export interface ApprovalFilter {
  status?: readonly ApprovalStatus[];
  /** Of jobs this user owns. */
  owner?: string;
  /** Of jobs this user owns, or assigned to them. */
  visibleTo?: string;
  jobId?: string;
  /** Ids that start with this (upper-case letters and digits only). */
  idPrefix?: string;
  limit: number;
}

export interface ApprovalRecord {
  id: string;
  jobId: string;
  /** The owner of the job. */
  owner: string | null;
  agent: string;
  title: string;
  /** Encoded JSON. */
  details: string;
  assignee: string | null;
  status: ApprovalStatus;
  comment: string | null;
  decidedBy: string | null;
  decidedAt: number | null;
  expiresAt: number | null;
  createdAt: number;
}

export interface NewApproval {
  id: string;
  title: string;
  details: string;
  assignee: string | null;
  expiresAt: number | null;
}

export interface WaitingJob {
  id: string;
  owner: string | null;
  /** Encoded JSON: what it waits for (an event or a decision). */
  waitFor: string;
}

/**
 * Durable steps, suspended jobs and approvals: part of every engine. Every
 * write a handler makes is fenced by its lease; every resume is exactly once
 * (it checks the job still waits for the same thing).
 */
export interface DurableStore {
  /** The finished steps of a job: name → encoded JSON result. */
  getSteps(jobId: string): Promise<Map<string, string>>;
  /** Stores (or replaces) a step's result while the lease holds; false when it does not. */
  saveStep(lease: Lease, name: string, value: string): Promise<boolean>;
  /**
   * Parks a running job as `waiting` for `waitFor` (no lease, no slot, the
   * attempt given back), with its approval request when it waits for one.
   * False when the lease no longer holds.
   */
  suspendJob(lease: Lease, waitFor: string, approval?: NewApproval): Promise<boolean>;
  /** Jobs waiting for an event or a decision. */
  listWaits(): Promise<WaitingJob[]>;
  /** A waiting job becomes pending with a step stored (the event or decision it waited for). */
  resumeWait(id: string, waitFor: string, step: { name: string; value: string }): Promise<boolean>;
  /** A waiting job fails (timeout, rejection, expiry); an approval's decision is stored with it. */
  failWait(id: string, waitFor: string, error: string, approval?: ApprovalDecision): Promise<boolean>;
  getApproval(id: string): Promise<ApprovalRecord | null>;
  listApprovals(filter: ApprovalFilter): Promise<ApprovalRecord[]>;
  /**
   * Records a decision on a pending approval and, in the same transaction,
   * resumes its job (approved: with the decision as a step) or fails it.
   * Null when it was no longer pending.
   */
  decideApproval(decision: ApprovalDecision, resume: { waitFor: string; step: { name: string; value: string } } | { waitFor: string; error: string }): Promise<ApprovalRecord | null>;
}

export interface ApprovalDecision {
  id: string;
  status: 'approved' | 'rejected' | 'expired';
  by: string | null;
  comment: string | null;
  at: number;
}

export interface RateLimitRecord {
  key: string;
  /** Starts allowed per window; null: no window (only a pause). */
  max: number | null;
  perMs: number | null;
  /** No starts before this time (a 429 said so). */
  pausedUntil: number | null;
}

export type RateSlot = { ok: true } | { ok: false; retryAt: number; key: string };

export interface UsageRecord {
  jobId: string;
  model: string | null;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
}

export interface UsageTotals {
  calls: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
}

/** Rate limits and usage accounting: part of every engine. */
export interface LimitStore {
  setRateLimit(key: string, limit: { max: number; perMs: number } | null): Promise<void>;
  listRateLimits(): Promise<RateLimitRecord[]>;
  /**
   * For each request, takes one start of each of its keys, all or none; one
   * transaction for the whole batch, across
   * every process: refused (with when to try again) when a key's window is
   * full or the key is paused. Keys without a limit are ignored.
   */
  takeRateSlots(requests: ReadonlyArray<readonly string[]>): Promise<RateSlot[]>;
  /** No starts of these keys before `until` (creates the keys if needed). */
  pauseRateKeys(keys: readonly string[], until: number): Promise<void>;
  /** Puts a running job back, due at `runAt`, its attempt given back; false when the lease no longer holds. */
  deferJob(lease: Lease, runAt: number): Promise<boolean>;
  /** Records usage of a running job (fenced by its lease); false when the lease no longer holds. */
  addUsage(lease: Lease, usage: UsageRecord): Promise<boolean>;
  /** Usage of one job, or of it and all its descendants. */
  jobUsage(jobId: string, options: { tree: boolean }): Promise<UsageTotals>;
  /** Usage summed per agent or per owner of the jobs that used it. */
  usageBy(group: 'agent' | 'owner', owner?: string): Promise<Array<UsageTotals & { name: string | null }>>;
  /** The budgets of a job and its ancestors, nearest first (encoded JSON each). */
  budgetChain(jobId: string): Promise<Array<{ jobId: string; budget: string }>>;
}

export interface Store extends ScheduleStore, UserStore, DurableStore, LimitStore {
  readonly engine: 'sqlite' | 'postgres';

  /** Applies pending migrations; returns the schema version. Safe to run from many processes at once. */
  migrate(): Promise<number>;
  /** The schema version the database is at, and the one this code needs. */
  schemaVersion(): Promise<{ current: number; latest: number }>;
  close(): Promise<void>;
  /** The store's clock reading, in ms since the epoch (the database's clock where it has one). */
  now(): number;

  /**
   * Inserts jobs in one transaction, in order (a job may depend on one before
   * it in the same call). Jobs whose key exists return the existing job.
   * Unknown `dependsOn` or `parentId` ids — or, for a job with an owner, ids of
   * another owner's jobs — throw a ValidationError and nothing is stored.
   */
  insertJobs(jobs: readonly NewJob[]): Promise<InsertedJob[]>;
  getJob(id: string): Promise<Job | null>;
  listJobs(filter: JobFilter): Promise<Job[]>;
  /** Jobs of the given parent (delegation children). */
  listChildren(parentId: string): Promise<Job[]>;

  /** pending → running for up to `limit` due jobs, highest priority first, respecting agent caps. */
  claimJobs(params: ClaimParams): Promise<Job[]>;
  /** Renews leases; returns the ids whose lease is still held. */
  heartbeat(leases: readonly Lease[], leaseMs: number): Promise<Set<string>>;
  /** Records attempt outcomes, each only if its lease is still held. Returns, per outcome, whether it took. */
  finishJobs(outcomes: readonly Outcome[]): Promise<boolean[]>;
  /**
   * Optional: `finishJobs(outcomes)` then `claimJobs(params)` in one transaction
   * (the claim sees the finished jobs gone from the caps), for engines where a
   * commit is the cost. All of it or none of it. (A server engine does better
   * without it: the claim and the durable write of the outcomes then run at
   * once, on two connections, and the claim need not wait for the write.)
   */
  finishAndClaimJobs?(outcomes: readonly Outcome[], params: ClaimParams): Promise<{ took: boolean[]; jobs: Job[] }>;
  setProgress(lease: Lease, progress: number, message: string | null): Promise<boolean>;
  /** The current status, worker and attempt of each of these jobs that exists. */
  jobStates(ids: readonly string[]): Promise<JobState[]>;
  /**
   * Returns null when the job does not exist. With `descendants`, its unfinished
   * children (recursively) are cancelled too, in the same transaction.
   */
  cancelJob(id: string, error: string, options?: { descendants?: boolean }): Promise<CancelResult | null>;
  /** failed/cancelled → pending (or blocked); throws ConflictError from other states. */
  retryJob(id: string, extraAttempts: number): Promise<Job | null>;
  /** Running jobs whose lease expired go back to pending (a new attempt) or fail when attempts are used up. */
  rescueExpired(): Promise<RescueResult>;
  /** Running jobs with a heartbeat older than `olderThanMs`. */
  hungJobs(olderThanMs: number): Promise<Job[]>;
  /** The earliest run-at of a pending job of these agents, or null. */
  nextRunAt(agents: readonly string[]): Promise<number | null>;

  appendLogs(logs: readonly NewLog[]): Promise<void>;
  listLogs(jobId: string, after: number, limit: number): Promise<JobLog[]>;

  /** Counts per status and agent: of every job, or of one owner's. */
  stats(owner?: string): Promise<StatsRow[]>;
  /** Finished jobs per minute and status since `since` (epoch ms): of every job, or of one owner's. A range on finished_at. */
  throughput(since: number, owner?: string): Promise<ThroughputRow[]>;
  /** Deletes (or with dryRun, lists) finished jobs and their logs. Returns their ids. */
  cleanup(params: CleanupParams): Promise<string[]>;

  registerWorker(worker: WorkerRegistration): Promise<void>;
  workerHeartbeat(id: string): Promise<void>;
  removeWorker(id: string): Promise<void>;
  /** Workers whose heartbeat is newer than `aliveWithinMs`. */
  listWorkers(aliveWithinMs: number): Promise<WorkerInfo[]>;

  /** A global cap on running jobs of an agent, across all workers; null removes it. */
  setAgentConcurrency(agent: string, max: number | null): Promise<void>;
  agentConcurrency(): Promise<Record<string, number>>;

  /** Stores published events (in one transaction) and returns them with their ids. */
  appendEvents(events: readonly NewEvent[]): Promise<StoredEvent[]>;
  /** Events after an id, oldest first. */
  listEvents(filter: EventFilter): Promise<StoredEvent[]>;
  /** The id of the newest event, or 0. */
  lastEventId(): Promise<number>;
  /** Events of these types after `after` (up to `upTo`), counted per type and target. */
  countEvents(after: number, upTo: number, types: readonly string[]): Promise<Array<{ type: string; target: string | null; n: number }>>;
  /** Deletes events older than a time; returns how many. */
  deleteEvents(before: number): Promise<number>;

  /**
   * Calls `listener` soon after any process changed the store. A hint, not a
   * guarantee: callers also poll. Returns a function that stops listening.
   */
  onChange(listener: () => void): () => void;
}

/**
 * Job events, written by the store in the same transaction as the change
 * they describe. Their payload: jobId, agent, type, status, attempt,
 * progress, progressMessage, error, parentId — the job as it is after the change.
 */
export const JOB_EVENT_TYPES = [
  'job.created',
  'job.started',
  'job.progress',
  'job.completed',
  'job.failed',
  'job.retrying',
  'job.released',
  'job.waiting',
  'job.resumed',
  'job.unblocked',
  'job.cancelled',
  'job.retried',
] as const;
export type JobEventType = (typeof JOB_EVENT_TYPES)[number];

export interface NewEvent {
  type: string;
  source: string;
  /** The agent it is for; null is everyone. */
  target: string | null;
  jobId: string | null;
  owner: string | null;
  /** Encoded JSON. */
  payload: string;
}

export interface StoredEvent extends NewEvent {
  id: number;
  createdAt: number;
}

export interface EventFilter {
  after: number;
  limit: number;
  /** SQL LIKE patterns on the type (a pre-filter: callers match exactly). */
  typeLike?: readonly string[];
  /** Only events for these agents and those for everyone. */
  target?: string;
  /** Only events of this owner's jobs and published events without an owner. */
  owner?: string;
  /** Only events about this job. */
  jobId?: string;
  /** Only events created in this range (epoch ms, both ends included): with jobId, a range on the created_at index bounds the scan. */
  createdFrom?: number;
  createdTo?: number;
}
