// One Server-Sent Events stream (/api/v1/events) for the whole page. Views
// listen while they are shown; the stream resumes after the last event id
// when the connection drops, so nothing is missed.

const listeners = new Set();
const statusListeners = new Set();
const recent = [];
const KEEP = 300;
let lastId = null;
let abort = null;
let state = 'offline';

function setState(next) {
  state = next;
  for (const fn of statusListeners) fn(state);
}

export function onStatus(fn) {
  statusListeners.add(fn);
  fn(state);
  return () => statusListeners.delete(fn);
}

/** Calls fn(event) for every event from now on; returns a function that stops it. */
export function listen(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** The events seen since the page opened, oldest first. */
export function recentEvents() {
  return recent.slice();
}

function dispatch(event) {
  recent.push(event);
  if (recent.length > KEEP) recent.splice(0, recent.length - KEEP);
  for (const fn of [...listeners]) {
    try {
      fn(event);
    } catch (error) {
      console.error(error);
    }
  }
}

async function read(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let id = null;
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl).replace(/\r$/, '');
      buffer = buffer.slice(nl + 1);
      if (line === '') {
        if (data.length) {
          const event = JSON.parse(data.join('\n'));
          lastId = id != null ? Number(id) : event.id;
          dispatch(event);
        }
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') data.push(val);
      else if (field === 'id') id = val;
    }
  }
}

/** Opens the stream (again); `onUnauthorized` is called when the session is gone. */
export function connect(onUnauthorized) {
  stop();
  const controller = new AbortController();
  abort = controller;
  void (async () => {
    let delay = 500;
    while (!controller.signal.aborted) {
      try {
        setState('connecting');
        const headers = { accept: 'text/event-stream' };
        if (lastId != null) headers['last-event-id'] = String(lastId);
        const response = await fetch('/api/v1/events', { headers, credentials: 'same-origin', signal: controller.signal });
        if (response.status === 401) {
          setState('offline');
          onUnauthorized();
          return;
        }
        if (!response.ok || !response.body) throw new Error(`the event stream answered ${response.status}`);
        setState('live');
        delay = 500;
        await read(response.body);
      } catch (error) {
        if (controller.signal.aborted) return;
      }
      setState('reconnecting');
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  })();
}

export function stop() {
  abort?.abort();
  abort = null;
  setState('offline');
}
