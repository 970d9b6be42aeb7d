/**
 * The schedules of a queue (`queue.schedules`): create, change, list, enable,
 * disable, run now, remove, and apply a whole set (from a YAML file) at once.
 * The Scheduler (scheduler.ts) fires them.
 *
 * Every change is a read, a check and a write that names the revision it
 * read; a schedule changed in between (by a firing, or another process) makes
 * the write fail as a whole, and it is computed again from a fresh read.
 */
import { monotonicFactory } from 'ulidx';
import { ConflictError, NotFoundError, ValidationError } from '../errors.ts';
import type { Job, JobStatus } from '../job.ts';
import type { JobPage, ListOptions, Queue } from '../queue.ts';
import type { FiringResult, ScheduleDefinitionRecord, ScheduleRecord, ScheduleStore } from '../store/store.ts';
import {
  canonicalJson,
  changedFields,
  parseSchedulesFile,
  ScheduleValidationError,
  toInput,
  validateSchedule,
  type JobTemplate,
  type Overlap,
  type ScheduleDefinition,
  type ScheduleInput,
} from './definition.ts';
import { formatInterval, nextCronTime, nextIntervalTime, parseCron } from './timing.ts';

/** A schedule: its definition (flat, as written) and its state. Times are ISO 8601. */
export interface Schedule extends JobTemplate {
  id: string;
  name: string;
  description: string | null;
  cron: string | null;
  interval: string | null;
  timezone: string;
  enabled: boolean;
  overlap: Overlap;
  /** When it fires next; null while disabled. */
  nextRunAt: string | null;
  /** When it last submitted a job. */
  lastRunAt: string | null;
  lastJobId: string | null;
  lastJobStatus: JobStatus | null;
  createdAt: string;
  updatedAt: string;
}

export interface ApplyOptions {
  /** Remove schedules the set does not name. (Default: false) */
  prune?: boolean;
  /** Work out the changes, make none. (Default: false) */
  dryRun?: boolean;
}

export interface ApplyResult {
  dryRun: boolean;
  created: string[];
  /** Names of changed schedules; `changes` says which fields. */
  updated: string[];
  unchanged: string[];
  removed: string[];
  changes: Record<string, string[]>;
}

/** What one firing did. */
export type Firing =
  | { outcome: 'fired'; schedule: ScheduleRecord; firedAt: number; job: Job; created: boolean }
  | { outcome: 'skipped'; schedule: ScheduleRecord; firedAt: number; runningJobId: string }
  | { outcome: 'lost'; schedule: ScheduleRecord; firedAt: number };

const newId = monotonicFactory();
const ATTEMPTS = 5;
const iso = (ms: number | null): string | null => (ms == null ? null : new Date(ms).toISOString());
const TIMING_FIELDS = new Set(['cron', 'interval', 'timezone', 'enabled']);

export function recordToDefinition(r: ScheduleRecord): ScheduleDefinition {
  return {
    name: r.name,
    description: r.description,
    cron: r.cron,
    interval: r.intervalMs == null ? null : formatInterval(r.intervalMs),
    intervalMs: r.intervalMs,
    timezone: r.timezone,
    enabled: r.enabled,
    overlap: r.overlap,
    job: JSON.parse(r.job) as JobTemplate,
  };
}

export function toSchedule(r: ScheduleRecord): Schedule {
  const d = recordToDefinition(r);
  return {
    id: r.id,
    name: d.name,
    description: d.description,
    cron: d.cron,
    interval: d.interval,
    timezone: d.timezone,
    enabled: d.enabled,
    overlap: d.overlap,
    ...d.job,
    nextRunAt: iso(r.nextRunAt),
    lastRunAt: iso(r.lastRunAt),
    lastJobId: r.lastJobId,
    lastJobStatus: r.lastJobStatus,
    createdAt: iso(r.createdAt)!,
    updatedAt: iso(r.updatedAt)!,
  };
}

/** The first firing after `now` of a definition that starts (or restarts) now. */
export function firstRunAt(d: ScheduleDefinition, now: number): number | null {
  if (!d.enabled) return null;
  if (d.cron != null) return nextCronTime(parseCron(d.cron, d.timezone), now);
  return now + d.intervalMs!;
}

/** The firing after the one due at `firedAt`, skipping what was missed up to `now`. */
export function followingRunAt(d: ScheduleDefinition, firedAt: number, now: number): number | null {
  if (d.cron != null) return nextCronTime(parseCron(d.cron, d.timezone), Math.max(now, firedAt));
  return nextIntervalTime(d.intervalMs!, firedAt, Math.max(now, firedAt));
}

/** The idempotency key of a firing: one job per schedule and due time, however many schedulers try. */
export function firingKey(scheduleId: string, firedAt: number): string {
  return `schedule:${scheduleId}:${new Date(firedAt).toISOString()}`;
}

