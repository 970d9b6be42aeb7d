/**
 * When a schedule fires: cron expressions in a named time zone, and fixed
 * intervals.
 *
 * Daylight-saving policy (the same for every cron expression):
 *
 * - A local time that does not exist (the clock jumps from 01:59 to 03:00 in
 *   spring) is skipped that day: `30 2 * * *` in America/New_York does not fire
 *   on 2026-03-08, and is back at 02:30 the next day. It is not moved to 03:00.
 * - A local time that happens twice (the clock goes back from 01:59 to 01:00 in
 *   autumn) fires once, at its first occurrence: `30 1 * * *` fires at 01:30
 *   EDT on 2026-11-01 and not again at 01:30 EST, and `0 * * * *` fires at
 *   01:00 EDT, then 02:00 EST (two real hours later).
 *
 * Interval schedules count real elapsed time and know nothing of time zones.
 */
import { Cron } from 'croner';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;

/** What is wrong with a timing field, as a sentence; thrown by the parsers below. */
export class TimingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TimingError';
  }
}

// ---- time zones -------------------------------------------------------------------------------

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/**
 * The canonical name of a named IANA time zone (`america/new_york` →
 * `America/New_York`); refuses offsets and unknown names.
 */
export function canonicalTimeZone(name: string): string {
  const text = name.trim();
  if (!/^[A-Za-z][A-Za-z0-9_+\-]*(\/[A-Za-z0-9_+\-]+)*$/.test(text)) {
    throw new TimingError(`${JSON.stringify(name)} is not a time zone name; use an IANA name such as UTC or Europe/Berlin`);
  }
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: text }).resolvedOptions().timeZone;
  } catch {
    throw new TimingError(`unknown time zone ${JSON.stringify(name)}; use an IANA name such as UTC or America/New_York`);
  }
}

/** The zone's offset from UTC at an instant, in ms (New York in winter: -5 h). */
export function zoneOffset(ms: number, timeZone: string): number {
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(new Date(ms))) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  const wall = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
  return wall - (ms - (((ms % 1000) + 1000) % 1000));
}

/**
 * Whether the local time at `ms` already happened earlier (the second pass
 * through an hour repeated when the clock goes back).
 */
export function isRepeatedLocalTime(ms: number, timeZone: string): boolean {
  const now = zoneOffset(ms, timeZone);
  // No zone changes its offset twice within six hours.
  const before = zoneOffset(ms - 6 * HOUR, timeZone);
  if (before <= now) return false;
  const first = ms - (before - now);
  return zoneOffset(first, timeZone) === before;
}

// ---- cron -------------------------------------------------------------------------------------

const NICKNAMES = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);

/** A parsed cron expression in a time zone. */
export interface CronTiming {
  kind: 'cron';
  expression: string;
  timeZone: string;
  cron: Cron;
}

/** Parses a 5-field (minute precision) or 6-field (seconds first) cron expression. */
export function parseCron(expression: string, timeZone: string): CronTiming {
  const text = String(expression).trim().replace(/\s+/g, ' ');
  const fields = text.split(' ').length;
  if (!NICKNAMES.has(text.toLowerCase()) && fields !== 5 && fields !== 6) {
    throw new TimingError(
      `${JSON.stringify(expression)} has ${fields} field${fields === 1 ? '' : 's'}; a cron expression has 5 (minute hour day month weekday) or 6 (second first)`,
    );
  }
  let cron: Cron;
  try {
    cron = new Cron(text, { timezone: timeZone, paused: true, mode: '5-or-6-parts' });
  } catch (error) {
    const why = String((error as Error).message).replace(/^CronPattern:\s*/, '');
    throw new TimingError(`${JSON.stringify(expression)} is not a valid cron expression: ${why}`);
  }
  return { kind: 'cron', expression: text, timeZone, cron };
}

/**
 * The first firing strictly after `after`, under the daylight-saving policy
 * above; null when the expression never fires again.
 */
