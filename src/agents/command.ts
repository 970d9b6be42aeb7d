/**
 * Command agents: an agents file (YAML) declares agents as commands to run —
 * a script, a shell line, an LLM command-line tool — and each becomes a
 * handler, with no code to write.
 *
 *   agents:
 *     summarize:
 *       command: [node, ./agents/summarize.mjs, --topic, '{payload.topic}']
 *       stdin: json            # none (default) | json | instructions
 *       cwd: .                 # relative to the agents file's folder (default: that folder)
 *       env: { MODEL: small }  # added to the worker's environment (placeholders allowed)
 *       inheritEnv: true       # false: start from PATH, HOME, LANG and TMPDIR only
 *       shell: false           # true: command is a shell script run with sh -c
 *       timeout: 10m           # ends the process tree after this long (ms or 500ms, 30s, 10m, 1h)
 *       killGrace: 5s          # SIGTERM → SIGKILL delay when it is ended (default 5s)
 *       concurrency: 2         # jobs of this agent run at once by this worker process
 *       maxConcurrency: 4      # global cap across all workers (queue.setAgentConcurrency)
 *       maxAttempts: 3         # at most this many attempts, whatever the job allows
 *       result: auto           # auto | text | json | none
 *       maxOutput: 256KB       # stdout kept for the result (beyond it, cut)
 *
 * Placeholders — `{instructions}`, `{payload}`, `{payload.a.b}`, `{metadata.x}`,
 * `{job.id}` (and agent, type, attempt, maxAttempts, owner, priority, tags,
 * parentId, key, scheduleId, createdAt) — are replaced inside each argument on
 * its own: one list element stays exactly one argument, whatever the value
 * holds (quotes, `;`, `$(...)`, newlines). No shell sees them unless the agent
 * says `shell: true`, and even then the script itself is never substituted
 * into: job data reaches it as `$1, $2, ...` (the list's further elements) or
 * as environment variables. `{payload.x?}` stands for an empty string when the
 * field is missing (without `?`, a missing field fails the job). `{{` is a
 * literal `{`.
 *
 * The line protocol, on stdout or stderr:
 *   ::progress 40 fetching sources   → ctx.progress(40, 'fetching sources')
 *   ::result {"answer": 42}          → the job's result (JSON; the last one wins)
 *   ::log warn message               → a log line at that level (debug, info, warn, error)
 * Every other line goes to the job log as it comes: stdout at info, stderr at
 * warn. Without `::result`, the result is stdout (JSON when it parses as JSON).
 * Exit code 0 is success; anything else fails the attempt with the tail of
 * stderr in the error (and exitCode, signal, stderr in `error.details`).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument, type YAMLError } from 'yaml';
import { z } from 'zod';
import { durationFromText } from '../duration.ts';
import { JobCancelledError, NonRetryableError, ValidationError, type ErrorDetails } from '../errors.ts';
import { LOG_LEVELS, type Job, type Json, type LogLevel } from '../job.ts';
import type { Queue } from '../queue.ts';
import type { Handler, JobContext } from '../worker.ts';
import { allCommandsSettled, killAllCommands, runProcess, SpawnError } from './process-tree.ts';

export { allCommandsSettled, killAllCommands };

export type StdinMode = 'none' | 'json' | 'instructions';
export type ResultMode = 'auto' | 'text' | 'json' | 'none';

/** One command agent, validated: defaults applied, paths absolute, templates compiled. */
export interface CommandAgent {
  name: string;
  description: string | null;
  /** The argument list as written (with placeholders). In shell mode the first element is the script. */
  command: string[];
  shell: boolean;
  stdin: StdinMode;
  /** Absolute. */
  cwd: string;
  env: Record<string, string>;
  inheritEnv: boolean;
  timeoutMs: number | null;
  killGraceMs: number;
  /** Slots of its own in this worker process; null: it shares the worker's --concurrency. */
  concurrency: number | null;
  /** Global cap across all workers; null: the file sets none. */
  maxConcurrency: number | null;
  /** Cap on attempts; null: the job's maxAttempts alone decides. */
  maxAttempts: number | null;
  result: ResultMode;
  maxOutputBytes: number;
}

