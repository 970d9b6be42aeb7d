/**
 * What the MCP tools need from agentq: seven calls, with the names and shapes
 * of the library's Queue methods. A Queue is an McpBackend as it is (the local
 * database); a client of the REST API with the same method names can be one too.
 *
 * Errors: a backend throws errors that carry the library's `code` and, for bad
 * input, `details.field` (the library's field name) — as AgentqError does. The
 * codes the tools tell apart are `invalid_input`, `payload_too_large`,
 * `not_found`, `ambiguous_id`, `conflict` and `wait_timeout`; anything else is
 * reported as a failure of the backend.
 */
import type { Job, JobLog } from '../job.ts';
import type { CleanupOptions, CleanupResult, JobPage, ListOptions } from '../queue.ts';
import type { SubmitInput } from '../schema.ts';
import type { Approval } from '../durable.ts';

export interface McpBackend {
  /** Submits one job; a ValidationError (`invalid_input`) names the field at fault. */
  submit(input: SubmitInput): Promise<Job>;
  /** One job by id or unambiguous prefix (`not_found`, `ambiguous_id`). */
  get(idOrPrefix: string): Promise<Job>;
  /** A page of jobs, newest first, and the cursor of the next page. */
  list(options?: ListOptions): Promise<JobPage>;
  /** Cancels an unfinished job (`conflict` when it already completed or failed). */
  cancel(idOrPrefix: string, options?: { reason?: string }): Promise<Job>;
  /** Deletes finished jobs older than a cut-off; with `dryRun`, only lists them. */
  cleanup(options?: CleanupOptions): Promise<CleanupResult>;
  /** Resolves with the job once it has finished; `wait_timeout` when `timeoutMs` ran out first. */
  wait(idOrPrefix: string, options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<Job>;
  /** A job's log lines after the line with id `after`, oldest first. */
  logs(idOrPrefix: string, options?: { after?: number; limit?: number }): Promise<JobLog[]>;
  /** Approval gates (absent: the approval tools say so). `by` is who decides, where the backend does not know. */
  approvals?: {
    list(options?: { status?: Approval['status'][]; jobId?: string; limit?: number }): Promise<Approval[]>;
    approve(id: string, options?: { by?: string | null; comment?: string }): Promise<Approval>;
    reject(id: string, options?: { by?: string | null; comment?: string }): Promise<Approval>;
  };
}
