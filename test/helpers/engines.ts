/**
 * The engines the behavioural suite runs on. Each test file calls
 * `forEachEngine` once; every engine gets the same tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { Queue, type QueueOptions } from '../../src/index.ts';

export interface Engine {
  name: 'sqlite' | 'postgres';
  /** A connection string to a fresh, empty database. */
  freshUrl(): Promise<string>;
}

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(prefix = 'agentq-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

const sqlite: Engine = {
  name: 'sqlite',
  async freshUrl() {
    return join(tempDir(), 'agentq.db');
  },
};

export const engines: Engine[] = [sqlite];

/** Opens a queue on a fresh database of the engine; closed after the file's tests. */
export async function freshQueue(engine: Engine, options: QueueOptions = {}): Promise<{ queue: Queue; url: string }> {
  const url = await engine.freshUrl();
  const queue = await Queue.open(url, options);
  after(() => queue.close());
  return { queue, url };
}

export function forEachEngine(body: (engine: Engine) => void): void {
  for (const engine of engines) body(engine);
}
