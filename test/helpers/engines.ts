/**
 * The engines the behavioural suite runs on. Each test file calls
 * `forEachEngine` once; every engine gets the same tests.
 *
 * PostgreSQL: `npm test` starts one server for the whole run (see
 * global-setup.ts); a test file run on its own starts one for itself. Every
 * `freshUrl()` names a new, empty schema on that server (`?schema=`), so tests
 * stay apart without paying for a database each.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe } from 'node:test';
import { Queue, type QueueOptions } from '../../src/index.ts';
import type { PostgresServer } from './postgres-server.ts';

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

let ownServer: Promise<PostgresServer> | undefined;

/** The test server's base URL: the run's shared one, or one started for this file. */
export async function postgresBaseUrl(): Promise<string> {
  const shared = process.env.AGENTQ_TEST_POSTGRES_URL;
  if (shared) return shared;
  ownServer ??= import('./postgres-server.ts').then((m) => m.startPostgres());
  return (await ownServer).url;
}

// A file run on its own stops its server when the whole file is done (a hook
// registered inside a test would run when that test ends).
after(async () => {
  if (ownServer) await (await ownServer).stop();
});

/** A new schema name, unique across processes. */
export function freshSchema(): string {
  return `t_${randomBytes(6).toString('hex')}`;
}

const postgres: Engine = {
  name: 'postgres',
  async freshUrl() {
    const base = new URL(await postgresBaseUrl());
    base.searchParams.set('schema', freshSchema());
    return base.toString();
  },
};

export const engines: Engine[] = [sqlite, postgres];

/** Why PostgreSQL tests are skipped in this run, if they are. */
export const postgresUnavailable: string | undefined = process.env.AGENTQ_TEST_POSTGRES_UNAVAILABLE;

/** Opens a queue on a fresh database of the engine; closed after the file's tests. */
export async function freshQueue(engine: Engine, options: QueueOptions = {}): Promise<{ queue: Queue; url: string }> {
  const url = await engine.freshUrl();
  const queue = await Queue.open(url, options);
  after(() => queue.close());
  return { queue, url };
}

/** AGENTQ_TEST_ENGINES=postgres (or sqlite) runs the behavioural suite on one engine only. */
const only = process.env.AGENTQ_TEST_ENGINES?.split(',').map((s) => s.trim());

export function forEachEngine(body: (engine: Engine) => void): void {
  for (const engine of engines) {
    if (only && !only.includes(engine.name)) continue;
    if (engine.name === 'postgres' && postgresUnavailable) {
      describe(`[postgres] SKIPPED: no PostgreSQL server (${postgresUnavailable})`, { skip: postgresUnavailable }, () =>
        body(engine),
      );
    } else {
      body(engine);
    }
  }
}
