/**
 * Built-in demo agents, always available to `agentq worker` and `agentq serve`:
 * - `echo` returns its payload and logs one line;
 * - `demo` works for about 5 seconds in 10 steps, reporting progress and a log
 *   line each step, and stops at once when cancelled. Its payload may set
 *   `{ steps, stepMs }`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { NonRetryableError } from '../errors.ts';
import type { Json } from '../job.ts';
import type { Handler, Handlers } from '../worker.ts';

export const echo: Handler = async (job, ctx) => {
  await ctx.log('info', 'echo', job.payload);
  return job.payload;
};

function option(payload: Json, name: string, fallback: number, min: number, max: number): number {
  const value = payload !== null && typeof payload === 'object' && !Array.isArray(payload) ? payload[name] : undefined;
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new NonRetryableError(`payload.${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}

export const demo: Handler = async (job, ctx) => {
  const steps = option(job.payload, 'steps', 10, 1, 1000);
  const stepMs = option(job.payload, 'stepMs', 500, 0, 600_000);
  const started = Date.now();
  for (let step = 1; step <= steps; step++) {
    await sleep(stepMs, undefined, { signal: ctx.signal });
    await ctx.progress((step / steps) * 100, `step ${step} of ${steps}`);
    await ctx.log('info', `step ${step} of ${steps}`, { step });
  }
  return { steps, stepMs, tookMs: Date.now() - started };
};

export const demoHandlers: Handlers = { echo, demo };
