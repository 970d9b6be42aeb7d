/**
 * Runs one command as the leader of its own process group and ends the whole
 * group — the command and everything it started — when asked, when it runs
 * too long, or when it exits leaving processes behind.
 *
 * Ending a group: SIGTERM to every process in it, then SIGKILL once the grace
 * period has passed (or SIGKILL at once, for a forced stop). The run settles
 * only when no process of the group remains, so a caller that waits for it
 * leaves no orphans behind.
 *
 * POSIX only (process groups).
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

export interface RunProcessOptions {
  file: string;
  args: readonly string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Written to the command's stdin, which is then closed; null: stdin is /dev/null. */
  stdin: string | null;
  /** Ends the process group when it fires. */
  signal: AbortSignal;
  /** Whether an abort reason asks for SIGKILL without the grace period. */
  immediate?: (reason: unknown) => boolean;
  /** SIGTERM → SIGKILL delay when the group is ended. */
  killGraceMs: number;
  /**
   * Called for each line of output (without its line break), in order. Output
   * is paused while more than a few hundred returned promises are unsettled.
   */
  onLine: (stream: 'stdout' | 'stderr', line: string) => void | Promise<void>;
  /** Longer lines are cut into pieces of this many characters. (Default: 16384) */
  maxLineLength?: number;
}

export interface ProcessExit {
  /** The exit code, or null when a signal ended the command. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Whether the group was ended because the abort signal fired. */
  aborted: boolean;
  /** Whether processes were still left in the group when the command exited. */
  leftovers: boolean;
}

/** A command that could not be started at all (no such file, not executable, ...). */
export class SpawnError extends Error {
  readonly code: string;
  constructor(file: string, cause: NodeJS.ErrnoException) {
    const why =
      cause.code === 'ENOENT'
        ? 'no such command or file (check the command and the PATH)'
        : cause.code === 'EACCES'
          ? 'permission denied (is it executable?)'
          : cause.code === 'E2BIG'
            ? 'the arguments or environment are too large'
            : cause.message;
    super(`cannot start ${file}: ${why}`, { cause });
    this.name = 'SpawnError';
    this.code = 'spawn_failed';
  }
}

/** Process groups started here and not yet gone, for the exit-time safety net. */
const liveGroups = new Set<number>();
const settling = new Set<Promise<unknown>>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort when the process exits with commands still running (a second
  // Ctrl+C, process.exit): nothing asynchronous can run now, so SIGKILL them.
  process.on('exit', () => {
    for (const pgid of liveGroups) signalGroup(pgid, 'SIGKILL');
  });
}

/** Resolves once every command started by this module has ended and its process group is gone. */
export async function allCommandsSettled(): Promise<void> {
  while (settling.size > 0) await Promise.allSettled([...settling]);
}

/** Ends every running command's process group now (SIGKILL). */
export function killAllCommands(): void {
  for (const pgid of liveGroups) signalGroup(pgid, 'SIGKILL');
}

function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether any live (not zombie) process is left in the group. A zombie holds
 * its group id until it is reaped; it is dead, so it does not count.
 */
function groupAlive(pgid: number): boolean {
  if (!signalGroup(pgid, 0)) return false;
  if (process.platform !== 'linux') return true;
  try {
    // Every process whose group is pgid: look for one that is not a zombie.
    for (const entry of readProcDir()) {
      const stat = readStat(entry);
      if (stat && stat.pgrp === pgid && stat.state !== 'Z' && stat.state !== 'X') return true;
    }
    return false;
  } catch {
    return true;
  }
}

function readProcDir(): string[] {
  return readdirSync('/proc').filter((name) => /^\d+$/.test(name));
}

function readStat(pid: string): { state: string; pgrp: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0], pgrp: Number(rest[2]) };
  } catch {
    return null;
  }
}

