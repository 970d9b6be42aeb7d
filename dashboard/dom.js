// Building the page from data without ever parsing it as HTML: text goes in
// as text nodes (textContent), attributes through setAttribute.

/**
 * h('a', {href: '#/jobs', class: 'x', onclick: fn}, 'text', child, [more])
 * Strings and numbers become text nodes; null, undefined and false are skipped.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'value' && 'value' in el) el.value = value;
    else if (key === 'checked' || key === 'disabled' || key === 'selected') el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const FINISHED = new Set(['completed', 'failed', 'cancelled']);
export const STATUSES = ['pending', 'blocked', 'running', 'waiting', 'completed', 'failed', 'cancelled'];

export function badge(status) {
  return h('span', { class: `badge s-${STATUSES.includes(status) ? status : 'other'}` }, status);
}

/** The first 12 characters of an id, as the CLI shows them and takes them back as a prefix. */
export function shortId(id) {
  return id ? id.slice(0, 12) : '';
}

export function jobLink(id, text) {
  return h('a', { href: `#/jobs/${encodeURIComponent(id)}`, class: 'mono', title: id }, text ?? shortId(id));
}

/** "12 s ago", "in 3 min", or "—". */
export function ago(iso) {
  if (!iso) return '—';
  const t = typeof iso === 'number' ? iso : Date.parse(iso);
  const d = (Date.now() - t) / 1000;
  const a = Math.abs(d);
  const text = a < 1 ? 'now' : a < 60 ? `${Math.round(a)} s` : a < 3600 ? `${Math.round(a / 60)} min` : a < 86400 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86400)} d`;
  if (text === 'now') return text;
  return d >= 0 ? `${text} ago` : `in ${text}`;
}

export function when(iso) {
  if (!iso) return h('span', { class: 'dim' }, '—');
  return h('time', { datetime: iso, title: new Date(iso).toLocaleString() }, ago(iso));
}

export function duration(ms) {
  if (ms == null) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/** Any JSON value, pretty, as text. */
export function json(value) {
  if (value === undefined) return '';
  return typeof value === 'string' ? value : JSON.stringify(value, null, 2);
}

/** Calls fn at most every `ms`; calls while one is due join it. */
export function throttle(fn, ms) {
  let timer = null;
  let last = 0;
  const call = () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      last = Date.now();
      fn();
    }, Math.max(0, last + ms - Date.now()));
  };
  call.cancel = () => {
    clearTimeout(timer);
    timer = null;
  };
  return call;
}

export function table(head, rows, empty = 'Nothing here yet.') {
  return h(
    'div',
    { class: 'table-wrap' },
    h('table', null, h('thead', null, h('tr', null, head.map((c) => (typeof c === 'string' ? h('th', null, c) : c)))), h('tbody', null, rows.length ? rows : h('tr', null, h('td', { colspan: head.length, class: 'dim empty' }, empty)))),
  );
}
