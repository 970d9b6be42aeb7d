/** Choosing and opening an engine from one connection string. */
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from './clock.ts';
import { ValidationError } from './errors.ts';
import { SqliteStore } from './store/sqlite/index.ts';
import type { Store } from './store/store.ts';

export interface ConnectionTarget {
  engine: 'sqlite' | 'postgres';
  /** A file path (or `:memory:`) for SQLite; the URL for PostgreSQL. */
  location: string;
}

/** Where the embedded database lives when no connection string is given. */
export function defaultDatabasePath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(base, 'agentq', 'agentq.db');
}

/**
 * Reads a connection string: a file path, `sqlite:PATH`, `sqlite://PATH`,
 * `sqlite::memory:`, or a `postgres://` / `postgresql://` URL. Empty means
 * `AGENTQ_DATABASE_URL`, then the default file.
 */
export function parseConnectionString(url: string | undefined, env: NodeJS.ProcessEnv = process.env): ConnectionTarget {
  const text = (url ?? env.AGENTQ_DATABASE_URL ?? '').trim();
  if (text === '') return { engine: 'sqlite', location: defaultDatabasePath(env) };
  if (/^postgres(ql)?:\/\//i.test(text)) return { engine: 'postgres', location: text };
  const sqlite = /^sqlite:(?:\/\/)?(.*)$/i.exec(text);
  if (sqlite) {
    const path = sqlite[1];
    if (path === '') throw new ValidationError('db', 'a sqlite: URL needs a file path, e.g. sqlite:./agentq.db');
    return { engine: 'sqlite', location: path };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    throw new ValidationError('db', `unknown database URL scheme in ${text}; use a file path, sqlite:PATH or postgres://`);
  }
  return { engine: 'sqlite', location: text };
}

export interface OpenStoreOptions {
  clock?: Clock;
}

export async function openStore(url: string | undefined, options: OpenStoreOptions = {}): Promise<Store> {
  const target = parseConnectionString(url);
  if (target.engine === 'postgres') {
    throw new ValidationError('db', 'the PostgreSQL engine is not part of this build yet; use a SQLite file path');
  }
  return new SqliteStore(target.location, { clock: options.clock });
}
