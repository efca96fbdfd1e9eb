// @ts-check
/**
 * The audit trail: filters by action, actor and person (an identity, matched by its keyed hash
 * on the server: the value goes in the query's variables, never in a URL), cursor paging, and
 * the chain's verification state (`auditVerification`: walked on the server at most once a
 * minute; the page shows when).
 * @module audit
 */

import { gql } from './api.js';
import { h, replace, field, select, errorBox, when, badge } from './ui.js';
import { identityKinds } from './new.js';

const PAGE = 50;

/** @param {HTMLElement} el */
export async function render(el) {
  const kinds = await identityKinds();
  const action = /** @type {HTMLInputElement} */ (h('input', { id: 'audit-action', placeholder: 'subject.read, erasure.completed, …', autocomplete: 'off' }));
  const actor = /** @type {HTMLInputElement} */ (h('input', { id: 'audit-actor', placeholder: 'key:…', autocomplete: 'off' }));
  const idKind = /** @type {HTMLSelectElement} */ (select(kinds, { id: 'audit-person-kind' }));
  const idValue = /** @type {HTMLInputElement} */ (h('input', { id: 'audit-person-value', autocomplete: 'off' }));
  const list = h('div', { id: 'audit', 'aria-live': 'polite' });
  const chain = h('div', { class: 'card', id: 'audit-chain' }, h('p', { class: 'muted' }, 'Verifying the chain…'));
  verification(chain);
  const pager = h('div', { class: 'buttons' });
  /** @type {(string|null)[]} */
  let cursors = [];
  /** @type {string|null} */
  let after = null;
  replace(
    el,
    h('h1', {}, 'Audit trail'),
    chain,
    h(
      'form',
      { class: 'filters', id: 'audit-form', onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); cursors = []; after = null; load(); } },
      field('Action', action),
      field('Actor', actor),
      field('Person: kind', idKind),
      field('Person: value', idValue),
      h('div', { class: 'field' }, h('span', {}, ' '), h('button', { type: 'submit', class: 'primary', id: 'audit-submit' }, 'Filter')),
    ),
    list,
    pager,
  );

  async function load() {
    const subject = idValue.value.trim() ? { kind: idKind.value, value: idValue.value } : null;
    const answer = await gql(
      `query Audit($first: Int, $after: String, $action: String, $actor: String, $subject: IdentityInput) {
        auditEvents(first: $first, after: $after, action: $action, actor: $actor, subject: $subject) {
          events { seq at actor role purpose action subjects detail hash } endCursor hasNextPage } }`,
      { first: PAGE, after, action: action.value.trim() || null, actor: actor.value.trim() || null, subject },
    );
    const page = answer.data?.auditEvents;
    if (!page) {
      replace(list, errorBox(answer.errors.map((e) => e.message).join('; ') || 'No answer.'));
      replace(pager);
      return;
    }
    replace(
      list,
      page.events.length
        ? h(
            'table',
            { class: 'list', id: 'audit-events' },
            h('thead', {}, h('tr', {}, ['#', 'At', 'Action', 'Actor', 'Role / purpose', 'People', 'Detail'].map((t) => h('th', { scope: 'col' }, t)))),
            h(
              'tbody',
              {},
              page.events.map((/** @type {any} */ e) =>
                h(
                  'tr',
                  {},
                  h('td', {}, String(e.seq)),
                  h('td', {}, when(e.at)),
                  h('td', {}, h('code', {}, e.action)),
                  h('td', {}, e.actor),
                  h('td', {}, `${e.role} / ${e.purpose}`),
                  h('td', { title: e.subjects.join('\n') }, String(e.subjects.length)),
                  h('td', { class: 'wrap' }, h('code', { class: 'small' }, JSON.stringify(e.detail))),
                ),
              ),
            ),
          )
        : h('p', { class: 'muted' }, 'No events match.'),
    );
    replace(
      pager,
      cursors.length ? h('button', { type: 'button', onclick: () => { after = cursors.pop() ?? null; load(); } }, '← Earlier') : null,
      page.hasNextPage ? h('button', { type: 'button', id: 'audit-next', onclick: () => { cursors.push(after); after = page.endCursor; load(); } }, 'Later →') : null,
    );
  }
  await load();
}

/** Fills `el` with the chain's verification state. @param {HTMLElement} el */
async function verification(el) {
  try {
    const answer = await gql('{ auditVerification { at intact events head unkeyed keyed problem } }');
    const v = answer.data?.auditVerification;
    if (!v) {
      replace(el, errorBox(`Chain not verified: ${answer.errors.map((e) => e.message).join('; ') || 'no answer'}`));
      return;
    }
    replace(
      el,
      h(
        'p',
        {},
        'Chain: ',
        badge(v.intact ? 'INTACT' : 'BROKEN'),
        v.intact ? ` ${v.events} event${v.events === 1 ? '' : 's'}, head ` : ' ',
        v.intact ? h('code', {}, `${String(v.head).slice(0, 16)}…`) : h('strong', { class: 'error-text' }, v.problem || 'not intact'),
        ` (verified ${when(v.at)})`,
      ),
      v.keyed
        ? v.unkeyed
          ? h('p', { class: 'muted small' }, `${v.unkeyed} events from before the chain key was set.`)
          : null
        : h('p', { class: 'small error-text' }, 'No chain key is set: whoever can write the state database could recompute the chain.'),
      h('p', { class: 'muted small' }, 'Against the anchors kept outside the database: `subject-gateway audit verify --anchor FILE`.'),
    );
  } catch (error) {
    replace(el, errorBox(`Chain not verified: ${error instanceof Error ? error.message : error}`));
  }
}