export const DEFAULT_KILL_GRACE_MS = 5000;
export const DEFAULT_MAX_OUTPUT_BYTES = 256 * 1024;
/** Lines logged per attempt; the rest of the output still counts for the result. */
export const MAX_LOG_LINES = 10_000;
/** A longer log line is cut. */
export const MAX_LOG_LINE_CHARS = 16_384;
/** AGENTQ_INSTRUCTIONS and AGENTQ_PAYLOAD are left out of the environment above this size. */
const MAX_ENV_VALUE_CHARS = 64 * 1024;
const STDERR_TAIL_LINES = 20;
const STDERR_TAIL_CHARS = 4000;

export const AGENT_FIELDS = [
  'description',
  'command',
  'shell',
  'stdin',
  'cwd',
  'env',
  'inheritEnv',
  'timeout',
  'killGrace',
  'concurrency',
  'maxConcurrency',
  'maxAttempts',
  'result',
  'maxOutput',
] as const;

const AGENT_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}$/;

// ---- errors ----------------------------------------------------------------------------------

/**
 * A bad agents file. Names the agent and the field (`agent summarize:
 * timeout: expected a duration ...`); `field` is the path in the file
 * (`agents.summarize.timeout`).
 */
export class AgentsFileError extends ValidationError {
  readonly agent: string | null;
  constructor(agent: string | null, relative: string, problem: string, details?: ErrorDetails) {
    const path = agent == null ? relative || 'file' : ['agents', agent, relative].filter(Boolean).join('.');
    super(path, problem, { ...details, agent });
    this.name = 'AgentsFileError';
    this.agent = agent;
    this.message = agent == null ? `${relative ? `${relative}: ` : ''}${problem}` : `agent ${agent}: ${relative ? `${relative}: ` : ''}${problem}`;
  }
}

/** A command that exited with a code other than 0, or was ended by a signal. */
export class CommandFailedError extends Error {
  readonly code = 'command_failed';
  retryable = true;
  readonly details: { exitCode: number | null; signal: string | null; stderr: string };
  constructor(agent: string, exitCode: number | null, signal: string | null, stderrTail: string) {
    const how = exitCode !== null ? `exited with code ${exitCode}` : `was ended by ${signal}`;
    super(`command of agent ${agent} ${how}${stderrTail ? `: ${stderrTail}` : ' (no stderr output)'}`);
    this.name = 'CommandFailedError';
    this.details = { exitCode, signal, stderr: stderrTail };
  }
}

/** The agent's own `timeout` ran out; the process tree was ended. */
export class CommandTimeoutError extends Error {
  readonly code = 'timeout';
  retryable = true;
  constructor(agent: string, timeoutMs: number) {
    super(`command of agent ${agent} timed out after ${timeoutMs} ms; its process tree was ended`);
    this.name = 'CommandTimeoutError';
  }
}

/** The command succeeded but its output is not the result its agent promised. */
export class CommandOutputError extends Error {
  readonly code = 'bad_output';
  retryable = true;
  constructor(message: string) {
    super(message);
    this.name = 'CommandOutputError';
  }
}

// ---- durations and sizes ---------------------------------------------------------------------

const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, kib: 1024, mb: 1024 ** 2, mib: 1024 ** 2 };

/** Milliseconds: a number is milliseconds; a string is `500ms`, `30s`, `10m`, `1h`, `1h30m`. */
function parseDuration(value: number | string): number | null {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : null;
  return durationFromText(value);
}

/** Bytes: a number is bytes; a string is `64KB`, `1MB` (binary units). */
function parseSize(value: number | string): number | null {
  if (typeof value === 'number') return Number.isInteger(value) && value > 0 ? value : null;
  const m = /^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib)?$/.exec(value.trim().toLowerCase());
  return m ? Math.round(Number(m[1]) * SIZE_UNITS[m[2] ?? 'b']) : null;
}

// ---- placeholders ----------------------------------------------------------------------------

const JOB_PLACEHOLDER_FIELDS = [
  'id',
  'agent',
  'type',
  'attempt',
  'maxAttempts',
  'owner',
  'priority',
  'tags',
  'parentId',
  'key',
  'scheduleId',
  'createdAt',
] as const;

type Root = 'instructions' | 'payload' | 'metadata' | 'job';
interface Slot {
  root: Root;
  path: string[];
  optional: boolean;
  text: string;
}
type Template = Array<string | Slot>;

