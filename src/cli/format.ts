/** Turning jobs into text for people: tables, relative times, durations, progress bars. */
import { stripVTControlCharacters } from 'node:util';
import type { Job, JobStatus, LogLevel } from '../job.ts';
import { SHORT_ID_LENGTH } from '../ids.ts';
import type { UsageTotals } from '../store/store.ts';
import type { Painter, Style } from './io.ts';

/** The first characters of an id: enough to tell apart the ids one process made, and a prefix every command takes. */
export function shortId(id: string): string {
  return id.slice(0, SHORT_ID_LENGTH);
}

const STATUS_STYLE: Record<JobStatus, Style> = {
  blocked: 'magenta',
  pending: 'yellow',
  running: 'cyan',
  waiting: 'blue',
  completed: 'green',
  failed: 'red',
  cancelled: 'gray',
};

export function statusText(paint: Painter, status: JobStatus): string {
  return paint(STATUS_STYLE[status] ?? 'white', status);
}

const LEVEL_STYLE: Record<LogLevel, Style> = { debug: 'gray', info: 'blue', warn: 'yellow', error: 'red' };

export function levelText(paint: Painter, level: LogLevel): string {
  return paint(LEVEL_STYLE[level] ?? 'white', level.toUpperCase().padEnd(5));
}

/** 350ms, 1.2s, 42s, 3m 20s, 2h 5m, 3d 4h. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  const abs = Math.abs(ms);
  const sign = ms < 0 ? '-' : '';
  if (abs < 1000) return `${sign}${Math.round(abs)}ms`;
  if (abs < 10_000) return `${sign}${(Math.floor(abs / 100) / 10).toFixed(1)}s`;
  const s = Math.floor(abs / 1000);
  if (s < 60) return `${sign}${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${sign}${m}m${s % 60 ? ` ${s % 60}s` : ''}`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${sign}${h}h${m % 60 ? ` ${m % 60}m` : ''}`;
  const d = Math.floor(h / 24);
  return `${sign}${d}d${h % 24 ? ` ${h % 24}h` : ''}`;
}

/** "just now", "3m ago", "in 5m". */
export function relativeTime(iso: string | null, now = Date.now()): string {
  if (!iso) return '-';
  const diff = now - Date.parse(iso);
  if (!Number.isFinite(diff)) return '-';
  const coarse = (ms: number) => {
    const s = Math.floor(ms / 1000);
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m`;
    const h = Math.floor(m / 60);
    if (h < 48) return `${h}h`;
    return `${Math.floor(h / 24)}d`;
  };
  if (Math.abs(diff) < 1000) return 'just now';
  return diff > 0 ? `${coarse(diff)} ago` : `in ${coarse(-diff)}`;
}

/** `█████░░░░░  50%` */
export function progressBar(paint: Painter, percent: number, width = 10): string {
  const p = Math.max(0, Math.min(100, Number.isFinite(percent) ? percent : 0));
  const filled = Math.round((p / 100) * width);
  return `${paint('cyan', '█'.repeat(filled))}${paint('gray', '░'.repeat(width - filled))} ${String(Math.round(p)).padStart(3)}%`;
}

/** What a job is at, in a few characters: a bar while it runs, its duration once finished, when it runs if delayed. */
export function jobProgress(paint: Painter, job: Job, now = Date.now()): string {
  if (job.status === 'running') return progressBar(paint, job.progress);
  if (job.durationMs != null && job.finishedAt) return formatDuration(job.durationMs);
  if (job.status === 'pending' && Date.parse(job.runAt) > now + 1000) return `runs ${relativeTime(job.runAt, now)}`;
  return '';
}

export function visibleWidth(text: string): number {
  return stripVTControlCharacters(text).length;
}

function pad(text: string, width: number, align: 'left' | 'right'): string {
  const gap = ' '.repeat(Math.max(0, width - visibleWidth(text)));
  return align === 'right' ? gap + text : text + gap;
}

export interface Column {
  header: string;
  align?: 'left' | 'right';
}

/** An aligned table: a header row, then one row per entry, columns two spaces apart. */
export function table(paint: Painter, columns: readonly Column[], rows: readonly string[][]): string[] {
  const widths = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => visibleWidth(r[i] ?? ''))));
  const render = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 && columns[i].align !== 'right' ? cell : pad(cell, widths[i], columns[i].align ?? 'left')))
      .join('  ')
      .trimEnd();
  return [paint('bold', render(columns.map((c) => c.header))), ...rows.map(render)];
}

/** Usage per agent or owner as a table: calls, tokens in and out, cost. */
export function usageTable(paint: Painter, group: string, rows: ReadonlyArray<UsageTotals & { name: string | null }>): string[] {
  return table(
    paint,
    [{ header: group.toUpperCase() }, { header: 'CALLS', align: 'right' }, { header: 'TOKENS IN', align: 'right' }, { header: 'TOKENS OUT', align: 'right' }, { header: 'COST', align: 'right' }],
    rows.map((u) => [u.name ?? paint('dim', '(none)'), String(u.calls), u.inputTokens.toLocaleString('en-US'), u.outputTokens.toLocaleString('en-US'), `$${u.costUsd.toFixed(4)}`]),
  );
}

/** `key  value` lines with the keys aligned. */
export function fields(paint: Painter, entries: ReadonlyArray<[string, string]>): string[] {
  const width = Math.max(...entries.map(([k]) => k.length));
  return entries.map(([k, v]) => `${paint('dim', k.padEnd(width))}  ${v}`);
}

/** HH:MM:SS.mmm in local time. */
export function clockTime(iso: string): string {
  const d = new Date(iso);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

/** A local date and time, plus how long ago: `2026-01-01 12:00:00 (3m ago)`. */
export function dateTime(iso: string | null, now = Date.now()): string {
  if (!iso) return '-';
  const d = new Date(iso);
  const two = (n: number) => String(n).padStart(2, '0');
  const text = `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  return `${text} (${relativeTime(iso, now)})`;
}

/** JSON on one line, shortened to `max` characters. */
export function compactJson(value: unknown, max = 120): string {
  const text = JSON.stringify(value) ?? '';
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}

/** Indents every line of a block of text. */
export function indent(text: string, by = '  '): string {
  return text
    .split('\n')
    .map((l) => by + l)
    .join('\n');
}

/** Cuts a line to a width. Colour codes make exact cutting fiddly: only plain lines are cut. */
export function truncateVisible(text: string, width: number): string {
  if (text.length <= width || /\x1b\[/.test(text)) return text;
  return text.slice(0, Math.max(0, width - 1)) + '…';
}
