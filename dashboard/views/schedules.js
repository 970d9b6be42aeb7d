// Schedules: cron or interval, next and last run, recent executions; enable, disable, run now (admins).
import { api } from '../api.js';
import { badge, fill, h, jobLink, table, throttle, when } from '../dom.js';
import { listen } from '../live.js';

export function schedules(root, { session }) {
  const admin = session.role === 'admin';
  const body = h('div');
  const message = h('p', { class: 'notice', role: 'status' });
  const error = h('p', { class: 'error', role: 'alert' });
  const open = new Set();
  fill(root, h('h1', null, 'Schedules'), admin ? null : h('p', { class: 'dim' }, 'Only admins change schedules.'), error, message, body);

  let closed = false;
  let list = [];
  const executions = new Map();

  const act = async (s, verb) => {
    message.textContent = '';
    try {
      const r = await api('POST', `/api/v1/schedules/${encodeURIComponent(s.id)}/${verb}`);
      message.textContent = verb === 'run' ? `${s.name}: submitted job ${r.id}.` : `${s.name}: ${verb}d.`;
      await load();
    } catch (e) {
      message.textContent = `${s.name}: ${e.message}`;
    }
  };

  const loadExecutions = async (s) => {
    const r = await api('GET', `/api/v1/schedules/${encodeURIComponent(s.id)}/executions?limit=10`);
    executions.set(s.id, r.jobs);
  };

  const render = () => {
    const rows = [];
    for (const s of list) {
      rows.push(
        h(
          'tr',
          { 'data-schedule': s.name, class: s.enabled ? '' : 'disabled' },
          h('td', null, h('strong', null, s.name), s.description ? h('div', { class: 'dim' }, s.description) : null),
          h('td', null, h('code', null, s.cron ?? `every ${s.interval}`), s.cron ? h('div', { class: 'dim' }, s.timezone) : null),
          h('td', { class: 'state' }, s.enabled ? 'enabled' : 'disabled'),
          h('td', null, s.enabled ? when(s.nextRunAt) : h('span', { class: 'dim' }, '—')),
          h('td', null, when(s.lastRunAt), s.lastJobId ? [' ', jobLink(s.lastJobId), s.lastJobStatus ? [' ', badge(s.lastJobStatus)] : null] : null),
          h(
            'td',
            null,
            h(
            'div',
            { class: 'row-actions' },
            h('button', { type: 'button', class: 'small secondary', 'data-action': 'toggle', disabled: !admin, onclick: () => act(s, s.enabled ? 'disable' : 'enable') }, s.enabled ? 'Disable' : 'Enable'),
            h('button', { type: 'button', class: 'small', 'data-action': 'run', disabled: !admin, onclick: () => act(s, 'run') }, 'Run now'),
            h(
              'button',
              {
                type: 'button',
                class: 'small secondary',
                'aria-expanded': String(open.has(s.id)),
                onclick: async () => {
                  if (open.has(s.id)) open.delete(s.id);
                  else {
                    open.add(s.id);
                    await loadExecutions(s).catch((e) => (error.textContent = String(e.message)));
                  }
                  render();
                },
              },
              'Executions',
            ),
            ),
          ),
        ),
      );
      if (open.has(s.id)) {
        const jobs = executions.get(s.id) ?? [];
        rows.push(
          h(
            'tr',
            { class: 'executions' },
            h('td', { colspan: 6 }, jobs.length ? h('ul', { class: 'inline-list' }, jobs.map((j) => h('li', null, jobLink(j.id), ' ', badge(j.status), ' ', when(j.createdAt)))) : h('span', { class: 'dim' }, 'No executions yet.')),
          ),
        );
      }
    }
    fill(body, table(['name', 'when', 'state', 'next run', 'last run', ''], rows, 'No schedules: agentq schedules apply FILE adds them.'));
  };

  const load = async () => {
    try {
      const r = await api('GET', '/api/v1/schedules');
      if (closed) return;
      list = r.schedules;
      await Promise.all(list.filter((s) => open.has(s.id)).map(loadExecutions));
      if (closed) return;
      error.textContent = '';
      render();
    } catch (e) {
      if (!closed) error.textContent = String(e.message);
    }
  };
  const refresh = throttle(load, 1000);
  void load();
  // Schedules fire jobs: their last run and its status change with job events.
  const off = listen((event) => {
    if (event.type === 'job.created' || event.type === 'job.completed' || event.type === 'job.failed' || event.type === 'job.cancelled') refresh();
  });
  const timer = setInterval(refresh, 15_000);
  return () => {
    closed = true;
    off();
    refresh.cancel();
    clearInterval(timer);
  };
}
