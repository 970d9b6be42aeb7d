/**
 * Errors agentq raises, each with a stable `code` and the HTTP status the REST
 * API answers with, and errors a handler throws to steer its job.
 */

export interface ErrorDetails {
  /** The input field that is wrong, as a dotted path (`payload`, `tags.2`). */
  field?: string;
  [key: string]: unknown;
}

export class AgentqError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details: ErrorDetails | undefined;

  constructor(code: string, status: number, message: string, details?: ErrorDetails) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
    this.details = details;
  }

  toJSON(): { code: string; message: string; details?: ErrorDetails } {
    return { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

/** Bad input: names the field. Nothing was stored. */
export class ValidationError extends AgentqError {
  readonly field: string;
  /** In a batch, the position of the job at fault. */
  index: number | undefined;
  constructor(field: string, message: string, details?: ErrorDetails) {
    super('invalid_input', 400, field ? `${field}: ${message}` : message, { field, ...details });
    this.field = field;
  }

  /** The same complaint about the same field, one level down (`3.dependsOn.0`). */
  within(prefix: string): ValidationError {
    const inner = this.field ? this.message.slice(this.field.length + 2) : this.message;
    return new ValidationError(`${prefix}.${this.field}`, inner, { ...this.details, field: `${prefix}.${this.field}` });
  }
}

/** Input larger than the configured limit. Nothing was stored. */
export class PayloadTooLargeError extends AgentqError {
  constructor(field: string, size: number, limit: number) {
    super('payload_too_large', 413, `${field}: ${size} bytes is over the limit of ${limit} bytes`, {
      field,
      size,
      limit,
    });
  }
}

export class NotFoundError extends AgentqError {
  constructor(what: string, id: string) {
    super('not_found', 404, `${what} ${id} not found`, { id });
  }
}

/** An id prefix that matches more than one job (or approval). */
export class AmbiguousIdError extends AgentqError {
  constructor(prefix: string, matches: string[], what: 'jobs' | 'approvals' = 'jobs') {
    const count = matches.length > 5 ? 'more than 5' : String(matches.length);
    super('ambiguous_id', 400, `id prefix ${prefix} matches ${count} ${what} (${matches.slice(0, 5).join(', ')}); give more characters`, {
      field: 'id',
      matches,
    });
  }
}

/** A wait for a job gave up before the job finished. */
export class WaitTimeoutError extends AgentqError {
  constructor(id: string, status: string, timeoutMs: number, message = `job ${id} is still ${status} after ${timeoutMs} ms`) {
    super('wait_timeout', 408, message, { id, status, timeoutMs });
  }
}

/** The job is not in a state that allows the change (e.g. retrying a running job). */
export class ConflictError extends AgentqError {
  constructor(message: string, details?: ErrorDetails) {
    super('conflict', 409, message, details);
  }
}

/** The database's schema is older than this agentq: migrations are to be applied first. */
export class SchemaBehindError extends AgentqError {
  constructor(current: number, latest: number) {
    super(
      'schema_behind',
      503,
      `the database's agentq schema is at version ${current}, this agentq needs ${latest}: run \`agentq migrate\` (or open the queue with migrations on)`,
      { current, latest },
    );
  }
}

/**
 * Thrown by a handler to fail its job at once, without further attempts
 * (a bad request that no retry can mend).
 */
export class NonRetryableError extends Error {
  readonly retryable = false;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'NonRetryableError';
  }
}

/** The reason a handler's signal fires when its job runs past `timeoutMs`. */
export class JobTimeoutError extends Error {
  readonly code = 'timeout';
  constructor(timeoutMs: number) {
    super(`job timed out after ${timeoutMs} ms`);
    this.name = 'JobTimeoutError';
  }
}

/**
 * The reason a handler's signal fires when its job was cancelled. `force` is
 * true after `kill --force`: stop at once, with no grace period (command
 * agents send SIGKILL straight away).
 */
export class JobCancelledError extends Error {
  readonly code = 'cancelled';
  readonly force: boolean;
  constructor(options: { force?: boolean } = {}) {
    super(options.force ? 'job was killed (force)' : 'job was cancelled');
    this.name = 'JobCancelledError';
    this.force = options.force === true;
  }
}

/** The reason a handler's signal fires when its worker no longer holds the job's lease. */
export class LeaseLostError extends Error {
  readonly code = 'lease_lost';
  constructor() {
    super('the lease on this job was lost; another worker may run it');
    this.name = 'LeaseLostError';
  }
}

/** The reason a handler's signal fires when its worker shuts down past the grace period. */
export class ShutdownError extends Error {
  readonly code = 'shutdown';
  constructor() {
    super('worker is shutting down; the job is handed back');
    this.name = 'ShutdownError';
  }
}