const PLACEHOLDER = /\{\{|\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*)(\?)?\}/g;
const PLACEHOLDER_HELP =
  'use {instructions}, {payload}, {payload.FIELD}, {metadata.FIELD} or {job.id} (agent, type, attempt, ...); write {{ for a literal {';

/** Splits a string into literal text and placeholders; throws on an unknown placeholder. */
function compile(text: string, fail: (problem: string) => never): Template {
  const parts: Template = [];
  let last = 0;
  let literal = '';
  for (const m of text.matchAll(PLACEHOLDER)) {
    literal += text.slice(last, m.index);
    last = m.index + m[0].length;
    if (m[0] === '{{') {
      literal += '{';
      continue;
    }
    const [root, ...path] = m[1].split('.');
    if (root !== 'instructions' && root !== 'payload' && root !== 'metadata' && root !== 'job') {
      fail(`unknown placeholder ${m[0]}; ${PLACEHOLDER_HELP}`);
    }
    if (root === 'instructions' && path.length > 0) fail(`${m[0]}: instructions is text and has no fields; use {instructions}`);
    if (root === 'job' && (path.length !== 1 || !(JOB_PLACEHOLDER_FIELDS as readonly string[]).includes(path[0]))) {
      fail(`unknown placeholder ${m[0]}; the job fields are ${JOB_PLACEHOLDER_FIELDS.map((f) => `{job.${f}}`).join(', ')}`);
    }
    if (literal) parts.push(literal);
    literal = '';
    parts.push({ root: root as Root, path, optional: m[2] === '?', text: m[0] });
  }
  literal += text.slice(last);
  if (literal || parts.length === 0) parts.push(literal);
  return parts;
}

/** Placeholder-looking text a shell script must not hold (it would not be replaced). */
const SHELL_PLACEHOLDER = /(?<!\$)\{(instructions|payload|metadata|job)(\.[A-Za-z0-9_.-]+)?\??\}/;

function lookup(job: Job, attempt: number, slot: Slot): Json | undefined {
  if (slot.root === 'instructions') return job.instructions ?? '';
  if (slot.root === 'job') {
    const field = slot.path[0];
    if (field === 'attempt') return attempt;
    return (job as unknown as Record<string, Json>)[field] ?? null;
  }
  let value: Json | undefined = slot.root === 'payload' ? job.payload : job.metadata;
  for (const key of slot.path) {
    if (value === null || typeof value !== 'object') return undefined;
    if (Array.isArray(value)) {
      if (!/^\d+$/.test(key)) return undefined;
      value = value[Number(key)];
    } else {
      value = Object.hasOwn(value, key) ? value[key] : undefined;
    }
  }
  return value;
}

/** A value as one argument: text as it is, null as empty, numbers and booleans spelled out, the rest as JSON. */
function asText(value: Json): string {
  if (typeof value === 'string') return value;
  if (value === null) return '';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

function render(template: Template, job: Job, attempt: number, where: string): string {
  let out = '';
  for (const part of template) {
    if (typeof part === 'string') {
      out += part;
      continue;
    }
    const value = lookup(job, attempt, part);
    if (value === undefined) {
      if (part.optional) continue;
      throw new NonRetryableError(
        `${where} needs ${part.text.slice(1, -1)}, which job ${job.id} does not have (write ${part.text.slice(0, -1)}?} to pass an empty string instead)`,
      );
    }
    out += asText(value);
  }
  if (out.includes('\0')) {
    throw new NonRetryableError(`${where} would hold a NUL character, which a command cannot receive; pass the data with stdin: json`);
  }
  return out;
}

// ---- the agents file -------------------------------------------------------------------------

const duration = z.union([z.number(), z.string()]);
const agentSchema = z.strictObject({
  description: z.string().nullable().optional(),
  command: z.union([z.string().min(1, 'must not be empty'), z.array(z.string()).min(1, 'must list at least the program')]),
  shell: z.boolean('expected true or false').optional(),
  stdin: z.enum(['none', 'json', 'instructions'], 'expected none, json or instructions').optional(),
  cwd: z.string().min(1, 'must not be empty').optional(),
  env: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()], 'expected text, a number or true/false')).optional(),
  inheritEnv: z.boolean('expected true or false').optional(),
  timeout: duration.nullable().optional(),
  killGrace: duration.optional(),
  concurrency: z.int('expected a whole number').min(1, 'must be at least 1').max(10_000, 'must be at most 10000').optional(),
  maxConcurrency: z.int('expected a whole number').min(0, 'must be 0 or more').nullable().optional(),
  maxAttempts: z.int('expected a whole number').min(1, 'must be at least 1').max(1000, 'must be at most 1000').optional(),
  result: z.enum(['auto', 'text', 'json', 'none'], 'expected auto, text, json or none').optional(),
  maxOutput: z.union([z.number(), z.string()]).optional(),
});

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length];
}

