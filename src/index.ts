/** agentq: a durable job queue, scheduler and event bus for AI-agent work. */
export { Queue, type QueueOptions, type ListOptions, type JobPage, type Stats, type Throughput, type CleanupOptions, type CleanupResult, type JobTree } from './queue.ts';
export { Events, compilePattern, type AgentqEvent, type PublishInput, type ReadOptions, type SubscribeOptions, type Subscription } from './events.ts';
export { JOB_EVENT_TYPES, type JobEventType } from './store/store.ts';
export { Approvals, WaitFailedError, type Approval, type ApprovalGranted, type DurableContext } from './durable.ts';
export { Users, hashToken, type User, type Principal, type IssuedToken } from './users.ts';
export { createApi, type Api, type ApiOptions } from './http/server.ts';
export { mountDashboard, SESSION_COOKIE, DASHBOARD_CSP, type DashboardOptions } from './http/dashboard.ts';
export { startHttpServer, type HttpServer, type HttpServerOptions } from './http/node.ts';
export { Worker, type WorkerOptions, type Handler, type Handlers, type JobContext, type WorkerEvents } from './worker.ts';
export {
  AgentsFileError,
  CommandFailedError,
  CommandOutputError,
  CommandTimeoutError,
  allCommandsSettled,
  applyAgentCaps,
  commandHandler,
  commandHandlers,
  killAllCommands,
  loadAgentsFile,
  parseAgentsFile,
  validateAgent,
  type CommandAgent,
  type ResultMode,
  type StdinMode,
} from './agents/command.ts';
export {
  STATUSES,
  FINISHED_STATUSES,
  STATUS_ALIASES,
  TRANSITIONS,
  resolveStatus,
  isFinished,
  backoffDelay,
  type Job,
  type JobStatus,
  type JobLog,
  type JobError,
  type LogLevel,
  type Json,
  type BackoffOptions,
} from './job.ts';
export {
  AgentqError,
  ValidationError,
  PayloadTooLargeError,
  NotFoundError,
  AmbiguousIdError,
  ConflictError,
  SchemaBehindError,
  WaitTimeoutError,
  NonRetryableError,
  JobTimeoutError,
  JobCancelledError,
  LeaseLostError,
  ShutdownError,
} from './errors.ts';
export { ManualClock, systemClock, type Clock } from './clock.ts';
export {
  Schedules,
  Scheduler,
  ScheduleValidationError,
  parseSchedulesFile,
  parseInterval,
  type Schedule,
  type ScheduleInput,
  type JobTemplate,
  type ApplyOptions,
  type ApplyResult,
  type SchedulerOptions,
  type SchedulerEvents,
} from './schedules/index.ts';
export { parseConnectionString, defaultDatabasePath, openStore } from './connect.ts';
export type { Store, WorkerInfo } from './store/store.ts';
export type { SubmitInput, GraphJobInput } from './schema.ts';

import { Queue, type QueueOptions } from './queue.ts';

/** Opens a queue on a connection string: a SQLite file path or `sqlite:` URL (default: AGENTQ_DATABASE_URL, then a file in the user's data folder). */
export function openQueue(url?: string, options?: QueueOptions): Promise<Queue> {
  return Queue.open(url, options);
}
