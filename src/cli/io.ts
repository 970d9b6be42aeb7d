/**
 * What a command talks to: its output streams, its environment, and (for the
 * long-running ones) the process's signals. Commands never touch `process`
 * directly, so tests can run them with fake streams.
 */
import { styleText } from 'node:util';

/** A writable text stream; `isTTY` decides colour and live redraws. */
export interface Output {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface Io {
  stdout: Output;
  stderr: Output;
  env: Record<string, string | undefined>;
  /** For `--payload-file -`. (Default: none; reading it is then a usage error) */
  stdin?: NodeJS.ReadableStream;
  /** Relative paths (`--handlers`) are resolved from here. (Default: process.cwd()) */
  cwd?: string;
  /** Calls `listener` on SIGINT/SIGTERM; returns a function that stops listening. */
  onSignal?: (listener: (signal: NodeJS.Signals) => void) => () => void;
  /** Ends the process at once (a second Ctrl+C). (Default: process.exit) */
  exit?: (code: number) => void;
}

/** An error the CLI reports as one line, with what to do about it, and an exit code. */
export class CliError extends Error {
  readonly exitCode: number;
  readonly hint: string | undefined;
  constructor(message: string, options: { hint?: string; exitCode?: number } = {}) {
    super(message);
    this.name = 'CliError';
    this.exitCode = options.exitCode ?? 1;
    this.hint = options.hint;
  }
}

/** Bad usage: exit code 2. */
export function usageError(message: string, hint?: string): CliError {
  return new CliError(message, { hint, exitCode: 2 });
}

export type Style = Parameters<typeof styleText>[0];

/** Colours text for one stream: only on a terminal, and never when NO_COLOR is set. */
export interface Painter {
  readonly enabled: boolean;
  (style: Style, text: string): string;
}

export function painter(stream: Output, env: Io['env']): Painter {
  const forced = env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false';
  const enabled = !env.NO_COLOR && (forced || stream.isTTY === true) && env.TERM !== 'dumb';
  const paint = ((style: Style, text: string) =>
    enabled && text !== '' ? styleText(style, text, { validateStream: false }) : text) as Painter;
  Object.defineProperty(paint, 'enabled', { value: enabled });
  return paint;
}

/** Writes one line (adds the newline). */
export function line(stream: Output, text = ''): void {
  stream.write(text + '\n');
}

/** Writes a value as JSON on its own line: the only thing `--json` puts on stdout. */
export function printJson(stream: Output, value: unknown, pretty = true): void {
  stream.write(JSON.stringify(value, null, pretty ? 2 : undefined) + '\n');
}
