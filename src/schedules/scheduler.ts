/**
 * The scheduler loop: fires due schedules. Embeddable (`new
 * Scheduler(queue).start()`), run by `agentq serve` and `agentq scheduler`.
 *
 * Any number of schedulers may run at once, in one process or many, on one
 * machine or many: each firing is claimed in the transaction that submits its
 * job and moves the schedule's next run on, checked against the revision the
 * scheduler read, and the job carries a key unique to the schedule and the
 * due time. So a firing submits exactly one job.
 *
 * After downtime a schedule whose next run is long past fires once, and its
 * next run is the first one after now: missed ticks are not replayed.
 *
 * Time comes from the queue's clock. The loop sleeps until the earliest next
 * run (at most `pollIntervalMs`), and looks again at once when the clock jumps
 * (a test's ManualClock) or, soon, when the store says something changed
 * (another process created or enabled a schedule).
 */
import { EventEmitter } from 'node:events';
import type { Job } from '../job.ts';
import type { Queue } from '../queue.ts';
import type { Firing } from './schedules.ts';
import { toSchedule, type Schedule } from './schedules.ts';

export interface SchedulerOptions {
  /** The longest sleep between looks. (Default: 5000 ms) */
  pollIntervalMs?: number;
  /** Schedules fired per look; a full batch looks again at once. (Default: 100) */
  batchSize?: number;
}

export interface SchedulerEvents {
  /** A firing submitted a job. */
  fire: [schedule: Schedule, job: Job, firedAt: Date];
  /** A firing was skipped: overlap `skip` and the previous job is unfinished. */
  skip: [schedule: Schedule, runningJobId: string, firedAt: Date];
  error: [error: unknown];
}

/** How soon after a store change hint the loop looks. */
const HINT_DELAY_MS = 50;

export class Scheduler extends EventEmitter<SchedulerEvents> {
  readonly queue: Queue;
  readonly pollIntervalMs: number;
  readonly batchSize: number;
  #running = false;
  #chain: Promise<unknown> = Promise.resolve();
  #queued = false;
  #timer: NodeJS.Timeout | undefined;
  #hintTimer: NodeJS.Timeout | undefined;
  #unsubscribe: Array<() => void> = [];

  constructor(queue: Queue, options: SchedulerOptions = {}) {
    super();
    this.queue = queue;
    this.pollIntervalMs = options.pollIntervalMs ?? 5000;
    this.batchSize = options.batchSize ?? 100;
  }

  get running(): boolean {
    return this.#running;
  }

  start(): this {
    if (this.#running) return this;
    this.#running = true;
    this.#unsubscribe.push(
      this.queue.store.onChange(() => {
        if (this.#hintTimer || !this.#running) return;
        this.#hintTimer = setTimeout(() => {
          this.#hintTimer = undefined;
          this.#wake();
        }, HINT_DELAY_MS);
      }),
    );
    const jump = this.queue.clock.onJump?.(() => this.#wake());
    if (jump) this.#unsubscribe.push(jump);
    this.#wake();
    return this;
  }

  /** Stops the loop; resolves when a look in progress has finished. */
  async stop(): Promise<void> {
    this.#running = false;
    for (const off of this.#unsubscribe.splice(0)) off();
    clearTimeout(this.#timer);
    clearTimeout(this.#hintTimer);
    this.#hintTimer = undefined;
    await this.#chain.catch(() => {});
  }

  /** Looks once: fires every schedule due now. Looks run one at a time. */
  tick(): Promise<Firing[]> {
    const next = this.#chain.then(() => this.#look());
    this.#chain = next.catch(() => {});
    return next;
  }

  #wake(): void {
    if (!this.#running || this.#queued) return;
    this.#queued = true;
    clearTimeout(this.#timer);
    void this.#chain.then(async () => {
      this.#queued = false;
      if (!this.#running) return;
      try {
        await this.tick();
      } catch (error) {
        this.#emitError(error);
      }
      await this.#arm();
    });
  }

  /** Sleeps until the earliest next run, or the poll interval, whichever is sooner. */
  async #arm(): Promise<void> {
    if (!this.#running) return;
    let delay = this.pollIntervalMs;
    try {
      const next = await this.queue.store.nextScheduleRunAt();
      if (next != null) delay = Math.min(delay, Math.max(0, next - this.queue.clock.now()));
    } catch (error) {
      this.#emitError(error);
    }
    if (!this.#running || this.#queued) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#wake(), delay);
  }

  async #look(): Promise<Firing[]> {
    const all: Firing[] = [];
    for (;;) {
      const now = this.queue.clock.now();
      const due = await this.queue.store.dueSchedules(now, this.batchSize);
      for (const schedule of due) {
        let firing: Firing;
        try {
          firing = await this.queue.schedules.fire(schedule, now);
        } catch (error) {
          this.#emitError(error);
          continue;
        }
        all.push(firing);
        if (firing.outcome === 'fired') {
          this.#emit('fire', toSchedule(schedule), firing.job, new Date(firing.firedAt));
        } else if (firing.outcome === 'skipped') {
          this.#emit('skip', toSchedule(schedule), firing.runningJobId, new Date(firing.firedAt));
        }
      }
      if (due.length < this.batchSize || !this.#running) return all;
    }
  }

  #emit<K extends 'fire' | 'skip'>(event: K, ...args: SchedulerEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: SchedulerEvents[K]) => boolean)(event, ...args);
    } catch (error) {
      this.#emitError(error);
    }
  }

  #emitError(error: unknown): void {
    // A tick that was under way when the queue closed has nothing to report.
    if (this.queue.closed) return;
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }
}