function describeYamlError(error: YAMLError): string {
  const message = error.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
  const pos = error.linePos?.[0];
  return pos ? `${message} (line ${pos.line}, column ${pos.col})` : message;
}

/** Validates one agent's entry. `baseDir` resolves a relative cwd. */
export function validateAgent(name: string, input: unknown, baseDir: string): CommandAgent {
  const fail = (field: string, problem: string, details?: ErrorDetails): never => {
    throw new AgentsFileError(name, field, problem, details);
  };
  if (!AGENT_NAME.test(name)) fail('', 'an agent name is 1 to 100 letters, digits, _, ., - or :, starting with a letter, digit or _');
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    fail('', 'expected a mapping with at least command: [program, arguments...]');
  }
  const parsed = agentSchema.safeParse(input);
  if (!parsed.success) {
    // A misspelt field explains a missing one: report it first.
    const issue = parsed.error.issues.find((i) => i.code === 'unrecognized_keys') ?? parsed.error.issues[0];
    const field = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      const key = issue.keys[0];
      const near = AGENT_FIELDS.find((f) => editDistance(f.toLowerCase(), key.toLowerCase()) <= 2);
      fail([field, key].filter(Boolean).join('.'), `is not a known field${near ? ` (did you mean ${near}?)` : ''}; known fields: ${AGENT_FIELDS.join(', ')}`, {
        unknown: issue.keys,
      });
    }
    if (issue.path.length === 1 && (input as Record<string, unknown>)[field] === undefined) fail(field, 'is required');
    if (field === 'command') fail(field, 'expected a list of arguments, e.g. [llm, --prompt, "{instructions}"]');
    if (issue.code === 'invalid_union' && (field === 'timeout' || field === 'killGrace')) {
      fail(field, 'expected a duration: milliseconds, or 500ms, 30s, 10m, 1h');
    }
    if (issue.code === 'invalid_union' && field === 'maxOutput') fail(field, 'expected a size: bytes, or 64KB, 1MB');
    fail(field, issue.message);
  }
  const v = parsed.data!;
  const shell = v.shell ?? false;

  let command: string[];
  if (typeof v.command === 'string') {
    if (shell) command = [v.command];
    else if (/^\S+$/.test(v.command)) command = [v.command];
    else {
      fail('command', 'without shell: true, give a list of arguments (e.g. [llm, --prompt, "{instructions}"]), or set shell: true to run it as a shell script');
    }
  } else {
    command = v.command;
  }
  command = command!;
  if (command[0].trim() === '') fail('command.0', 'the program must not be empty');
  command.forEach((element, i) => {
    if (shell && i === 0) {
      const m = SHELL_PLACEHOLDER.exec(element);
      if (m) {
        fail(
          'command.0',
          `a shell script is run as written, so ${m[0]} would not be replaced; pass the value as an argument (command: [script, "${m[0]}"] and use "$1" in the script) or read $AGENTQ_INSTRUCTIONS / $AGENTQ_PAYLOAD`,
        );
      }
      return;
    }
    compile(element, (problem) => fail(`command.${i}`, problem));
  });

  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(v.env ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) fail(`env.${key}`, 'is not a valid environment variable name');
    const text = String(value);
    compile(text, (problem) => fail(`env.${key}`, problem));
    env[key] = text;
  }

  const cwd = v.cwd === undefined ? baseDir : isAbsolute(v.cwd) ? v.cwd : resolve(baseDir, v.cwd);
  if (!existsSync(cwd) || !statSync(cwd).isDirectory()) fail('cwd', `${cwd} is not a directory`);

  let timeoutMs: number | null = null;
  if (v.timeout != null) {
    timeoutMs = parseDuration(v.timeout);
    if (timeoutMs === null || timeoutMs <= 0) fail('timeout', 'expected a duration above zero: milliseconds, or 500ms, 30s, 10m, 1h');
  }
  let killGraceMs = DEFAULT_KILL_GRACE_MS;
  if (v.killGrace !== undefined) {
    const ms = parseDuration(v.killGrace);
    if (ms === null) fail('killGrace', 'expected a duration: milliseconds, or 500ms, 5s, 1m (0 kills at once)');
    killGraceMs = ms!;
  }
  let maxOutputBytes = DEFAULT_MAX_OUTPUT_BYTES;
  if (v.maxOutput !== undefined) {
    const bytes = parseSize(v.maxOutput);
    if (bytes === null || bytes <= 0) fail('maxOutput', 'expected a size above zero: bytes, or 64KB, 1MB');
    maxOutputBytes = bytes!;
  }

  return {
    name,
    description: v.description ?? null,
    command,
    shell,
    stdin: v.stdin ?? 'none',
    cwd,
    env,
    inheritEnv: v.inheritEnv ?? true,
    timeoutMs,
    killGraceMs,
    concurrency: v.concurrency ?? null,
    maxConcurrency: v.maxConcurrency ?? null,
    maxAttempts: v.maxAttempts ?? null,
    result: v.result ?? 'auto',
    maxOutputBytes,
  };
}

