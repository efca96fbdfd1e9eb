// @ts-check
/**
 * The console's entry point: a hash router (`#/queue`, `#/request/pr_…`, `#/new`, `#/person`,
 * `#/connectors`, `#/audit`, `#/webhooks`, `#/retention`), the navigation fitted to the role, and sign-in/out. Each page module
 * exports `render(main, params)` and may return a function that stops its polling.
 * @module app
 */

import * as api from './api.js';
import { h, main, replace } from './ui.js';
import * as signin from './signin.js';
import * as oidc from './oidc.js';
import * as queue from './queue.js';
import * as detail from './detail.js';
import * as newRequest from './new.js';
import * as person from './person.js';
import * as connectors from './connectors.js';
import * as audit from './audit.js';
import * as webhooks from './webhooks.js';
import * as retention from './retention.js';

/** @type {Record<string, { render: (el: HTMLElement, params: string[]) => (void|(() => void)|Promise<void|(() => void)>), title: string }>} */
const PAGES = {
  queue: { render: queue.render, title: 'Requests' },
  request: { render: detail.render, title: 'Request' },
  new: { render: newRequest.render, title: 'New request' },
  person: { render: person.render, title: 'Person lookup' },
  connectors: { render: connectors.render, title: 'Connectors' },
  audit: { render: audit.render, title: 'Audit trail' },
  webhooks: { render: webhooks.render, title: 'Webhook deliveries' },
  retention: { render: retention.render, title: 'Retention schedule' },
};

/** @type {(() => void) | null} */
let stop = null;
let generation = 0;

/** The first page the role may use. */
function home() {
  if (api.may('manage_requests')) return 'queue';
  if (api.may('read_subject')) return 'person';
  if (api.may('read_audit')) return 'audit';
  return 'connectors';
}

function updateChrome() {
  const who = api.me();
  const nav = /** @type {HTMLElement} */ (document.getElementById('nav'));
  const signout = /** @type {HTMLElement} */ (document.getElementById('signout'));
  const label = /** @type {HTMLElement} */ (document.getElementById('who'));
  nav.hidden = !who;
  signout.hidden = !who;
  label.textContent = who ? `${who.role} · ${who.purpose} · ${who.principal}` : '';
  for (const link of nav.querySelectorAll('a')) {
    const needs = (link.dataset.needs || '').split(' ').filter(Boolean);
    link.hidden = !who || (needs.length > 0 && !needs.some((op) => api.may(op)));
    const current = location.hash.split('/')[1] || '';
    if (link.getAttribute('href') === `#/${current}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

/** The identity provider's redirect back (OIDC sign-in), taken once at load. */
let callback = oidc.takeCallback();

async function route() {
  const back = callback ? await callback.catch((error) => ({ error: String(error) })) : null;
  callback = null;
  if (back && 'token' in back) {
    api.signOut();
    signin.prefill(back.token, null);
  } else if (back) {
    signin.problem(back.error);
  }
  // A one-click sign-in link (`subject-gateway demo` prints one) carries the key in the fragment:
  // taken once, removed from the address bar and history, then signed in like a typed key. It
  // can arrive with a fresh load or as a fragment change of an open console.
  const link = api.takeFragmentKey();
  if (link) {
    api.signOut();
    signin.prefill(link.key, link.purpose);
  }
  if (stop) {
    stop();
    stop = null;
  }
  const mine = ++generation;
  const el = main();
  updateChrome();
  if (!api.me()) {
    document.title = 'Sign in · Subject Gateway';
    signin.render(el, () => {
      location.hash = `#/${home()}`;
      route();
    });
    return;
  }
  const [name, ...params] = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  const page = PAGES[name || home()];
  if (!page) {
    location.replace(`#/${home()}`);
    return;
  }
  document.title = `${page.title} · Subject Gateway`;
  replace(el, h('p', { class: 'muted' }, 'Loading…'));
  try {
    const cleanup = await page.render(el, params.map(decodeURIComponent));
    if (mine !== generation) {
      if (typeof cleanup === 'function') cleanup();
      return;
    }
    stop = typeof cleanup === 'function' ? cleanup : null;
  } catch (error) {
    if (mine !== generation) return;
    if (error instanceof api.AuthError) return; // the signed-out listener shows sign-in
    replace(el, h('p', { class: 'error', role: 'alert' }, `Could not load the page: ${error instanceof Error ? error.message : error}`));
  }
}

window.addEventListener('console:signed-out', () => route());
window.addEventListener('hashchange', () => route());
document.getElementById('signout')?.addEventListener('click', () => {
  api.signOut();
  location.hash = '#/';
  route();
});

route();
