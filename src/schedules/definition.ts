/**
 * What a schedule is, as its owner writes it: the same flat shape in the
 * library, in YAML files and (later) in the REST API —
 *
 *   name, description, cron | interval, timezone, enabled, overlap,
 *   and the job each firing submits: agent, type, instructions, payload,
 *   metadata, tags, owner, priority, maxAttempts, timeoutMs, backoff.
 *
 * Validation turns input into a normalized definition (defaults applied, time
 * zone and interval in canonical form), so that two definitions that mean the
 * same compare equal and applying a file twice changes nothing.
 */
import { parseDocument, type YAMLError } from 'yaml';
import { z } from 'zod';
import { ValidationError, type ErrorDetails } from '../errors.ts';
import type { Json } from '../job.ts';
import { submitSchema } from '../schema.ts';
import { canonicalTimeZone, formatInterval, nextCronTime, parseCron, parseInterval, TimingError } from './timing.ts';

export type Overlap = 'allow' | 'skip';

/** The job each firing submits. */
export interface JobTemplate {
  agent: string;
  type?: string;
  instructions?: string;
  payload?: Json;
  metadata?: { [key: string]: Json };
  tags?: string[];
  owner?: string | null;
  priority?: number;
  maxAttempts?: number;
  timeoutMs?: number | null;
  backoff?: { type?: 'exponential' | 'fixed'; delayMs?: number; maxDelayMs?: number; jitter?: boolean };
}

/** A schedule as its owner writes it (give `cron` or `interval`). */
export interface ScheduleInput extends JobTemplate {
  name: string;
  description?: string | null;
  /** 5 fields (minute hour day month weekday) or 6 (seconds first), in `timezone`. */
  cron?: string | null;
  /** `30 seconds`, `5 minutes`, `1 hour`, `2 days`, `1 week`, or `30s`, `5m`, `1h30m`. */
  interval?: string | null;
  /** A named IANA time zone for `cron`. (Default: UTC) */
  timezone?: string;
  /** (Default: true) */
  enabled?: boolean;
  /** `skip`: no new job while the previous one is unfinished. (Default: allow) */
  overlap?: Overlap;
}

/** A validated definition: defaults applied, canonical forms. */
export interface ScheduleDefinition {
  name: string;
  description: string | null;
  cron: string | null;
  interval: string | null;
  intervalMs: number | null;
  timezone: string;
  enabled: boolean;
  overlap: Overlap;
  job: JobTemplate;
}

export const JOB_FIELDS = [
  'agent',
  'type',
  'instructions',
  'payload',
  'metadata',
  'tags',
  'owner',
  'priority',
  'maxAttempts',
  'timeoutMs',
  'backoff',
] as const;

export const SCHEDULE_FIELDS = ['name', 'description', 'cron', 'interval', 'timezone', 'enabled', 'overlap'] as const;

/** Names: letters, digits, `_`, `-` and `:`, so they are easy to type on a command line. */
export const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_:-]{0,99}$/;

const shape = submitSchema.shape;
const inputSchema = z.strictObject({
  name: z.string(),
  description: z.string().max(10_000).nullable().optional(),
  cron: z.string().nullable().optional(),
  interval: z.union([z.string(), z.number()]).nullable().optional(),
  timezone: z.string().optional(),
  enabled: z.boolean('expected true or false').optional(),
  overlap: z.enum(['allow', 'skip'], 'expected allow or skip').optional(),
  agent: shape.agent,
  type: shape.type,
  instructions: shape.instructions,
  payload: shape.payload,
  metadata: shape.metadata,
  tags: shape.tags,
  owner: shape.owner,
  priority: shape.priority,
  maxAttempts: shape.maxAttempts,
  timeoutMs: shape.timeoutMs,
  backoff: shape.backoff,
});

/**
 * Bad schedule input. Names the schedule and the field (`schedule
 * daily-report: cron: ...`); `field` is the path in the input
 * (`schedules.2.cron` in a file).
 */
export class ScheduleValidationError extends ValidationError {
  readonly schedule: string | null;
  constructor(schedule: string | null, path: string, relative: string, problem: string, details?: ErrorDetails) {
    super(path, problem, { ...details, schedule });
    this.schedule = schedule;
    const who = schedule == null ? 'schedule' : `schedule ${schedule}`;
    this.message = `${who}: ${relative ? `${relative}: ` : ''}${problem}`;
  }
}

function nameOf(input: unknown): string | null {
  if (input && typeof input === 'object' && !Array.isArray(input)) {
    const name = (input as Record<string, unknown>).name;
    if (typeof name === 'string' && name.trim() !== '') return name.trim();
  }
  return null;
}

/**
 * Validates one schedule. `path` is where it sits in a larger input
 * (`schedules.2`), for the error's `field`.
 */