/**
 * Reads an agents file's text: a mapping with one key, `agents:`, holding a
 * mapping of agent names to their definitions. Every agent is checked; the
 * first problem is thrown as an AgentsFileError naming the agent and the
 * field, and nothing is returned. Relative `cwd`s resolve from `baseDir`.
 */
export function parseAgentsFile(text: string, baseDir: string): CommandAgent[] {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) throw new AgentsFileError(null, 'file', `not valid YAML: ${describeYamlError(problem)}`);
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new AgentsFileError(null, 'file', 'expected a mapping with one key, agents:, holding the agents by name');
  }
  const unknown = Object.keys(data).filter((k) => k !== 'agents');
  if (unknown.length > 0) {
    throw new AgentsFileError(null, unknown[0], 'is not a known top-level key; an agents file has one key, agents:, holding the agents by name');
  }
  const agents = (data as Record<string, unknown>).agents;
  if (agents === null || agents === undefined || typeof agents !== 'object' || Array.isArray(agents)) {
    throw new AgentsFileError(null, 'agents', 'expected a mapping of agent names to their definitions (name: {command: [...]})');
  }
  const entries = Object.entries(agents as Record<string, unknown>);
  if (entries.length === 0) throw new AgentsFileError(null, 'agents', 'declares no agents');
  return entries.map(([name, input]) => validateAgent(name, input, baseDir));
}

/** Reads and validates an agents file; relative `cwd`s resolve from the file's folder. */
export function loadAgentsFile(path: string): CommandAgent[] {
  const absolute = resolve(path);
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'it is a folder' : e.message;
    throw new AgentsFileError(null, 'file', `cannot read ${path}: ${why}`);
  }
  return parseAgentsFile(text, dirname(absolute));
}

/** Sets the global caps (`maxConcurrency`) the agents declare; agents without one are left as they are. */
export async function applyAgentCaps(queue: Queue, agents: readonly CommandAgent[]): Promise<void> {
  for (const agent of agents) {
    if (agent.maxConcurrency !== null) await queue.setAgentConcurrency(agent.name, agent.maxConcurrency);
  }
}

// ---- running a job ---------------------------------------------------------------------------

/** The environment of one run: the worker's (or a minimal one), AGENTQ_* variables, the agent's env. */
function environment(agent: CommandAgent, templates: ReadonlyArray<[string, Template]>, job: Job, attempt: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  if (agent.inheritEnv) Object.assign(env, process.env);
  else for (const key of ['PATH', 'HOME', 'LANG', 'TMPDIR']) if (process.env[key] !== undefined) env[key] = process.env[key];
  env.AGENTQ_JOB_ID = job.id;
  env.AGENTQ_AGENT = job.agent;
  env.AGENTQ_JOB_TYPE = job.type;
  env.AGENTQ_ATTEMPT = String(attempt);
  const instructions = job.instructions ?? '';
  if (instructions.length <= MAX_ENV_VALUE_CHARS && !instructions.includes('\0')) env.AGENTQ_INSTRUCTIONS = instructions;
  const payload = JSON.stringify(job.payload ?? null);
  if (payload.length <= MAX_ENV_VALUE_CHARS) env.AGENTQ_PAYLOAD = payload;
  for (const [key, template] of templates) env[key] = render(template, job, attempt, `env.${key}`);
  return env;
}

