// Events: the live feed of what happens, newest first.
import { fill, h, jobLink } from '../dom.js';
import { listen, recentEvents } from '../live.js';

export function events(root) {
  const filter = h('input', { type: 'search', placeholder: 'filter: type, agent, job id…', 'aria-label': 'filter events', autocomplete: 'off' });
  const pause = h('button', { type: 'button', class: 'secondary small' }, 'Pause');
  const list = h('ol', { class: 'feed', role: 'log', 'aria-live': 'polite' });
  const note = h('p', { class: 'dim' }, 'Events since this page opened; new ones appear at the top.');
  fill(root, h('h1', null, 'Events'), h('div', { class: 'toolbar' }, filter, pause), note, list);

  let paused = false;
  const held = [];
  const matches = (e) => {
    const q = filter.value.trim().toLowerCase();
    if (!q) return true;
    return [e.type, e.target, e.jobId, e.source, e.owner].some((v) => v && String(v).toLowerCase().includes(q));
  };
  const item = (e) =>
    h(
      'li',
      { class: `ev ${e.type.startsWith('job.') ? `ev-${e.type.slice(4)}` : 'ev-app'}`, 'data-event': e.type },
      h('time', { datetime: e.createdAt, title: new Date(e.createdAt).toLocaleString() }, new Date(e.createdAt).toLocaleTimeString()),
      ' ',
      h('strong', null, e.type),
      e.jobId ? [' ', jobLink(e.jobId)] : null,
      e.target ? h('span', { class: 'dim' }, ` → ${e.target}`) : null,
      e.type.startsWith('job.') ? h('span', { class: 'dim' }, ` ${e.payload?.status ?? ''}${e.payload?.error?.message ? ` — ${e.payload.error.message}` : ''}`) : h('code', { class: 'payload' }, ` ${JSON.stringify(e.payload)}`),
    );
  const renderAll = () => fill(list, recentEvents().filter(matches).reverse().slice(0, 300).map(item));
  filter.addEventListener('input', renderAll);
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.textContent = paused ? `Resume` : 'Pause';
    if (!paused) {
      held.length = 0;
      renderAll();
    }
  });
  renderAll();
  const off = listen((e) => {
    if (paused) {
      held.push(e);
      pause.textContent = `Resume (${held.length} new)`;
      return;
    }
    if (!matches(e)) return;
    list.prepend(item(e));
    while (list.children.length > 300) list.lastChild.remove();
  });
  return off;
}