export function validateSchedule(input: unknown, path = ''): ScheduleDefinition {
  const name = nameOf(input);
  const fail = (field: string, problem: string, details?: ErrorDetails): never => {
    throw new ScheduleValidationError(name, [path, field].filter(Boolean).join('.'), field, problem, details);
  };
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    fail('', 'expected an object with name, cron or interval, and agent');
  }
  const parsed = inputSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      const key = issue.keys[0];
      const hint =
        key === 'schedule' || key === 'function' || key === 'kwargs'
          ? '; use cron: or interval: for the timing, agent: for who runs it and payload: for its input'
          : `; known fields: ${[...SCHEDULE_FIELDS, ...JOB_FIELDS].join(', ')}`;
      fail([field, key].filter(Boolean).join('.'), `is not a known field${hint}`, { unknown: issue.keys });
    }
    if (issue.code === 'invalid_type' && issue.input === undefined) fail(field, 'is required');
    fail(field, issue.code === 'invalid_type' ? `expected ${issue.expected}` : issue.message);
  }
  const v = parsed.data!;
  const trimmed = v.name.trim();
  if (!NAME_PATTERN.test(trimmed)) {
    fail('name', 'must be 1 to 100 letters, digits, _, - or :, starting with a letter, digit or _');
  }
  const hasCron = v.cron != null && v.cron !== '';
  const hasInterval = v.interval != null && v.interval !== '';
  if (hasCron && hasInterval) fail('interval', 'give cron or interval, not both');
  if (!hasCron && !hasInterval) fail('cron', 'give cron (e.g. "0 9 * * *") or interval (e.g. "5 minutes")');
  let timezone = 'UTC';
  if (v.timezone !== undefined) {
    try {
      timezone = canonicalTimeZone(v.timezone);
    } catch (error) {
      fail('timezone', (error as Error).message);
    }
  }
  let cron: string | null = null;
  let intervalMs: number | null = null;
  try {
    if (hasCron) {
      const timing = parseCron(v.cron!, timezone);
      if (nextCronTime(timing, Date.now()) === null) throw new TimingError(`${JSON.stringify(v.cron)} never fires`);
      cron = timing.expression;
    } else {
      intervalMs = parseInterval(v.interval);
    }
  } catch (error) {
    if (!(error instanceof TimingError)) throw error;
    fail(hasCron ? 'cron' : 'interval', error.message);
  }
  const job: JobTemplate = { agent: v.agent };
  for (const key of JOB_FIELDS) {
    if (key !== 'agent' && v[key] !== undefined) (job as unknown as Record<string, unknown>)[key] = v[key];
  }
  return {
    name: trimmed,
    description: v.description ?? null,
    cron,
    interval: intervalMs == null ? null : formatInterval(intervalMs),
    intervalMs,
    timezone,
    enabled: v.enabled ?? true,
    overlap: v.overlap ?? 'allow',
    job,
  };
}

/** JSON with object keys sorted, so equal values encode to equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]));
    }
    return v;
  });
}

/** The fields in which two definitions differ, in a stable order. */
export function changedFields(a: ScheduleDefinition, b: ScheduleDefinition): string[] {
  const out: string[] = [];
  for (const key of ['description', 'cron', 'interval', 'timezone', 'enabled', 'overlap'] as const) {
    if (a[key] !== b[key]) out.push(key);
  }
  for (const key of JOB_FIELDS) {
    if (canonicalJson(a.job[key] ?? null) !== canonicalJson(b.job[key] ?? null)) out.push(key);
  }
  return out;
}

/** The definition back in the flat input shape (for files and listings). */
export function toInput(d: ScheduleDefinition): ScheduleInput {
  const out: Record<string, unknown> = { name: d.name };
  if (d.description != null) out.description = d.description;
  if (d.cron != null) out.cron = d.cron;
  if (d.interval != null) out.interval = d.interval;
  if (d.cron != null || d.timezone !== 'UTC') out.timezone = d.timezone;
  out.enabled = d.enabled;
  out.overlap = d.overlap;
  return { ...out, ...d.job } as ScheduleInput;
}

// ---- files ------------------------------------------------------------------------------------

/**
 * Reads a schedules file (YAML, or JSON, which is YAML too): a list of
 * schedules, or a mapping with one key, `schedules:` or `tasks:`, holding the
 * list. Every entry is checked, and names must be unique; the first error is
 * thrown (naming the schedule and the field) and nothing is returned.
 */
export function parseSchedulesFile(text: string): ScheduleDefinition[] {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) throw new ValidationError('file', `not valid YAML: ${describeYamlError(problem, text)}`);
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  let list: unknown;
  let root = '';
  if (data == null) {
    list = [];
  } else if (Array.isArray(data)) {
    list = data;
  } else if (typeof data === 'object') {
    const keys = Object.keys(data);
    const known = keys.filter((k) => k === 'schedules' || k === 'tasks');
    const unknown = keys.filter((k) => k !== 'schedules' && k !== 'tasks');
    if (unknown.length > 0) {
      throw new ValidationError(unknown[0], 'is not a known top-level key; a schedules file has one key, schedules: (or tasks:), holding a list');
    }
    if (known.length > 1) throw new ValidationError('tasks', 'give schedules: or tasks:, not both');
    root = known[0];
    list = (data as Record<string, unknown>)[root] ?? [];
  } else {
    throw new ValidationError('file', 'expected a list of schedules under schedules: (or tasks:)');
  }
  if (!Array.isArray(list)) throw new ValidationError(root || 'file', 'expected a list of schedules');
  const seen = new Map<string, number>();
  return list.map((entry, i) => {
    const path = root ? `${root}.${i}` : String(i);
    const def = validateSchedule(entry, path);
    const before = seen.get(def.name);
    if (before !== undefined) {
      throw new ScheduleValidationError(def.name, `${path}.name`, 'name', `is used twice in the file (entries ${before + 1} and ${i + 1})`);
    }
    seen.set(def.name, i);
    return def;
  });
}

function describeYamlError(error: YAMLError, text: string): string {
  const message = error.message.split('\n')[0];
  const pos = error.linePos?.[0];
  if (pos) return `${message.replace(/ at line \d+, column \d+:?$/, '')} (line ${pos.line}, column ${pos.col})`;
  if (error.pos) {
    const line = text.slice(0, error.pos[0]).split('\n').length;
    return `${message} (line ${line})`;
  }
  return message;
}
