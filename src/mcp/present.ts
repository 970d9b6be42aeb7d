/**
 * What a model reads back: jobs and log lines as compact JSON, in the tools'
 * snake_case words, with empty fields left out and large values cut to a
 * preview (so one job with a huge result cannot flood the model's context).
 */
import { isFinished, type Job, type JobLog, type Json } from '../job.ts';

/** Characters of JSON kept of a result before it is cut to a preview. */
export const RESULT_CHARS = 20_000;
/** Characters kept of instructions, payload, metadata and error details in a job's status. */
export const FIELD_CHARS = 2_000;
/** Characters kept of instructions in a list of jobs. */
export const SUMMARY_CHARS = 120;

type Out = Record<string, unknown>;

function cutText(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… [cut: ${text.length} characters in all]`;
}

/** Puts `value` at `name`; when its JSON is longer than `max`, a preview string instead and `<name>_truncated`. */
function putJson(out: Out, name: string, value: Json | undefined, max: number): void {
  if (value === undefined) return;
  const text = JSON.stringify(value);
  if (text.length <= max) {
    out[name] = value;
    return;
  }
  out[name] = text.slice(0, max) + '…';
  out[`${name}_truncated`] = `the JSON is ${text.length} characters; this shows the first ${max}`;
}

function isEmpty(value: Json): boolean {
  if (value === null) return true;
  if (Array.isArray(value)) return value.length === 0;
  if (typeof value === 'object') return Object.keys(value).length === 0;
  return false;
}

function errorOf(job: Job, max: number): Out | undefined {
  if (!job.error) return undefined;
  const { message, code, name: _name, stack: _stack, ...rest } = job.error;
  const out: Out = { message: cutText(String(message ?? ''), max) };
  if (code) out.code = code;
  const details = (rest as { details?: Json }).details ?? (Object.keys(rest).length > 0 ? (rest as Json) : undefined);
  if (details !== undefined && !isEmpty(details)) putJson(out, 'details', details, max);
  return out;
}

/** A job in a list: what it is, where it stands, when. */
export function jobSummary(job: Job): Out {
  const out: Out = {
    id: job.id,
    agent_name: job.agent,
    job_type: job.type,
    status: job.status,
  };
  if (job.status === 'running') out.progress = job.progress;
  if (job.instructions) out.instructions = cutText(job.instructions, SUMMARY_CHARS);
  if (job.owner) out.username = job.owner;
  if (job.error) out.error = cutText(job.error.message ?? '', SUMMARY_CHARS);
  out.created_at = job.createdAt;
  if (job.finishedAt) out.finished_at = job.finishedAt;
  if (job.durationMs != null && job.finishedAt) out.duration_ms = job.durationMs;
  return out;
}

/** One job in full, but compact: what get_job_status and wait_for_job answer. */
export function jobDetail(job: Job, now = Date.now()): Out {
  const out: Out = {
    id: job.id,
    agent_name: job.agent,
    job_type: job.type,
    status: job.status,
    finished: isFinished(job.status),
    progress: job.progress,
  };
  if (job.progressMessage) out.progress_message = job.progressMessage;
  if (job.instructions) out.instructions = cutText(job.instructions, FIELD_CHARS);
  if (!isEmpty(job.payload)) putJson(out, 'payload', job.payload, FIELD_CHARS);
  if (!isEmpty(job.metadata)) putJson(out, 'metadata', job.metadata, FIELD_CHARS);
  if (job.tags.length > 0) out.tags = job.tags;
  if (job.owner) out.username = job.owner;
  if (job.priority !== 0) out.priority = job.priority;
  out.attempts = job.attempts;
  out.max_attempts = job.maxAttempts;
  if (job.status === 'completed' || job.result !== null) putJson(out, 'result', job.result, RESULT_CHARS);
  const error = errorOf(job, FIELD_CHARS);
  if (error) out.error = error;
  if (job.dependsOn.length > 0) out.depends_on = job.dependsOn;
  if (job.parentId) out.parent_id = job.parentId;
  if (job.scheduleId) out.schedule_id = job.scheduleId;
  out.created_at = job.createdAt;
  if (job.status === 'pending' && Date.parse(job.runAt) > now) out.run_at = job.runAt;
  if (job.startedAt) out.started_at = job.startedAt;
  if (job.finishedAt) out.finished_at = job.finishedAt;
  if (job.durationMs != null) out.duration_ms = job.durationMs;
  return out;
}

/** A log line: its id (for `after`), attempt, time, level, message and data. */
export function logLine(log: JobLog): Out {
  const out: Out = { id: log.id, attempt: log.attempt, at: log.at, level: log.level, message: cutText(log.message, FIELD_CHARS) };
  if (log.data !== null && log.data !== undefined) putJson(out, 'data', log.data, FIELD_CHARS);
  return out;
}
