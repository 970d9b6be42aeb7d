/**
 * The web dashboard at `/`: a page and its scripts (plain ES modules, served
 * as files from dashboard/), and a sign-in that keeps the token in an
 * HttpOnly cookie. The page talks to the REST API like any client; the API
 * reads the token from the cookie and refuses cookie-signed state changes
 * that do not come from this server's pages (see checkCrossSite).
 *
 * Every page answer carries a Content-Security-Policy that allows scripts,
 * styles and connections from this server only: no inline scripts, nothing
 * from elsewhere.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Queue } from '../queue.ts';
import { readCookie, sameOrigin, type Api } from './server.ts';

/** The cookie the dashboard's sign-in sets. */
export const SESSION_COOKIE = 'agentq_session';

export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Where the page and its scripts are: dashboard/ beside src/ (and beside dist/ in a package). */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../dashboard/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** The files that may be served, by URL path under /ui/ (a fixed list: no path from a request reaches the disk). */
function assets(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const full = join(d, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (TYPES[extname(name)]) out.set(relative(dir, full).split(sep).join('/'), full);
    }
  };
  walk(dir);
  return out;
}

export interface DashboardOptions {
  /** The session cookie's name; the API must read the same one (ApiOptions.cookieName). (Default: agentq_session) */
  cookieName?: string;
  /** Where the files are. (Default: DASHBOARD_DIR) */
  dir?: string;
}

function pageHeaders(c: Context): void {
  c.header('Content-Security-Policy', DASHBOARD_CSP);
  c.header('X-Frame-Options', 'DENY');
  c.header('Referrer-Policy', 'same-origin');
}

/** Whether the request came over https (directly, or through a proxy that says so). */
function secure(c: Context): boolean {
  if (new URL(c.req.url).protocol === 'https:') return true;
  return (c.req.header('x-forwarded-proto') ?? '').split(',')[0].trim().toLowerCase() === 'https';
}

function cookie(c: Context, name: string, value: string, maxAge?: number): string {
  const parts = [`${name}=${encodeURIComponent(value)}`, 'HttpOnly', 'SameSite=Strict', 'Path=/'];
  if (maxAge != null) parts.push(`Max-Age=${maxAge}`);
  if (secure(c)) parts.push('Secure');
  return parts.join('; ');
}

/** Adds the dashboard's routes to an API made with the same cookie name. */
export function mountDashboard(api: Api, queue: Queue, options: DashboardOptions = {}): void {
  const { app } = api;
  const name = options.cookieName ?? SESSION_COOKIE;
  const dir = options.dir ?? DASHBOARD_DIR;
  const files = assets(dir);

  const file = (c: Context, path: string) => {
    const full = files.get(path);
    if (!full) return c.json({ error: { code: 'not_found', message: `no file ${path}` } }, 404);
    pageHeaders(c);
    c.header('Content-Type', TYPES[extname(full)]);
    c.header('Cache-Control', 'no-cache');
    return c.body(readFileSync(full));
  };

  app.get('/', (c) => file(c, 'index.html'));
  app.get('/ui/*', (c) => file(c, c.req.path.slice('/ui/'.length)));

  app.use('/auth/*', bodyLimit({ maxSize: 16 * 1024, onError: (c) => c.json({ error: { code: 'payload_too_large', message: 'too large' } }, 413) }));

  const refuse = (c: Context, status: 401 | 403, code: string, message: string, form: boolean) => {
    if (form) return c.redirect(`/?signin=${code}`, 303);
    return c.json({ error: { code, message } }, status);
  };
  const isForm = (c: Context) => (c.req.header('content-type') ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded');

  // Who is signed in (by the cookie).
  app.get('/auth/session', async (c) => {
    const token = readCookie(c, name);
    const principal = token ? await queue.users.authenticate(token) : null;
    if (!principal) return c.json({ error: { code: 'unauthorized', message: 'not signed in' } }, 401);
    return c.json({ user: principal.user, role: principal.role });
  });

  // Sign in: the token from a form (or JSON {token}) becomes an HttpOnly cookie.
  app.post('/auth/session', async (c) => {
    const form = isForm(c);
    // A sign-in from another site would sign the browser in as someone else.
    if (!sameOrigin(c)) return refuse(c, 403, 'forbidden', 'cross-site sign-in refused', form);
    let token: unknown;
    if (form) token = new URLSearchParams(await c.req.text()).get('token');
    else {
      try {
        token = ((await c.req.json()) as { token?: unknown } | null)?.token;
      } catch {
        token = undefined;
      }
    }
    const principal = typeof token === 'string' && token.trim() !== '' ? await queue.users.authenticate(token.trim()) : null;
    if (!principal) return refuse(c, 401, 'unauthorized', 'the token is unknown or revoked', form);
    c.header('Set-Cookie', cookie(c, name, (token as string).trim()));
    if (form) return c.redirect('/', 303);
    return c.json({ user: principal.user, role: principal.role });
  });

  // Sign out: the cookie is cleared.
  const signOut = (c: Context) => {
    const form = isForm(c);
    if (!sameOrigin(c)) return refuse(c, 403, 'forbidden', 'cross-site sign-out refused', form);
    c.header('Set-Cookie', cookie(c, name, '', 0));
    if (form) return c.redirect('/', 303);
    return c.json({ ok: true });
  };
  app.delete('/auth/session', signOut);
  app.post('/auth/signout', signOut);
}
