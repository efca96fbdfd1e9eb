// @ts-check
/**
 * Sign-in: an API key (kept in sessionStorage only) or, where configured, the identity
 * provider (`oidc.js`: its token then stands in for the key), then one of the purposes the
 * role may state; the GraphQL API checks both before anything is kept.
 * @module signin
 */

import * as api from './api.js';
import * as oidc from './oidc.js';
import { h, replace, field, errorBox } from './ui.js';

/** @type {{ key: string, purpose: string|null } | null} */
let pending = null;
/** @type {string|null} why the last sign-in with the provider failed */
let failed = null;

/** Shows `message` on the sign-in page once (a failed sign-in with the provider). */
export function problem(/** @type {string} */ message) {
  failed = message;
}

/** Pre-fills the form from a one-click link (and signs in at once when it names a purpose). */
export function prefill(/** @type {string} */ key, /** @type {string|null} */ purpose) {
  pending = { key, purpose };
}

/**
 * @param {HTMLElement} el
 * @param {() => void} done
 */
export function render(el, done) {
  const key = /** @type {HTMLInputElement} */ (
    h('input', { type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, name: 'key', placeholder: 'sgk_…' })
  );
  const message = h('div', { 'aria-live': 'polite' });
  const step = h('div');
  const next = h('button', { type: 'submit', class: 'primary', id: 'signin-next' }, 'Continue');
  const form = h(
    'form',
    { class: 'card narrow', id: 'signin', onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); check(); } },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'With an API key. It is kept in this tab only (session storage) and sent to this gateway only.'),
    field('API key', key),
    step,
    message,
    h('div', { class: 'buttons' }, next),
  );
  replace(el, form);
  key.focus();
  if (failed) {
    replace(message, errorBox(`Refused: ${failed}`));
    failed = null;
  }
  // Sign-in with the provider, where offered (not while a key or token is being checked).
  if (!pending) {
    oidc.offer().then((offer) => {
      if (!offer || !form.isConnected) return;
      const button = h('button', { type: 'button', id: 'signin-oidc' }, 'Sign in with the identity provider');
      button.addEventListener('click', () => {
        oidc.start(offer).catch((error) => replace(message, errorBox(`Refused: ${error instanceof Error ? error.message : error}`)));
      });
      form.append(h('div', { class: 'buttons oidc' }, h('span', { class: 'muted' }, 'or'), button));
    });
  }

  async function check() {
    replace(message);
    const value = key.value.trim();
    if (!value) return;
    let who;
    try {
      who = await api.session(value);
    } catch (error) {
      replace(message, errorBox(`Refused: ${error instanceof Error ? error.message : error}`));
      key.select();
      return;
    }
    if (!who.purposes.length) {
      replace(message, errorBox(`Role ${who.role} may state no purpose: it cannot use the API.`));
      return;
    }
    const purpose = /** @type {HTMLSelectElement} */ (
      h('select', { name: 'purpose', id: 'purpose' }, who.purposes.map((p) => h('option', { value: p }, p)))
    );
    if (pending?.purpose && who.purposes.includes(pending.purpose)) purpose.value = pending.purpose;
    replace(
      step,
      h('p', {}, 'Role ', h('strong', {}, who.role), ` (${who.operations.join(', ') || 'no operations'}).`),
      field('Purpose of this session', purpose),
    );
    next.textContent = 'Sign in';
    next.id = 'signin-submit';
    form.onsubmit = (e) => {
      e.preventDefault();
      finish(value, purpose.value);
    };
    purpose.focus();
    if (pending?.purpose && purpose.value === pending.purpose) {
      pending = null;
      finish(value, purpose.value);
    }
  }

  async function finish(/** @type {string} */ value, /** @type {string} */ purpose) {
    replace(message);
    try {
      await api.signIn(value, purpose);
    } catch (error) {
      replace(message, errorBox(`Refused: ${error instanceof Error ? error.message : error}`));
      return;
    }
    pending = null;
    done();
  }

  if (pending) {
    key.value = pending.key;
    check();
  }
}
