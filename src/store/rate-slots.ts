/**
 * Rate-limit slots, as both engines decide them once they hold the keys'
 * rows. A key allows `max` starts in any window of `perMs`; starts are
 * counted in buckets of a twentieth of the window (`bucketMs`), each stored as
 * (key, bucket start, count), and a bucket counts until the whole of it has
 * left the window. A paused key lets nothing through until its pause ends.
 */
import type { RateSlot } from './store.ts';

/** What a batch of takers knows of one key while it decides. */
export interface KeyState {
  /** Starts allowed per window; null when the key is only paused. */
  max: number | null;
  perMs: number;
  bucketMs: number;
  /** Starts counted in the window before this batch. */
  count: number;
  pausedUntil: number | null;
  /** Starts this batch let through. */
  taken: number;
}

function bucketMsOf(perMs: number): number {
  return Math.max(1, Math.floor(perMs / 20));
}

/** The start of the bucket that counts a start at `now`. */
export function bucketAt(now: number, bucketMs: number): number {
  return Math.floor(now / bucketMs) * bucketMs;
}

/** The state of a limited key whose window holds `count` starts. */
export function limitedKey(max: number, perMs: number, count: number, pausedUntil: number | null): KeyState {
  return { max, perMs, bucketMs: bucketMsOf(perMs), count, pausedUntil, taken: 0 };
}

/** The state of a key that has no limit but is paused until `pausedUntil`. */
export function pausedKey(pausedUntil: number): KeyState {
  return { max: null, perMs: 0, bucketMs: 1, count: 0, pausedUntil, taken: 0 };
}

/** Buckets starting at or before this have left the window of `perMs` ending at `now`, and can go. */
export function windowStart(now: number, perMs: number): number {
  return now - perMs - bucketMsOf(perMs);
}

/**
 * When enough of the oldest buckets (`buckets`, oldest first) have left the
 * window for one more start.
 */
export function freeAt(s: KeyState, buckets: ReadonlyArray<{ at: number; n: number }>, now: number): number {
  let over = s.count + s.taken - (s.max ?? 0) + 1;
  for (const b of buckets) {
    over -= b.n;
    if (over <= 0) return b.at + s.bucketMs + s.perMs + 1;
  }
  // Only starts of this batch fill it: free a window from now.
  return bucketAt(now, s.bucketMs) + s.bucketMs + s.perMs + 1;
}

/**
 * Each request (the keys one job needs) in order: let through when every
 * key has room, taking a start of each; refused with the first key that
 * has none, and when it will. `state` gives a key's state (null: no limit,
 * no pause), `retryAt` when a full key frees up.
 */
export function decide(
  requests: ReadonlyArray<readonly string[]>,
  state: (key: string) => KeyState | null | undefined,
  retryAt: (key: string, s: KeyState) => number,
): RateSlot[] {
  return requests.map((request): RateSlot => {
    const taking: KeyState[] = [];
    for (const key of [...new Set(request)].sort()) {
      const s = state(key);
      if (!s) continue;
      if (s.pausedUntil != null) return { ok: false, retryAt: s.pausedUntil, key };
      if (s.max == null) continue;
      if (s.count + s.taken >= s.max) return { ok: false, retryAt: retryAt(key, s), key };
      taking.push(s);
    }
    for (const s of taking) s.taken++;
    return { ok: true };
  });
}
