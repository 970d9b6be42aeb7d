// The dashboard: sign-in, the navigation and a view per page (#/...).
import { api, whenSignedOut } from './api.js';
import { fill, h } from './dom.js';
import { connect, onStatus, stop } from './live.js';
import { overview } from './views/overview.js';
import { jobs } from './views/jobs.js';
import { job } from './views/job.js';
import { schedules } from './views/schedules.js';
import { workers } from './views/workers.js';
import { events } from './views/events.js';
import { approvals } from './views/approvals.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const signoutButton = document.getElementById('signout');
const signinForm = document.getElementById('signin');
const signinError = document.getElementById('signin-error');
const liveBadge = document.getElementById('live');

/** Who is signed in: {user, role}, or null. */
let session = null;
let unmount = null;

function route() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, search = ''] = hash.split('?');
  const params = new URLSearchParams(search);
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'jobs' && parts[1]) return { name: 'jobs', view: job, args: [parts[1]], params };
  const views = { '': overview, jobs, approvals, schedules, workers, events };
  const name = parts[0] ?? '';
  return { name: name || 'overview', view: views[name] ?? overview, args: [], params };
}

function show() {
  if (!session) return;
  unmount?.();
  unmount = null;
  const { name, view, args, params } = route();
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('active', a.dataset.view === name);
  const container = h('div', { class: 'view', 'data-view': name });
  fill(main, container);
  try {
    unmount = view(container, { session, params, args }) ?? null;
  } catch (error) {
    fill(container, h('p', { class: 'error' }, String(error?.message ?? error)));
  }
}

function signedOut(message) {
  session = null;
  unmount?.();
  unmount = null;
  stop();
  nav.hidden = true;
  signoutButton.hidden = true;
  liveBadge.hidden = true;
  who.textContent = '';
  fill(main);
  signinForm.hidden = false;
  signinError.textContent = message ?? '';
  document.getElementById('token').focus();
}

function signedIn(me) {
  session = me;
  signinForm.hidden = true;
  signinError.textContent = '';
  nav.hidden = false;
  signoutButton.hidden = false;
  liveBadge.hidden = false;
  who.textContent = `${me.user}${me.role === 'admin' ? ' (admin)' : ''}`;
  connect(() => signedOut('Your session ended: sign in again.'));
  show();
}

signinForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  const token = signinForm.elements.token.value;
  signinError.textContent = '';
  try {
    const me = await api('POST', '/auth/session', { token });
    signinForm.reset();
    signedIn(me);
  } catch (error) {
    signinError.textContent = error.status === 401 ? 'That token is unknown or revoked.' : String(error.message);
  }
});

signoutButton.addEventListener('click', async () => {
  try {
    await api('DELETE', '/auth/session');
  } finally {
    signedOut();
  }
});

onStatus((state) => {
  liveBadge.textContent = state;
  liveBadge.dataset.state = state;
});

whenSignedOut(() => {
  if (session) signedOut('Your session ended: sign in again.');
});
window.addEventListener('hashchange', show);

(async () => {
  const failed = new URLSearchParams(location.search).get('signin');
  try {
    signedIn(await api('GET', '/auth/session'));
  } catch {
    signedOut(failed === 'unauthorized' ? 'That token is unknown or revoked.' : failed ? 'Sign-in refused.' : '');
  }
})();
