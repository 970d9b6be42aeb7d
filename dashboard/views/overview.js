// Overview: counts per status and agent, jobs finished per minute over the last hour, live workers.
import { api } from '../api.js';
import { fill, h, jobLink, s, STATUSES, table, throttle, when } from '../dom.js';
import { listen } from '../live.js';

export function overview(root) {
  const counts = h('section', { class: 'cards', 'aria-label': 'jobs per status' });
  const chart = h('div', { class: 'chart' });
  const agents = h('div');
  const workerList = h('div');
  const error = h('p', { class: 'error', role: 'alert' });
  fill(
    root,
    h('h1', null, 'Overview'),
    error,
    counts,
    h('section', { class: 'card' }, h('h2', null, 'Finished per minute, last hour'), chart),
    h('section', { class: 'card' }, h('h2', null, 'Agents'), agents),
    h('section', { class: 'card' }, h('h2', null, 'Live workers'), workerList),
  );

  let closed = false;
  const load = async () => {
    try {
      const [stats, tp, agentList, workerInfo] = await Promise.all([
        api('GET', '/api/v1/stats'),
        api('GET', '/api/v1/stats/throughput?minutes=60'),
        api('GET', '/api/v1/agents'),
        api('GET', '/api/v1/workers'),
      ]);
      if (closed) return;
      error.textContent = '';
      fill(
        counts,
        h('a', { class: 'count total', href: '#/jobs' }, h('span', { class: 'n', 'data-status': 'total' }, stats.total), h('span', null, 'jobs')),
        STATUSES.map((st) =>
          h('a', { class: `count c-${st}`, href: `#/jobs?status=${st}` }, h('span', { class: 'n', 'data-status': st }, stats.byStatus[st] ?? 0), h('span', null, st)),
        ),
      );
      fill(chart, throughputChart(tp.minutes));
      fill(
        agents,
        table(
          ['agent', ...STATUSES.map((st) => h('th', { class: 'num' }, st)), h('th', { class: 'num' }, 'workers')],
          agentList.agents.map((a) =>
            h(
              'tr',
              null,
              h('td', null, h('a', { href: `#/jobs?agent=${encodeURIComponent(a.name)}` }, a.name)),
              STATUSES.map((st) => h('td', { class: 'num' }, a.jobs[st] ?? 0)),
              h('td', { class: 'num' }, a.workers),
            ),
          ),
          'No agents yet: submit a job.',
        ),
      );
      fill(workerList, workersTable(workerInfo.workers));
    } catch (e) {
      if (!closed) error.textContent = String(e.message);
    }
  };
  // Counting every job is the dearest read here: at most every two seconds.
  const refresh = throttle(load, 2000);
  void load();
  const off = listen((event) => {
    if (event.type.startsWith('job.')) refresh();
  });
  // The chart's minutes move on, and workers come and go without events.
  const timer = setInterval(refresh, 10_000);
  return () => {
    closed = true;
    off();
    refresh.cancel();
    clearInterval(timer);
  };
}

export function workersTable(workers) {
  return table(
    ['name', 'agents', h('th', { class: 'num' }, 'slots'), 'running', 'host', 'heartbeat'],
    workers.map((w) =>
      h(
        'tr',
        { 'data-worker': w.id },
        h('td', null, w.name),
        h('td', null, w.agents.join(', ')),
        h('td', { class: 'num' }, `${w.running.length}/${w.concurrency}`),
        h('td', null, w.running.length ? w.running.map((id, i) => [i ? ' ' : '', jobLink(id)]) : h('span', { class: 'dim' }, 'idle')),
        h('td', { class: 'hide-narrow' }, `${w.host} (pid ${w.pid})`),
        h('td', null, when(w.heartbeatAt)),
      ),
    ),
    'No live workers.',
  );
}

/** Stacked bars per minute: completed, failed, cancelled. */
export function throughputChart(minutes) {
  const W = 1000;
  const H = 200;
  const pad = { l: 34, r: 6, t: 8, b: 20 };
  const max = Math.max(1, ...minutes.map((m) => m.completed + m.failed + m.cancelled));
  const bw = (W - pad.l - pad.r) / minutes.length;
  const y = (v) => pad.t + (H - pad.t - pad.b) * (1 - v / max);
  const bars = [];
  minutes.forEach((m, i) => {
    const x = pad.l + i * bw;
    let base = 0;
    for (const [key, cls] of [['completed', 'b-completed'], ['failed', 'b-failed'], ['cancelled', 'b-cancelled']]) {
      const v = m[key];
      if (!v) continue;
      bars.push(s('rect', { class: cls, x: (x + 0.5).toFixed(1), width: Math.max(1, bw - 1).toFixed(1), y: y(base + v).toFixed(1), height: (y(base) - y(base + v)).toFixed(1) }));
      base += v;
    }
    const t = new Date(m.at);
    bars.push(
      s('rect', { class: 'hit', x: x.toFixed(1), width: bw.toFixed(1), y: pad.t, height: H - pad.t - pad.b },
        s('title', null, `${t.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}: ${m.completed} completed, ${m.failed} failed, ${m.cancelled} cancelled`)),
    );
  });
  const total = minutes.reduce((n, m) => ({ c: n.c + m.completed, f: n.f + m.failed, x: n.x + m.cancelled }), { c: 0, f: 0, x: 0 });
  return h(
    'figure',
    null,
    s(
      'svg',
      { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `jobs finished per minute: ${total.c} completed, ${total.f} failed, ${total.x} cancelled in the last hour` },
      s('line', { class: 'axis', x1: pad.l, x2: W - pad.r, y1: y(0), y2: y(0) }),
      s('line', { class: 'grid', x1: pad.l, x2: W - pad.r, y1: y(max), y2: y(max) }),
      s('text', { class: 'label', x: pad.l - 4, y: y(max) + 4, 'text-anchor': 'end' }, String(max)),
      s('text', { class: 'label', x: pad.l - 4, y: y(0) + 4, 'text-anchor': 'end' }, '0'),
      s('text', { class: 'label', x: pad.l, y: H - 4 }, `−${minutes.length} min`),
      s('text', { class: 'label', x: W - pad.r, y: H - 4, 'text-anchor': 'end' }, 'now'),
      bars,
    ),
    h(
      'figcaption',
      { class: 'legend' },
      h('span', { class: 'key k-completed' }, `${total.c} completed`),
      h('span', { class: 'key k-failed' }, `${total.f} failed`),
      h('span', { class: 'key k-cancelled' }, `${total.x} cancelled`),
    ),
  );
}

