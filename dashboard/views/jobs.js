// Jobs: a table with filters and search by id prefix, in keyset pages from the API.
import { api, query } from '../api.js';
import { badge, duration, fill, h, jobLink, STATUSES, table, throttle, when } from '../dom.js';
import { listen } from '../live.js';

const PAGE = 50;
const FILTERS = ['status', 'agent', 'type', 'owner', 'tag', 'idPrefix'];

export function jobs(root, { params }) {
  const filters = Object.fromEntries(FILTERS.map((f) => [f, params.get(f) ?? '']));
  // Cursors of the pages before this one: [null] is the first page.
  const cursors = [null];
  let next = null;
  let shown = [];

  const field = (name, label, input) => h('label', { class: 'field' }, h('span', null, label), input);
  const status = h('select', { name: 'status' }, h('option', { value: '' }, 'any'), STATUSES.map((st) => h('option', { value: st, selected: filters.status === st }, st)));
  const text = (name, placeholder) => h('input', { name, value: filters[name], placeholder, autocomplete: 'off', spellcheck: 'false' });
  const agentsList = h('datalist', { id: 'agent-names' });
  const agent = text('agent', 'any');
  agent.setAttribute('list', 'agent-names');
  const form = h(
    'form',
    { class: 'filters', role: 'search' },
    field('status', 'Status', status),
    field('agent', 'Agent', agent),
    field('type', 'Type', text('type', 'any')),
    field('owner', 'Owner', text('owner', 'any')),
    field('tag', 'Tag', text('tag', 'any')),
    field('idPrefix', 'Id starts with', text('idPrefix', '01J…')),
    agentsList,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Filter'), h('button', { type: 'reset', class: 'secondary' }, 'Clear')),
  );
  const body = h('div');
  const pager = h('div', { class: 'pager' });
  const error = h('p', { class: 'error', role: 'alert' });
  fill(root, h('h1', null, 'Jobs'), form, error, body, pager);

  const apply = () => {
    const data = new FormData(form);
    const q = {};
    for (const f of FILTERS) {
      const v = String(data.get(f) ?? '').trim();
      if (v) q[f] = v;
    }
    // The filters live in the address, so a filtered view can be shared and Back works.
    location.hash = `#/jobs${query(q)}`;
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    apply();
  });
  form.addEventListener('reset', (e) => {
    e.preventDefault();
    location.hash = '#/jobs';
  });
  status.addEventListener('change', apply);

  let closed = false;
  const load = async () => {
    const cursor = cursors[cursors.length - 1];
    try {
      const q = { ...Object.fromEntries(Object.entries(filters).filter(([, v]) => v)), limit: PAGE, cursor };
      const page = await api('GET', `/api/v1/jobs${query(q)}`);
      if (closed) return;
      error.textContent = '';
      shown = page.jobs;
      next = page.nextCursor;
      render();
    } catch (e) {
      if (!closed) error.textContent = String(e.message);
    }
  };

  const row = (j) =>
    h(
      'tr',
      { 'data-job': j.id },
      h('td', null, jobLink(j.id, j.id)),
      h('td', null, j.agent),
      h('td', { class: 'hide-narrow' }, j.type),
      h('td', { class: 'status' }, badge(j.status)),
      h('td', { class: 'hide-narrow' }, j.status === 'running' || j.progress > 0 ? h('progress', { max: 100, value: j.progress }) : ''),
      h('td', { class: 'hide-narrow' }, j.owner ?? '—'),
      h('td', null, when(j.createdAt)),
      h('td', { class: 'num hide-narrow' }, duration(j.durationMs)),
    );

  const render = () => {
    fill(body, table(['id', 'agent', h('th', { class: 'hide-narrow' }, 'type'), 'status', h('th', { class: 'hide-narrow' }, 'progress'), h('th', { class: 'hide-narrow' }, 'owner'), 'created', h('th', { class: 'num hide-narrow' }, 'took')], shown.map(row), 'No jobs match.'));
    const page = cursors.length;
    fill(
      pager,
      h('button', { type: 'button', class: 'secondary', disabled: page === 1, onclick: () => (cursors.pop(), load()) }, '← Newer'),
      h('span', { class: 'dim' }, `page ${page}`),
      h('button', { type: 'button', class: 'secondary', disabled: !next, onclick: () => (cursors.push(next), load()) }, 'Older →'),
    );
  };

  // Live: the first page follows new jobs; on any page, the rows shown follow their jobs.
  const reload = throttle(load, 1000);
  const off = listen((event) => {
    if (!event.type.startsWith('job.') || !event.jobId) return;
    const i = shown.findIndex((j) => j.id === event.jobId);
    if (i >= 0 || (cursors.length === 1 && event.type === 'job.created')) reload();
  });

  void api('GET', '/api/v1/agents').then((r) => {
    if (!closed) fill(agentsList, r.agents.map((a) => h('option', { value: a.name })));
  }, () => {});
  void load();
  return () => {
    closed = true;
    off();
    reload.cancel();
  };
}
