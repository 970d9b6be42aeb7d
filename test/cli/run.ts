/** Running the real `agentq` binary as a subprocess, on a temporary database. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Queue } from '../../src/index.ts';
import { tempDir } from '../helpers/engines.ts';
import { waitFor } from '../helpers/wait.ts';

export const BIN = fileURLToPath(new URL('../../bin/agentq.js', import.meta.url));

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();
after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** A path for a database that does not exist yet, in a folder removed after the file's tests. */
export function freshDb(): string {
  return join(tempDir('agentq-cli-'), 'agentq.db');
}

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete e.FORCE_COLOR;
  delete e.AGENTQ_DATABASE_URL;
  return { ...e, ...extra };
}

export interface RunOptions {
  stdin?: string;
  env?: Record<string, string>;
  /** Leave --db off the command line. */
  noDb?: boolean;
}

/** Runs `agentq --db <db> ...args` to the end. */
export function agentq(db: string, args: readonly string[], options: RunOptions = {}): Promise<Result> {
  const child = spawn(process.execPath, [BIN, ...(options.noDb ? [] : ['--db', db]), ...args], {
    env: env(options.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.end(options.stdin ?? '');
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Runs a command that must succeed and print JSON; returns the parsed JSON. */
export async function agentqJson<T = any>(db: string, args: readonly string[], options: RunOptions = {}): Promise<T> {
  const r = await agentq(db, [...args, '--json'], options);
  if (r.code !== 0) throw new Error(`agentq ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`agentq ${args.join(' ')} --json printed something that is not JSON:\n${r.stdout}`);
  }
}

/** Submits a job and returns its id. */
export async function submit(db: string, args: readonly string[]): Promise<string> {
  const job = await agentqJson<{ id: string }>(db, ['submit', ...args]);
  return job.id;
}

export interface Running {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<Result>;
  /** Resolves once stdout + stderr match. */
  output(pattern: RegExp, what?: string): Promise<void>;
}

/** Starts a long-running command (worker, serve, logs -f, submit --wait). */
export function start(db: string, args: readonly string[], options: RunOptions = {}): Running {
  const child = spawn(process.execPath, [BIN, '--db', db, ...args], { env: env(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<Result>((resolve) =>
    child.once('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    }),
  );
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    output: async (pattern, what = String(pattern)) => {
      let done = false;
      void exited.then(() => (done = true));
      await waitFor(
        () => {
          if (pattern.test(stdout + stderr)) return true;
          if (done) throw new Error(`exited before printing ${what}:\n${stdout}\n${stderr}`);
          return false;
        },
        { timeoutMs: 15_000, intervalMs: 20, what: `${what} (output so far:\n${stdout}\n${stderr})` },
      );
    },
  };
}

/** Opens the same database in this process, for setting up states the CLI cannot reach (and closes it after). */
export async function openQueue(db: string): Promise<Queue> {
  const queue = await Queue.open(db);
  after(() => queue.close());
  return queue;
}

/** Polls a job through the CLI until `check` passes. */
export async function waitForJob<T>(db: string, id: string, check: (job: any) => T, what: string): Promise<any> {
  return waitFor(
    async () => {
      const job = await agentqJson(db, ['info', id]);
      return check(job) ? job : null;
    },
    { timeoutMs: 15_000, intervalMs: 50, what },
  );
}
