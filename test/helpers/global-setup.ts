/**
 * Runs once per `npm test` (node --test-global-setup): starts one PostgreSQL
 * server for every test file, which each give every test its own schema.
 * The URL reaches the test files through AGENTQ_TEST_POSTGRES_URL.
 *
 * Set AGENTQ_TEST_POSTGRES_URL yourself to run against a server of your own.
 * When no server can be had, the PostgreSQL tests are skipped — loudly — unless
 * CI=true, where that fails the run.
 */
import { startPostgres, type PostgresServer } from './postgres-server.ts';

let server: PostgresServer | undefined;

export async function globalSetup(): Promise<void> {
  if (process.env.AGENTQ_TEST_POSTGRES_URL) return;
  try {
    server = await startPostgres();
    process.env.AGENTQ_TEST_POSTGRES_URL = server.url;
  } catch (error) {
    if (process.env.CI === 'true') throw error;
    const reason = String((error as Error)?.message ?? error).split('\n')[0];
    process.env.AGENTQ_TEST_POSTGRES_UNAVAILABLE = reason;
    process.stderr.write(
      `\n${'!'.repeat(78)}\n!! PostgreSQL could not be started; its tests are SKIPPED: ${reason}\n${'!'.repeat(78)}\n\n`,
    );
  }
}

export async function globalTeardown(): Promise<void> {
  await server?.stop();
}
