/** Waiting for a job with a live progress line, and saying how it ended. */
import { NotFoundError, WaitTimeoutError } from '../errors.ts';
import { isFinished, type Job } from '../job.ts';
import type { CliQueue } from './remote.ts';
import type { Context } from './context.ts';
import { compactJson, formatDuration, indent, progressBar, shortId, statusText, truncateVisible } from './format.ts';
import { line, printJson, type Output } from './io.ts';

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export interface WatchOptions {
  /** Give up after this long with a WaitTimeoutError (as queue.wait does). */
  timeoutMs?: number;
  /** Poll at least this often; store changes wake it sooner. (Default: 200 ms) */
  pollMs?: number;
  /** Redraw a progress line on this terminal stream while waiting. */
  live?: Output;
}

/** Resolves with the job once it has finished; polls, and wakes early on store changes. */
export async function watchJob(ctx: Context, queue: CliQueue, id: string, options: WatchOptions = {}): Promise<Job> {
  const pollMs = options.pollMs ?? 200;
  const deadline = options.timeoutMs == null ? Infinity : Date.now() + options.timeoutMs;
  let wake: (() => void) | undefined;
  let changed = false;
  const stop = queue.store.onChange(() => {
    changed = true;
    wake?.();
  });
  const live = options.live;
  let frame = 0;
  let drawn = false;
  const clear = () => {
    if (live && drawn) live.write('\r\x1b[2K');
    drawn = false;
  };
  // Ctrl+C while the progress line is drawn: leave the terminal tidy, then exit as the signal would.
  const offSignal = live
    ? ctx.io.onSignal?.((signal) => {
        clear();
        (ctx.io.exit ?? process.exit)(signal === 'SIGINT' ? 130 : 143);
      })
    : undefined;
  try {
    for (;;) {
      changed = false;
      const job = await queue.store.getJob(id);
      if (!job) throw new NotFoundError('job', id);
      if (isFinished(job.status)) {
        clear();
        return job;
      }
      if (live) {
        const spin = ctx.err('cyan', SPINNER[frame++ % SPINNER.length]);
        const bar = job.status === 'running' ? progressBar(ctx.err, job.progress, 20) : '';
        const took = job.durationMs != null ? ctx.err('dim', formatDuration(job.durationMs)) : '';
        const message = job.progressMessage ? ctx.err('dim', job.progressMessage) : '';
        const width = (live.columns ?? 100) - 1;
        const text = [spin, shortId(job.id), statusText(ctx.err, job.status), bar, took, message].filter(Boolean).join('  ');
        live.write(`\r\x1b[2K${truncateVisible(text, width)}`);
        drawn = true;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        clear();
        throw new WaitTimeoutError(id, job.status, options.timeoutMs ?? 0);
      }
      // Store changes come in bursts: read at most every 50 ms, and redraw the spinner at least every pollMs.
      await new Promise<void>((resolve) => {
        let timer: NodeJS.Timeout | undefined;
        const done = () => {
          clearTimeout(timer);
          wake = undefined;
          resolve();
        };
        const arm = (ms: number) => {
          timer = setTimeout(done, Math.max(0, Math.min(ms, left)));
        };
        if (changed) arm(50);
        else {
          arm(pollMs);
          wake = () => {
            clearTimeout(timer);
            wake = undefined;
            arm(50);
          };
        }
      });
    }
  } finally {
    stop();
    offSignal?.();
    clear();
  }
}

/** Exit code for a finished job: 0 completed, 1 failed or cancelled. */
export function exitCodeOf(job: Job): number {
  return job.status === 'completed' ? 0 : 1;
}

/** How a finished job ended, for people (or as JSON). */
export function printOutcome(ctx: Context, job: Job, json: boolean): void {
  const out = ctx.io.stdout;
  if (json) {
    printJson(out, job);
    return;
  }
  const took = job.durationMs != null ? ` in ${formatDuration(job.durationMs)}` : '';
  const head = `${job.id} ${statusText(ctx.out, job.status)}`;
  if (job.status === 'completed') {
    line(out, `${head}${took}`);
    if (job.result !== null) {
      const text = JSON.stringify(job.result, null, 2);
      line(out, text.length > 2000 ? indent(compactJson(job.result, 2000)) : indent(text));
    }
  } else if (job.status === 'failed') {
    line(out, `${head} after ${job.attempts} attempt${job.attempts === 1 ? '' : 's'}${took}: ${job.error?.message ?? 'unknown error'}`);
  } else if (job.status === 'cancelled') {
    line(out, `${head}: ${job.error?.message ?? 'cancelled'}`);
  } else {
    line(out, `${head}${took}`);
  }
}
