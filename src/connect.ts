/** Choosing and opening an engine from one connection string. */
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Pool } from 'pg';
import type { Clock } from './clock.ts';
import { ValidationError } from './errors.ts';
import { SqliteStore } from './store/sqlite/index.ts';
import type { Store } from './store/store.ts';

export interface ConnectionTarget {
  engine: 'sqlite' | 'postgres';
  /** A file path (or `:memory:`) for SQLite; the URL for PostgreSQL. */
  location: string;
}

/**
 * A connection string fit to print: a PostgreSQL URL's password becomes `***`
 * (output ends up in logs). Anything else is returned as it is.
 */
export function withoutPassword(url: string): string {
  if (!/^postgres(ql)?:\/\//i.test(url)) return url;
  try {
    const u = new URL(url);
    if (u.password === '') return url;
    u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
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
  /** PostgreSQL: a pool of the application's own (`pg.Pool`); agentq never closes it. Selects PostgreSQL without a URL. */
  pool?: Pool;
  /** PostgreSQL: the schema agentq's tables live in. (Default: the URL's `?schema=`, then `agentq`) */
  schema?: string;
}

/**
 * Opens the store a connection string names. PostgreSQL is loaded only when
 * asked for, so the embedded default starts without it.
 */
export async function openStore(url: string | undefined, options: OpenStoreOptions = {}): Promise<Store> {
  const target = options.pool && (url == null || url.trim() === '') ? null : parseConnectionString(url);
  if (target == null || target.engine === 'postgres') {
    const { PostgresStore } = await import('./store/postgres/index.ts');
    const store = new PostgresStore(target?.location, { clock: options.clock, pool: options.pool, schema: options.schema });
    try {
      await store.connect();
    } catch (error) {
      await store.close().catch(() => {});
      throw error;
    }
    return store;
  }
  if (options.pool) throw new ValidationError('pool', 'a pg.Pool needs a postgres:// URL or none, not a SQLite file');
  if (options.schema) throw new ValidationError('schema', 'schemas are a PostgreSQL option; SQLite has none');
  return new SqliteStore(target.location, { clock: options.clock });
}
