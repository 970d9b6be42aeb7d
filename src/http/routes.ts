/**
 * A small route table over Hono: each route declares its path, its input
 * schemas (zod) and its answers once; the same declaration validates the
 * request, types the handler's input and writes the OpenAPI 3.1 document.
 */
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { ValidationError } from '../errors.ts';
import { parseOrThrow } from '../schema.ts';
import type { Principal } from '../users.ts';

export type Method = 'get' | 'post' | 'put' | 'delete';
/** Who may call a route: anyone, any signed-in user, or admins only. */
export type Access = 'public' | 'user' | 'admin';

export interface Answer {
  description: string;
  schema?: z.ZodType;
  /** A media type other than JSON (e.g. text/plain for /metrics). */
  mediaType?: string;
}

export interface RouteSpec<Q extends z.ZodType | undefined, B extends z.ZodType | undefined> {
  method: Method;
  /** Hono style: `/jobs/:id`. */
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  access: Access;
  query?: Q;
  body?: B;
  /** The handler validates the body itself (`body` then only documents it). */
  ownValidation?: boolean;
  /** Path parameters and what they mean. */
  params?: Record<string, string>;
  answers: Record<number, Answer>;
}

export interface RouteInput<Q, B> {
  principal: Principal | null;
  query: Q;
  body: B;
  params: Record<string, string>;
}

type Out<S> = S extends z.ZodType ? z.output<S> : undefined;

export interface Env {
  Variables: { principal: Principal | null };
}

/** Reads the body as JSON: 415 for another media type, 400 for malformed JSON. */
export async function readJson(c: Context): Promise<unknown> {
  const type = (c.req.header('content-type') ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') {
    throw new UnsupportedMediaTypeError(type);
  }
  const text = await c.req.text();
  try {
    return JSON.parse(text);
  } catch (error) {
    // Too deep for the parser (RangeError) or not JSON at all.
    throw new ValidationError('body', `is not valid JSON (${(error as Error).message.split('\n')[0].slice(0, 120)})`);
  }
}

export class UnsupportedMediaTypeError extends Error {
  readonly status = 415;
  readonly code = 'unsupported_media_type';
  constructor(type: string) {
    super(`send the body as application/json${type ? `, not ${type}` : ''}`);
  }
}

/** Query strings arrive as strings (or repeated keys): lists for arrays, numbers from text. */
function queryObject(c: Context, schema: z.ZodType): Record<string, unknown> {
  const shape = schema instanceof z.ZodObject ? (schema.shape as Record<string, z.ZodType>) : {};
  const all = c.req.queries();
  const out: Record<string, unknown> = {};
  for (const [key, values] of Object.entries(all)) {
    const field = shape[key];
    const inner = field instanceof z.ZodOptional ? field.unwrap() : field;
    if (inner instanceof z.ZodArray) out[key] = values.flatMap((v) => v.split(',')).filter((v) => v !== '');
    else out[key] = values[values.length - 1];
  }
  return out;
}

export class Routes {
  readonly #app: Hono<Env>;
  readonly #specs: RouteSpec<z.ZodType | undefined, z.ZodType | undefined>[] = [];
  readonly #authorize: (c: Context<Env>, access: Access) => Promise<Principal | null>;

  constructor(app: Hono<Env>, authorize: (c: Context<Env>, access: Access) => Promise<Principal | null>) {
    this.#app = app;
    this.#authorize = authorize;
  }

  add<Q extends z.ZodType | undefined = undefined, B extends z.ZodType | undefined = undefined>(
    spec: RouteSpec<Q, B>,
    handler: (c: Context<Env>, input: RouteInput<Out<Q>, Out<B>>) => Promise<Response> | Response,
  ): void {
    this.#specs.push(spec as RouteSpec<z.ZodType | undefined, z.ZodType | undefined>);
    this.#app.on(spec.method.toUpperCase(), spec.path, async (c) => {
      const principal = await this.#authorize(c, spec.access);
      const query = (spec.query ? parseOrThrow(spec.query, queryObject(c, spec.query)) : undefined) as Out<Q>;
      const raw = spec.body ? await readJson(c) : undefined;
      const body = (spec.body && !spec.ownValidation ? parseOrThrow(spec.body, raw) : raw) as Out<B>;
      return handler(c, { principal, query, body, params: c.req.param() as Record<string, string> });
    });
  }

  /** The OpenAPI 3.1 document of every route added. */
  openapi(info: { title: string; version: string; description: string }): Record<string, unknown> {
    const paths: Record<string, Record<string, unknown>> = {};
    const components: Record<string, unknown> = {};
    // Named schemas (.meta({id})) go to components.schemas, referred to from where they are used.
    const schema = (s: z.ZodType, io: 'input' | 'output') => {
      const out = z.toJSONSchema(s, { target: 'draft-2020-12', unrepresentable: 'any', io, reused: 'inline' }) as Record<string, unknown>;
      const text = JSON.stringify(out).replaceAll('"#/$defs/', '"#/components/schemas/');
      const converted = JSON.parse(text) as Record<string, unknown>;
      const defs = (converted.$defs ?? {}) as Record<string, unknown>;
      for (const [name, def] of Object.entries(defs)) components[name] ??= def;
      delete converted.$defs;
      return converted;
    };
    const strip = (s: Record<string, unknown>) => {
      const { $schema: _drop, ...rest } = s;
      return rest;
    };
    for (const spec of this.#specs) {
      const path = spec.path.replace(/:([A-Za-z]+)/g, '{$1}');
      const parameters: unknown[] = [];
      for (const [name, description] of Object.entries(spec.params ?? {})) {
        parameters.push({ name, in: 'path', required: true, description, schema: { type: 'string' } });
      }
      if (spec.query instanceof z.ZodObject) {
        for (const [name, field] of Object.entries(spec.query.shape as Record<string, z.ZodType>)) {
          const s = strip(schema(field, 'input'));
          parameters.push({
            name,
            in: 'query',
            required: !(field instanceof z.ZodOptional),
            ...(typeof s.description === 'string' ? { description: s.description } : {}),
            schema: s,
            ...(s.type === 'array' ? { style: 'form', explode: true } : {}),
          });
        }
      }
      const responses: Record<string, unknown> = {};
      for (const [status, answer] of Object.entries(spec.answers)) {
        responses[status] = {
          description: answer.description,
          ...(answer.schema ? { content: { [answer.mediaType ?? 'application/json']: { schema: strip(schema(answer.schema, 'output')) } } } : {}),
        };
      }
      const op: Record<string, unknown> = {
        operationId: spec.operationId,
        summary: spec.summary,
        tags: [spec.tag],
        ...(parameters.length ? { parameters } : {}),
        ...(spec.body ? { requestBody: { required: true, content: { 'application/json': { schema: strip(schema(spec.body, 'input')) } } } } : {}),
        responses,
        ...(spec.access === 'public' ? { security: [] } : {}),
      };
      (paths[path] ??= {})[spec.method] = op;
    }
    return {
      openapi: '3.1.0',
      info,
      servers: [{ url: '/' }],
      components: {
        schemas: components,
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'an agentq API token (agentq users token NAME)' } },
      },
      security: [{ bearer: [] }],
      paths,
    };
  }
}
