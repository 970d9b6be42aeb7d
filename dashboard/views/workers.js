// Workers: the live ones, what they serve and run.
import { api } from '../api.js';
import { fill, h, throttle } from '../dom.js';
import { listen } from '../live.js';
import { workersTable } from './overview.js';

export function workers(root) {
  const body = h('div');
  const error = h('p', { class: 'error', role: 'alert' });
  fill(root, h('h1', null, 'Workers'), error, body);
  let closed = false;
  const load = async () => {
    try {
      const r = await api('GET', '/api/v1/workers');
      if (closed) return;
      error.textContent = '';
      fill(body, workersTable(r.workers));
    } catch (e) {
      if (!closed) error.textContent = String(e.message);
    }
  };
  const refresh = throttle(load, 1000);
  void load();
  const off = listen((event) => {
    if (event.type === 'job.started' || event.type === 'job.completed' || event.type === 'job.failed' || event.type === 'job.cancelled') refresh();
  });
  // Workers start and stop without events: their heartbeats are read every few seconds.
  const timer = setInterval(refresh, 5000);
  return () => {
    closed = true;
    off();
    refresh.cancel();
    clearInterval(timer);
  };
}
