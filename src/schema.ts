/**
 * The input schemas: one place that says what a valid submission is. The
 * library validates with them; the REST API and its OpenAPI document will
 * reuse them.
 */
import { z } from 'zod';
import { LOG_LEVELS, type BackoffOptions, type Json } from './job.ts';
import { PayloadTooLargeError, ValidationError } from './errors.ts';

const name = z
  .string()
  .min(1, 'must not be empty')
  .max(200, 'must be at most 200 characters')
  .regex(/^[^\u0000-\u001f\u007f]+$/, 'must not contain control characters');

/** Deepest nesting a JSON value may have. */
export const MAX_JSON_DEPTH = 64;

/**
 * Whether a value is plain JSON: null, booleans, finite numbers, strings, arrays
 * and plain objects, nested at most MAX_JSON_DEPTH deep. A direct walk: far
 * cheaper than a recursive schema, and it refuses what JSON.stringify would
 * silently drop or mangle (functions, undefined, NaN, class instances).
 */
export function isJsonValue(value: unknown, depth = 0): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object': {
      if (value === null) return true;
      if (depth >= MAX_JSON_DEPTH) return false;
      if (Array.isArray(value)) {
        for (const item of value) if (!isJsonValue(item, depth + 1)) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      for (const key in value) {
        if (!isJsonValue((value as Record<string, unknown>)[key], depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

const jsonValue = z.custom<Json>((v) => isJsonValue(v), {
  message: `must be JSON (objects, arrays, strings, finite numbers, booleans, null), nested at most ${MAX_JSON_DEPTH} deep`,
});

const jsonObject = z.custom<{ [key: string]: Json }>(
  (v) => typeof v === 'object' && v !== null && !Array.isArray(v) && isJsonValue(v),
  { message: 'must be a JSON object' },
);

/** Text any engine can store: PostgreSQL's text refuses the NUL character. */
const text = (max: number) => z.string().max(max).regex(/^[^\u0000]*$/, 'must not contain NUL characters');

const idRef = z.string().min(1, 'must not be empty').max(200, 'must be at most 200 characters');

const timestamp = z.union([
  z.date(),
  z.number().int().nonnegative(),
  z.iso.datetime({ offset: true, local: false }),
]);

export const backoffSchema = z.strictObject({
  type: z.enum(['exponential', 'fixed']).optional(),
  delayMs: z.number().int().nonnegative().max(2_147_483_647).optional(),
  maxDelayMs: z.number().int().nonnegative().max(2_147_483_647).optional(),
  jitter: z.boolean().optional(),
});

export const submitSchema = z.strictObject({
  agent: name,
  type: name.optional(),
  instructions: text(10_000_000).optional(),
  payload: jsonValue.optional(),
  metadata: jsonObject.optional(),
  tags: z.array(name).max(100, 'must have at most 100 tags').optional(),
  owner: name.nullable().optional(),
  priority: z.number().int('must be an integer').min(-1_000_000).max(1_000_000).optional(),
  maxAttempts: z.number().int('must be an integer').min(1, 'must be at least 1').max(1000).optional(),
  backoff: backoffSchema.optional(),
  timeoutMs: z.number().int('must be an integer').positive('must be positive').max(2_147_483_647).nullable().optional(),
  runAt: timestamp.optional(),
  delayMs: z.number().int('must be an integer').nonnegative('must not be negative').optional(),
  key: text(500).min(1, 'must not be empty').nullable().optional(),
  parentId: idRef.nullable().optional(),
  dependsOn: z.array(idRef).max(1000).optional(),
  scheduleId: idRef.nullable().optional(),
  rateKey: name.nullable().optional(),
  budget: z
    .strictObject({
      tokens: z.number().int('must be an integer').positive('must be positive').optional(),
      costUsd: z.number().positive('must be positive').max(1_000_000).optional(),
    })
    .nullable()
    .optional(),
});

export type SubmitInput = z.input<typeof submitSchema>;

/**
 * One job of a graph submitted in one call: `ref` names it within the graph,
 * and its `dependsOn` and `parentId` may name other jobs of the graph by ref
 * (or stored jobs by id).
 */
export type GraphJobInput = SubmitInput & { ref: string };
export const refSchema = name;

export const logSchema = z.strictObject({
  level: z.enum(LOG_LEVELS),
  message: text(100_000),
  data: jsonValue.optional(),
});

/** Turns zod's first complaint into a ValidationError that names the field. */
export function toValidationError(error: z.ZodError, prefix = ''): ValidationError {
  const issue = error.issues[0];
  const path = [prefix, ...issue.path.map(String)].filter(Boolean);
  if (issue.code === 'unrecognized_keys') {
    const field = [...path, issue.keys[0]].join('.');
    return new ValidationError(field, 'is not a known field', { unknown: issue.keys });
  }
  let message = issue.message;
  if (issue.code === 'invalid_type') message = `expected ${issue.expected}`;
  return new ValidationError(path.join('.') || 'body', message);
}

export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, prefix = ''): z.output<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw toValidationError(parsed.error, prefix);
  return parsed.data;
}

/** Serializes a JSON value and refuses it when it is larger than `limit` bytes. */
export function encodeJson(field: string, value: Json | undefined, limit: number): string {
  const text = JSON.stringify(value ?? null);
  // A character is at most 3 bytes in UTF-8 (surrogate pairs: 4 bytes for 2), so the
  // exact count is only needed near the limit.
  if (text.length * 3 > limit) {
    const size = Buffer.byteLength(text);
    if (size > limit) throw new PayloadTooLargeError(field, size, limit);
  }
  return text;
}

export function toMillis(value: Date | number | string): number {
  if (typeof value === 'number') return value;
  if (value instanceof Date) return value.getTime();
  return Date.parse(value);
}

export function resolveBackoff(input: z.output<typeof backoffSchema> | undefined, base: BackoffOptions): BackoffOptions {
  if (!input) return base;
  return {
    type: input.type ?? base.type,
    delayMs: input.delayMs ?? base.delayMs,
    maxDelayMs: input.maxDelayMs ?? base.maxDelayMs,
    jitter: input.jitter ?? base.jitter,
  };
}
