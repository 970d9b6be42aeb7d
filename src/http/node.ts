/** The REST API on Node's HTTP server. */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createAdaptorServer } from '@hono/node-server';
import type { Queue } from '../queue.ts';
import { mountDashboard, SESSION_COOKIE } from './dashboard.ts';
import { createApi, type Api, type ApiOptions } from './server.ts';

export interface HttpServerOptions extends ApiOptions {
  /** (Default: 127.0.0.1: only this machine. Say 0.0.0.0 to listen on every interface.) */
  host?: string;
  /** (Default: 8080; 0 picks a free port) */
  port?: number;
  /** Serves the web dashboard at / (and lets the API read the token from its session cookie). */
  dashboard?: boolean;
  /** Adds routes before the API's catch-all. */
  extend?: (api: Api) => void;
}

export interface HttpServer {
  /** The base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  port: number;
  host: string;
  api: Api;
  /** Stops accepting, ends event streams and open connections. */
  close(): Promise<void>;
}

export async function startHttpServer(queue: Queue, options: HttpServerOptions = {}): Promise<HttpServer> {
  const host = options.host ?? '127.0.0.1';
  const cookieName = options.dashboard ? (options.cookieName ?? SESSION_COOKIE) : options.cookieName;
  const api = createApi(queue, { ...options, cookieName });
  if (options.dashboard) mountDashboard(api, queue, { cookieName });
  options.extend?.(api);
  api.metrics.start();
  const server = createAdaptorServer({ fetch: api.app.fetch, hostname: host }) as Server;
  server.headersTimeout = 30_000;
  server.requestTimeout = 120_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}`,
    port,
    host,
    api,
    async close() {
      api.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), 1000).unref();
      await closed;
    },
  };
}
