import { EventEmitter } from 'node:events';

/**
 * Where agentq reads the time: leases, run-at, backoff and schedules. Tests
 * hand in a `ManualClock` and move it instead of waiting.
 */
export interface Clock {
  now(): number;
  /** Called with a listener that is told whenever the clock jumps (manual clocks only). */
  onJump?(listener: () => void): () => void;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that stands still until a test moves it. */
export class ManualClock implements Clock {
  #now: number;
  readonly #events = new EventEmitter();

  constructor(start: number | Date = Date.UTC(2026, 0, 1)) {
    this.#now = typeof start === 'number' ? start : start.getTime();
    this.#events.setMaxListeners(0);
  }

  now(): number {
    return this.#now;
  }

  /** Moves the clock forward and wakes everything that waits on it. */
  advance(ms: number): void {
    this.set(this.#now + ms);
  }

  set(time: number | Date): void {
    this.#now = typeof time === 'number' ? time : time.getTime();
    this.#events.emit('jump');
  }

  onJump(listener: () => void): () => void {
    this.#events.on('jump', listener);
    return () => this.#events.off('jump', listener);
  }
}

/**
 * A sleep that a change hint cuts short: hand `wake` to whatever signals
 * changes, and `sleep` returns after `ms`, on `wake`, or when `signal`
 * aborts, whichever comes first. A hint while no sleep runs is not kept.
 */
export class Nap {
  #wake: (() => void) | undefined;

  readonly wake = (): void => this.#wake?.();

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}
