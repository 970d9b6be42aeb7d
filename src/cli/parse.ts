/**
 * Option values: durations, numbers, JSON and lists. Each parser throws
 * commander's InvalidArgumentError, so a bad value is reported as a usage
 * error that names the option.
 */
import { InvalidArgumentError } from 'commander';
import { durationFromText } from '../duration.ts';

/**
 * Milliseconds in a duration: `500ms`, `30s`, `5m`, `1h`, `2d`, `1w`, or
 * several together (`1h30m`). A bare number is seconds.
 */
export function parseDuration(text: string): number {
  const value = text.trim();
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  const ms = durationFromText(value);
  if (ms === null) throw new InvalidArgumentError('expected a duration like 500ms, 30s, 5m, 1h or 2d');
  return ms;
}

export function parseInteger(min: number, max = Number.MAX_SAFE_INTEGER): (text: string) => number {
  return (text) => {
    const value = text.trim();
    if (!/^[-+]?\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `an integer of at least ${min}` : `an integer from ${min} to ${max}`;
      throw new InvalidArgumentError(`expected ${range}`);
    }
    return Number(value);
  };
}

export function parseNumber(min: number): (text: string) => number {
  return (text) => {
    const value = Number(text.trim());
    if (text.trim() === '' || !Number.isFinite(value) || value < min) {
      throw new InvalidArgumentError(`expected a number of at least ${min}`);
    }
    return value;
  };
}

/** Any JSON value; names what is wrong with it. */
export function parseJsonValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InvalidArgumentError(`not valid JSON (${(error as Error).message}); quote it, e.g. '{"topic":"x"}'`);
  }
}

/** An ISO 8601 date and time (or anything Date understands that is unambiguous). */
export function parseDate(text: string): Date {
  const ms = Date.parse(text);
  if (!Number.isFinite(ms)) throw new InvalidArgumentError('expected an ISO 8601 time, e.g. 2026-01-01T09:00:00Z');
  return new Date(ms);
}

/** For repeatable options that may also take a comma list: `-s pending -s running` or `-s pending,running`. */
export function collect(value: string, previous: string[] | undefined): string[] {
  const parts = value
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);
  return [...(previous ?? []), ...parts];
}

/** For repeatable options whose values may contain commas (tags). */
export function collectRaw(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