/** What the run's output amounts to: logged lines, progress, the result. */
class OutputHandler {
  readonly #ctx: JobContext;
  readonly #agent: CommandAgent;
  #chain: Promise<void> = Promise.resolve();
  #logged = 0;
  #stdout: string[] = [];
  #stdoutBytes = 0;
  #droppedBytes = 0;
  #stderrTail: string[] = [];
  #result: { line: string } | undefined;

  constructor(ctx: JobContext, agent: CommandAgent) {
    this.#ctx = ctx;
    this.#agent = agent;
  }

  /** Queues a write after the ones before it, so the log keeps the output's order. */
  #then(write: () => Promise<void>): Promise<void> {
    this.#chain = this.#chain.then(write).catch(() => {});
    return this.#chain;
  }

  #log(level: LogLevel, message: string): Promise<void> | undefined {
    if (this.#logged > MAX_LOG_LINES) return undefined;
    this.#logged++;
    if (this.#logged > MAX_LOG_LINES) {
      return this.#then(() => this.#ctx.log('warn', `more than ${MAX_LOG_LINES} lines of output: the rest is not logged`));
    }
    const text = message.length > MAX_LOG_LINE_CHARS ? `${message.slice(0, MAX_LOG_LINE_CHARS)}… [line cut]` : message;
    return this.#then(() => this.#ctx.log(level, text));
  }

  line = (stream: 'stdout' | 'stderr', line: string): Promise<void> | undefined => {
    if (line.startsWith('::')) {
      const handled = this.#protocol(line);
      if (handled !== false) return handled;
    }
    if (stream === 'stderr') {
      this.#stderrTail.push(line);
      if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift();
      return this.#log('warn', line);
    }
    const bytes = Buffer.byteLength(line) + 1;
    if (this.#stdoutBytes + bytes <= this.#agent.maxOutputBytes) {
      this.#stdout.push(line);
      this.#stdoutBytes += bytes;
    } else {
      this.#droppedBytes += bytes;
    }
    return this.#log('info', line);
  };

  /** A protocol line: its write, or false when the line is not one after all. */
  #protocol(line: string): Promise<void> | undefined | false {
    const m = /^::(progress|result|log)(?:\s+([\s\S]*))?$/.exec(line);
    if (!m) return false;
    const rest = (m[2] ?? '').trim();
    if (m[1] === 'result') {
      this.#result = { line: rest };
      return undefined;
    }
    if (m[1] === 'progress') {
      const p = /^(\d+(?:\.\d+)?)%?(?:\s+([\s\S]*))?$/.exec(rest);
      const percent = p ? Number(p[1]) : NaN;
      if (!p || percent > 100) return this.#log('warn', `ignored a progress line (expected "::progress 0-100 message"): ${line}`);
      const message = p[2]?.trim() || undefined;
      return this.#then(async () => {
        await this.#ctx.progress(percent, message);
      });
    }
    const l = /^(\S+)(?:\s+([\s\S]*))?$/.exec(rest);
    const level = l?.[1].toLowerCase();
    if (!l || !(LOG_LEVELS as readonly string[]).includes(level!)) return false;
    return this.#log(level as LogLevel, l[2] ?? '');
  }

  /** Resolves when every log and progress write queued so far is done. */
  settled(): Promise<void> {
    return this.#chain;
  }

  stderrTail(): string {
    const text = this.#stderrTail.join('\n').trim();
    return text.length > STDERR_TAIL_CHARS ? `…${text.slice(-STDERR_TAIL_CHARS)}` : text;
  }

  async result(): Promise<Json> {
    const mode = this.#agent.result;
    if (mode === 'none') return null;
    if (this.#result) {
      try {
        return JSON.parse(this.#result.line) as Json;
      } catch (error) {
        throw new CommandOutputError(`the ::result line is not valid JSON (${(error as Error).message}): ${this.#result.line.slice(0, 200)}`);
      }
    }
    let text = this.#stdout.join('\n').replace(/\s+$/, '');
    const cut = this.#droppedBytes > 0;
    if (cut) {
      await this.#then(() =>
        this.#ctx.log('warn', `stdout is over maxOutput (${this.#agent.maxOutputBytes} bytes): the result keeps the first part, ${this.#droppedBytes} bytes were left out`),
      );
    }
    if (mode === 'json' || mode === 'auto') {
      const trimmed = text.trim();
      if (trimmed === '') {
        if (mode === 'json') throw new CommandOutputError('result: json, but the command printed nothing on stdout');
        return null;
      }
      if (!cut) {
        try {
          return JSON.parse(trimmed) as Json;
        } catch (error) {
          if (mode === 'json') throw new CommandOutputError(`result: json, but stdout is not valid JSON (${(error as Error).message})`);
        }
      } else if (mode === 'json') {
        throw new CommandOutputError(`result: json, but stdout is over maxOutput (${this.#agent.maxOutputBytes} bytes)`);
      }
    }
    if (cut) text += `\n… [output cut: ${this.#droppedBytes} more bytes]`;
    return text;
  }
}