export class Schedules {
  readonly queue: Queue;

  constructor(queue: Queue) {
    this.queue = queue;
  }

  get #store(): ScheduleStore {
    return this.queue.store;
  }

  #now(): number {
    return this.queue.clock.now();
  }

  /** The stored form of a definition: its job template checked as a submission would be. */
  #record(id: string, d: ScheduleDefinition, nextRunAt: number | null, path = ''): ScheduleDefinitionRecord {
    try {
      this.queue.prepareJob({ ...d.job, scheduleId: id });
    } catch (error) {
      if (error instanceof ValidationError) {
        throw new ScheduleValidationError(d.name, [path, error.field].filter(Boolean).join('.'), error.field, error.message.slice(error.field.length + 2));
      }
      throw error;
    }
    return {
      id,
      name: d.name,
      description: d.description,
      cron: d.cron,
      intervalMs: d.intervalMs,
      timezone: d.timezone,
      job: canonicalJson(d.job),
      enabled: d.enabled,
      overlap: d.overlap,
      nextRunAt,
    };
  }

  async #find(idOrName: string): Promise<ScheduleRecord> {
    const ref = String(idOrName ?? '').trim();
    if (ref === '') throw new ValidationError('name', 'must not be empty');
    const record = await this.#store.getSchedule(ref);
    if (!record) throw new NotFoundError('schedule', ref);
    return record;
  }

  /** Runs `fn` again on a fresh read when a concurrent change got in between. */
  async #retrying<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (error) {
        const concurrent = error instanceof ConflictError && !('name' in (error.details ?? {}));
        if (!concurrent || attempt >= ATTEMPTS) throw error;
      }
    }
  }

  /** Creates a schedule. A name that is taken is a ConflictError; bad input a ScheduleValidationError. */
  async create(input: ScheduleInput): Promise<Schedule> {
    const d = validateSchedule(input);
    const id = newId();
    const record = this.#record(id, d, firstRunAt(d, this.#now()));
    await this.#store.saveSchedules({ put: [{ schedule: record, expectedRevision: null }], remove: [] });
    return this.get(id);
  }

  /**
   * Changes some fields of a schedule (by id or name). Giving `cron` drops
   * `interval` and the other way round. The next run is worked out again
   * when the timing changes or the schedule is enabled.
   */
  async update(idOrName: string, patch: Partial<ScheduleInput>): Promise<Schedule> {
    if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) {
      throw new ValidationError('body', 'expected an object of fields to change');
    }
    return this.#retrying(async () => {
      const current = await this.#find(idOrName);
      const merged: Record<string, unknown> = { ...toInput(recordToDefinition(current)) };
      if (patch.cron != null) delete merged.interval;
      if (patch.interval != null) delete merged.cron;
      for (const [key, value] of Object.entries(patch)) {
        if (value === undefined) continue;
        merged[key] = value;
      }
      const d = validateSchedule(merged);
      await this.#save(current, d);
      return this.get(current.id);
    });
  }

  async #save(current: ScheduleRecord, d: ScheduleDefinition): Promise<void> {
    const before = recordToDefinition(current);
    const changed = changedFields(before, d);
    if (changed.length === 0 && d.name === before.name) return;
    const retime = changed.some((f) => TIMING_FIELDS.has(f)) || (d.enabled && current.nextRunAt == null);
    const next = retime ? firstRunAt(d, this.#now()) : d.enabled ? current.nextRunAt : null;
    await this.#store.saveSchedules({
      put: [{ schedule: this.#record(current.id, d, next), expectedRevision: current.revision }],
      remove: [],
    });
  }

  /** One schedule by id or name; NotFoundError when there is none. */
  async get(idOrName: string): Promise<Schedule> {
    return toSchedule(await this.#find(idOrName));
  }

  /** Every schedule, by name. */
  async list(): Promise<Schedule[]> {
    return (await this.#store.listSchedules()).map(toSchedule);
  }

  /** Starts firing again; the next run is the first one from now. */
  async enable(idOrName: string): Promise<Schedule> {
    return this.update(idOrName, { enabled: true });
  }

  /** Stops firing; jobs already submitted run on. */
  async disable(idOrName: string): Promise<Schedule> {
    return this.update(idOrName, { enabled: false });
  }

  /** Removes a schedule. Its jobs stay, with their scheduleId, as history. */
  async remove(idOrName: string): Promise<Schedule> {
    return this.#retrying(async () => {
      const current = await this.#find(idOrName);
      await this.#store.saveSchedules({ put: [], remove: [{ id: current.id, expectedRevision: current.revision }] });
      return toSchedule(current);
    });
  }

  /**
   * Submits the schedule's job now, whatever its timing, enabled flag and
   * overlap rule; the next scheduled run stays as it was.
   */
  async runNow(idOrName: string): Promise<Job> {
    const current = await this.#find(idOrName);
    const d = recordToDefinition(current);
    const now = this.#now();
    const job = this.queue.prepareJob({ ...d.job, scheduleId: current.id, key: `schedule:${current.id}:run:${newId()}` });
    const result = await this.#store.fireSchedule({ scheduleId: current.id, firedAt: now, job });
    if (result.outcome !== 'fired') throw new NotFoundError('schedule', current.name);
    if (result.created) this.queue.local.emit('submitted', new Set([result.job.agent]));
    return result.job;
  }

  /** The jobs a schedule submitted, newest first (the same paging as queue.list). */
  async executions(idOrName: string, options: Omit<ListOptions, 'scheduleId'> = {}): Promise<JobPage> {
    const current = await this.#find(idOrName);
    return this.queue.list({ ...options, scheduleId: current.id });
  }

  /**
   * Makes the stored schedules match a set of definitions: creates the new,
   * updates the changed, leaves the same alone, and with `prune` removes the
   * ones the set does not name. All of it in one transaction, or (on any bad
   * definition) none of it.
   */
  async apply(inputs: readonly ScheduleInput[], options: ApplyOptions = {}): Promise<ApplyResult> {
    if (!Array.isArray(inputs)) throw new ValidationError('schedules', 'expected a list of schedules');
    const seen = new Set<string>();
    const defs = inputs.map((input, i) => {
      const d = validateSchedule(input, String(i));
      if (seen.has(d.name)) throw new ScheduleValidationError(d.name, `${i}.name`, 'name', 'is used twice');
      seen.add(d.name);
      return d;
    });
    return this.#apply(defs, options);
  }

  /** `apply` for the text of a schedules file (YAML; see parseSchedulesFile). */
  async applyFile(text: string, options: ApplyOptions = {}): Promise<ApplyResult> {
    return this.#apply(parseSchedulesFile(text), options);
  }

  async #apply(defs: readonly ScheduleDefinition[], options: ApplyOptions): Promise<ApplyResult> {
    const dryRun = options.dryRun ?? false;
    return this.#retrying(async () => {
      const existing = new Map((await this.#store.listSchedules()).map((r) => [r.name, r]));
      const now = this.#now();
      const result: ApplyResult = { dryRun, created: [], updated: [], unchanged: [], removed: [], changes: {} };
      const put: Array<{ schedule: ScheduleDefinitionRecord; expectedRevision: number | null }> = [];
      const remove: Array<{ id: string; expectedRevision: number }> = [];
      defs.forEach((d, i) => {
        const current = existing.get(d.name);
        if (!current) {
          put.push({ schedule: this.#record(newId(), d, firstRunAt(d, now), String(i)), expectedRevision: null });
          result.created.push(d.name);
          return;
        }
        existing.delete(d.name);
        const changed = changedFields(recordToDefinition(current), d);
        if (changed.length === 0) {
          result.unchanged.push(d.name);
          return;
        }
        const retime = changed.some((f) => TIMING_FIELDS.has(f)) || (d.enabled && current.nextRunAt == null);
        const next = retime ? firstRunAt(d, now) : d.enabled ? current.nextRunAt : null;
        put.push({ schedule: this.#record(current.id, d, next, String(i)), expectedRevision: current.revision });
        result.updated.push(d.name);
        result.changes[d.name] = changed;
      });
      if (options.prune) {
        for (const r of existing.values()) {
          remove.push({ id: r.id, expectedRevision: r.revision });
          result.removed.push(r.name);
        }
      }
      if (!dryRun && (put.length > 0 || remove.length > 0)) await this.#store.saveSchedules({ put, remove });
      return result;
    });
  }

  /**
   * Fires one due schedule (read at `schedule.revision`): submits its job
   * with the firing's key and moves its next run on past `now`, in one
   * transaction that only one scheduler wins. Used by the Scheduler.
   */
  async fire(schedule: ScheduleRecord, now: number): Promise<Firing> {
    const firedAt = schedule.nextRunAt!;
    const d = recordToDefinition(schedule);
    const nextRunAt = followingRunAt(d, firedAt, now);
    const job = this.queue.prepareJob({ ...d.job, scheduleId: schedule.id, key: firingKey(schedule.id, firedAt) });
    const result: FiringResult = await this.#store.fireSchedule({
      scheduleId: schedule.id,
      expectedRevision: schedule.revision,
      nextRunAt,
      firedAt,
      job,
    });
    if (result.outcome === 'fired') {
      if (result.created) this.queue.local.emit('submitted', new Set([result.job.agent]));
      return { outcome: 'fired', schedule, firedAt, job: result.job, created: result.created };
    }
    if (result.outcome === 'skipped') return { outcome: 'skipped', schedule, firedAt, runningJobId: result.runningJobId };
    return { outcome: 'lost', schedule, firedAt };
  }
}