/** Splits a stream into lines and hands them on, pausing the stream under backlog. */
function readLines(
  stream: Readable,
  name: 'stdout' | 'stderr',
  onLine: RunProcessOptions['onLine'],
  maxLength: number,
  backlog: { pending: number; streams: Readable[] },
): Promise<void> {
  stream.setEncoding('utf8');
  let partial = '';
  const emit = (text: string) => {
    const line = text.endsWith('\r') ? text.slice(0, -1) : text;
    for (let i = 0; i === 0 || i < line.length; i += maxLength) {
      let result: void | Promise<void>;
      try {
        result = onLine(name, line.slice(i, i + maxLength));
      } catch {
        continue;
      }
      if (result && typeof (result as Promise<void>).then === 'function') {
        backlog.pending++;
        if (backlog.pending > 500) for (const s of backlog.streams) s.pause();
        void (result as Promise<void>)
          .catch(() => {})
          .finally(() => {
            backlog.pending--;
            if (backlog.pending < 100) for (const s of backlog.streams) if (s.isPaused()) s.resume();
          });
      }
    }
  };
  stream.on('data', (chunk: string) => {
    const text = partial + chunk;
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) emit(l);
    // A line with no end in sight is handed on in pieces rather than held.
    while (partial.length >= maxLength) {
      emit(partial.slice(0, maxLength));
      partial = partial.slice(maxLength);
    }
  });
  return new Promise((resolve) => {
    const done = () => {
      if (partial !== '') emit(partial);
      partial = '';
      resolve();
    };
    stream.once('end', done);
    stream.once('close', () => {
      if (partial !== '') emit(partial);
      partial = '';
      resolve();
    });
    stream.once('error', done);
  });
}

/**
 * Runs a command in its own process group. Resolves when it has exited, its
 * output has been read, and no process of its group remains. Rejects with a
 * SpawnError when it cannot be started.
 */
export function runProcess(options: RunProcessOptions): Promise<ProcessExit> {
  const run = runInner(options);
  settling.add(run);
  void run.catch(() => {}).finally(() => settling.delete(run));
  return run;
}

async function runInner(options: RunProcessOptions): Promise<ProcessExit> {
  const { signal, killGraceMs } = options;
  const maxLineLength = options.maxLineLength ?? 16_384;
  const child = spawn(options.file, [...options.args], {
    cwd: options.cwd,
    env: options.env,
    detached: true,
    stdio: [options.stdin === null ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });

  // Later 'error' events (none are expected: signals go through process.kill) must not crash the worker.
  child.on('error', () => {});
  const spawned = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', (error) => resolve(error as NodeJS.ErrnoException));
  });
  if (spawned) throw new SpawnError(options.file, spawned);
  const pgid = child.pid!;
  installExitHook();
  liveGroups.add(pgid);

  let aborted = false;
  let killTimer: NodeJS.Timeout | undefined;
  let killed = false;
  /** Ends the group: SIGTERM now and SIGKILL after the grace period, or SIGKILL at once. */
  const endGroup = (now: boolean) => {
    if (killed) return;
    if (now || killGraceMs <= 0) {
      killed = true;
      clearTimeout(killTimer);
      signalGroup(pgid, 'SIGKILL');
      return;
    }
    if (killTimer) return;
    signalGroup(pgid, 'SIGTERM');
    killTimer = setTimeout(() => {
      killed = true;
      signalGroup(pgid, 'SIGKILL');
    }, killGraceMs);
  };
  const onAbort = () => {
    aborted = true;
    endGroup(options.immediate?.(signal.reason) === true);
  };

  try {
    if (options.stdin !== null && child.stdin) {
      // A command that does not read its input closes the pipe early: not an error.
      child.stdin.on('error', () => {});
      child.stdin.end(options.stdin);
    }
    const backlog = { pending: 0, streams: [child.stdout!, child.stderr!] };
    const output = Promise.all([
      readLines(child.stdout!, 'stdout', options.onLine, maxLineLength, backlog),
      readLines(child.stderr!, 'stderr', options.onLine, maxLineLength, backlog),
    ]);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
      else child.once('exit', (code, sig) => resolve({ code, signal: sig }));
    });
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });

    const exit = await exited;
    // The command is gone; whatever it left running in its group goes too.
    const leftovers = groupAlive(pgid);
    if (leftovers) endGroup(killed);
    // Output ends once every holder of the pipes has exited.
    await output;
    // Wait until the group is empty (SIGKILL, if it comes to that, is on its way).
    while (groupAlive(pgid)) {
      if (!killTimer && !killed) endGroup(false);
      await sleep(10);
    }
    return { code: exit.code, signal: exit.signal, aborted, leftovers };
  } finally {
    signal.removeEventListener('abort', onAbort);
    clearTimeout(killTimer);
    liveGroups.delete(pgid);
  }
}