/** Whether an abort reason asks for SIGKILL at once (`kill --force`). */
function isForced(reason: unknown): boolean {
  return reason instanceof JobCancelledError && reason.force;
}

/** Marks an error as the last attempt the agent allows, so the job fails instead of retrying. */
function capped<E extends Error>(error: E, agent: CommandAgent, attempt: number): E {
  if (agent.maxAttempts !== null && attempt >= agent.maxAttempts) (error as { retryable?: boolean }).retryable = false;
  return error;
}

/** The handler that runs a command agent's command for each job. */
export function commandHandler(agent: CommandAgent): Handler {
  const refuse = (field: string) => (problem: string): never => {
    throw new AgentsFileError(agent.name, field, problem);
  };
  const templates = agent.command.map((element, i) => (agent.shell && i === 0 ? [element] : compile(element, refuse(`command.${i}`))));
  const envTemplates = Object.entries(agent.env).map(([key, value]): [string, Template] => [key, compile(value, refuse(`env.${key}`))]);
  return async (job, ctx) => {
    const attempt = ctx.attempt;
    if (agent.maxAttempts !== null && attempt > agent.maxAttempts) {
      throw new NonRetryableError(`attempt ${attempt} is over agent ${agent.name}'s maxAttempts of ${agent.maxAttempts}`);
    }
    const argv = templates.map((t, i) => render(t, job, attempt, `command argument ${i} ("${agent.command[i].slice(0, 60)}")`));
    const env = environment(agent, envTemplates, job, attempt);
    const stdin = agent.stdin === 'json' ? JSON.stringify(job) : agent.stdin === 'instructions' ? (job.instructions ?? '') : null;
    const [file, args] = agent.shell
      ? ['/bin/sh', ['-c', argv[0], `agentq:${agent.name}`, ...argv.slice(1)]]
      : [argv[0], argv.slice(1)];

    const timeout = new AbortController();
    const timer =
      agent.timeoutMs !== null
        ? setTimeout(() => timeout.abort(new CommandTimeoutError(agent.name, agent.timeoutMs!)), agent.timeoutMs)
        : undefined;
    const signal = AbortSignal.any([ctx.signal, timeout.signal]);
    const output = new OutputHandler(ctx, agent);
    let exit;
    try {
      exit = await runProcess({
        file,
        args,
        cwd: agent.cwd,
        env,
        stdin,
        signal,
        immediate: isForced,
        killGraceMs: agent.killGraceMs,
        onLine: output.line,
        maxLineLength: Math.max(agent.maxOutputBytes, 64 * 1024),
      });
    } catch (error) {
      if (error instanceof SpawnError) throw new NonRetryableError(error.message, { cause: error });
      throw error;
    } finally {
      clearTimeout(timer);
    }
    await output.settled();
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (timeout.signal.aborted) throw capped(timeout.signal.reason as CommandTimeoutError, agent, attempt);
    if (exit.code !== 0) throw capped(new CommandFailedError(agent.name, exit.code, exit.signal, output.stderrTail()), agent, attempt);
    try {
      return await output.result();
    } catch (error) {
      throw capped(error as Error, agent, attempt);
    }
  };
}

/** Handlers for the agents of a file, by name. */
export function commandHandlers(agents: readonly CommandAgent[]): Record<string, Handler> {
  return Object.fromEntries(agents.map((a) => [a.name, commandHandler(a)]));
}