export function nextCronTime(t: CronTiming, after: number): number | null {
  let from = after;
  // Each skipped candidate is a DST edge; a handful at most in a row.
  for (let i = 0; i < 1000; i++) {
    const next = t.cron.nextRun(new Date(from));
    if (!next) return null;
    const ms = next.getTime();
    // A time moved out of a DST gap no longer matches the expression's fields.
    if (t.cron.match(next) && !isRepeatedLocalTime(ms, t.timeZone)) return ms;
    from = ms;
  }
  return null;
}

// ---- intervals --------------------------------------------------------------------------------

const UNITS: Array<[RegExp, number, string]> = [
  [/^(s|secs?|seconds?)$/, 1000, 'second'],
  [/^(m|mins?|minutes?)$/, MINUTE, 'minute'],
  [/^(h|hrs?|hours?)$/, HOUR, 'hour'],
  [/^(d|days?)$/, DAY, 'day'],
  [/^(w|wks?|weeks?)$/, WEEK, 'week'],
];

/** The longest interval a schedule may have. */
export const MAX_INTERVAL_MS = 366 * DAY;

/**
 * Milliseconds in an interval: `30 seconds`, `5 minutes`, `1 hour`, `2 days`,
 * `1 week`, compact `30s` / `5m` / `1h30m`, or several parts (`1 hour 30 minutes`).
 * Whole seconds, at least one, at most a year.
 */
export function parseInterval(text: unknown): number {
  if (typeof text === 'number') {
    throw new TimingError(`${text} has no unit; write it like "${text} seconds" or "${text} minutes"`);
  }
  if (typeof text !== 'string') throw new TimingError('expected text such as "5 minutes"');
  const value = text.trim().toLowerCase();
  const part = /\s*([-+]?\d+(?:\.\d+)?)\s*([a-z]+)\s*,?/y;
  let total = 0;
  let end = 0;
  let m: RegExpExecArray | null;
  while ((m = part.exec(value)) !== null) {
    const amount = Number(m[1]);
    const unit = UNITS.find(([re]) => re.test(m![2]));
    if (!unit) {
      throw new TimingError(`unknown unit ${JSON.stringify(m[2])} in ${JSON.stringify(text)}; use seconds, minutes, hours, days or weeks`);
    }
    if (amount <= 0) throw new TimingError(`${JSON.stringify(text)} must be more than zero`);
    total += amount * unit[1];
    end = part.lastIndex;
  }
  if (value === '' || end !== value.length) {
    throw new TimingError(`${JSON.stringify(text)} is not an interval; write it like "30 seconds", "5 minutes", "1 hour", "2 days" or "5m"`);
  }
  if (total < 1000 || total % 1000 !== 0) {
    throw new TimingError(`${JSON.stringify(text)} must be a whole number of seconds, at least 1 second`);
  }
  if (total > MAX_INTERVAL_MS) throw new TimingError(`${JSON.stringify(text)} is longer than a year`);
  return total;
}

/** An interval in words, in its largest whole unit: `5 minutes`, `90 seconds`, `1 week`. */
export function formatInterval(ms: number): string {
  const units: Array<[number, string]> = [
    [WEEK, 'week'],
    [DAY, 'day'],
    [HOUR, 'hour'],
    [MINUTE, 'minute'],
    [1000, 'second'],
  ];
  for (const [size, name] of units) {
    if (ms % size === 0) {
      const n = ms / size;
      return `${n} ${name}${n === 1 ? '' : 's'}`;
    }
  }
  return `${ms / 1000} seconds`;
}

/**
 * The first interval firing strictly after `after`, keeping the schedule's
 * phase: `from + k × interval` for the smallest k ≥ 1 that is past `after`.
 */
export function nextIntervalTime(intervalMs: number, from: number, after: number): number {
  if (after < from) return from + intervalMs;
  const k = Math.floor((after - from) / intervalMs) + 1;
  return from + k * intervalMs;
}
