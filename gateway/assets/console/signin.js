// @ts-check
/**
 * Sign-in: an API key (kept in sessionStorage only), then one of the purposes its role may
 * state; the GraphQL API checks both before anything is kept.
 * @module signin
 */

import * as api from './api.js';
import { h, replace, field, errorBox } from './ui.js';

/** @type {{ key: string, purpose: string|null } | null} */
let pending = null;

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
    done();
  }

  if (pending) {
    key.value = pending.key;
    check();
  }
}
