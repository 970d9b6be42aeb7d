/**
 * Errors as a model reads them: one message that names the tool's parameter
 * at fault (the library's `agent` is the tool's `agent_name`) and says what
 * would be right. Errors are told apart by their `code`, not their class, so
 * a backend that rebuilds errors from the REST API's JSON reads the same.
 */
import type { z } from 'zod';

/** An error whose message is already what the model should read. */
export class ToolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ToolError';
  }
}

/** A tool's own complaint about an argument (the library was not asked). */
export class ArgumentError extends ToolError {
  readonly parameter: string;
  constructor(parameter: string, message: string) {
    super(`Invalid arguments: ${parameter} ${message}. Nothing was done.`);
    this.name = 'ArgumentError';
    this.parameter = parameter;
  }
}

/** The library's field names, as the tools' parameters say them. */
const PARAMETERS: Record<string, string> = {
  agent: 'agent_name',
  type: 'job_type',
  instructions: 'instructions',
  payload: 'payload',
  metadata: 'metadata',
  priority: 'priority',
  dependsOn: 'depends_on',
  delayMs: 'delay',
  runAt: 'delay',
  owner: 'username',
  status: 'status',
  limit: 'limit',
  cursor: 'cursor',
  olderThanMs: 'older_than_days',
  after: 'after',
  id: 'job_id',
};

/** `dependsOn.2` → `depends_on[2]`; `metadata.a.b` → `metadata.a.b`. */
export function parameterName(field: string): string {
  const [head, ...rest] = field.split('.').filter(Boolean);
  if (head === undefined) return '';
  let name = PARAMETERS[head] ?? head;
  for (const part of rest) name += /^\d+$/.test(part) ? `[${part}]` : `.${part}`;
  return name;
}

/** The path of a zod issue as a parameter: `depends_on[1]`. */
function issuePath(path: readonly PropertyKey[]): string {
  let name = '';
  for (const part of path) {
    if (typeof part === 'number') name += `[${part}]`;
    else name += name ? `.${String(part)}` : String(part);
  }
  return name;
}

/** zod's complaints about a tool's arguments, in one message: `agent_name is required; delay must be ...`. */
export function argumentsMessage(error: z.ZodError, parameters: readonly string[]): string {
  const parts = error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      const keys = issue.keys.map((k) => `"${k}"`).join(', ');
      return `${keys} ${issue.keys.length === 1 ? 'is not a parameter' : 'are not parameters'} of this tool (its parameters: ${parameters.join(', ')})`;
    }
    const where = issuePath(issue.path);
    const message = issue.message.replace(/^Invalid input: /, 'must be valid: ');
    return where ? `${where} ${message}` : message;
  });
  return `Invalid arguments: ${parts.join('; ')}. Nothing was done.`;
}

interface ErrorLike {
  code?: unknown;
  message?: unknown;
  field?: unknown;
  details?: { field?: unknown; [key: string]: unknown };
}

/** The message after the `field: ` the library puts first. */
function detail(message: string, field: string): string {
  return field && message.startsWith(`${field}: `) ? message.slice(field.length + 2) : message;
}

/**
 * Any error a tool met, as its message. `idParameter` is the parameter that
 * named the job (`job_id`), for errors about the id.
 */
export function errorMessage(error: unknown, idParameter = 'job_id'): string {
  if (error instanceof ToolError) return error.message;
  const e = (error ?? {}) as ErrorLike;
  const message = typeof e.message === 'string' ? e.message : String(error);
  const field = typeof e.details?.field === 'string' ? e.details.field : typeof e.field === 'string' ? e.field : '';
  switch (e.code) {
    case 'invalid_input':
    case 'payload_too_large': {
      const name = field === 'id' ? idParameter : parameterName(field);
      return name ? `${name}: ${detail(message, field)}` : message;
    }
    case 'ambiguous_id':
      return `${idParameter}: ${message}`;
    case 'not_found':
      return `${idParameter}: ${message}; get_jobs lists the jobs there are`;
    case 'conflict':
      return message;
    default:
      if (error instanceof Error && error.name === 'AbortError') return 'the call was cancelled';
      return `agentq could not do this: ${message}`;
  }
}
