// @ts-check
/**
 * Connectors: each store's health (asked now), timeout, entities with the identities they look up
 * and yield, and every field with its data category. The API exposes neither a connector's
 * declared purposes nor its last `check` result yet; the page says so rather than guess.
 * @module connectors
 */

import { gql } from './api.js';
import { h, replace, errorBox, badge } from './ui.js';

/** @param {HTMLElement} el */
export async function render(el) {
  replace(el, h('h1', {}, 'Connectors'), h('p', { class: 'muted' }, 'Asking every store…'));
  const answer = await gql(`{ connectors { name kind description timeoutMs
    health { status latencyMs error }
    entities { name source description graphqlField lookups { kind field } yields { kind field }
      fields { name type category categoryName description } } } }`);
  const list = answer.data?.connectors;
  if (!list) {
    replace(el, h('h1', {}, 'Connectors'), errorBox(answer.errors.map((e) => e.message).join('; ')));
    return;
  }
  replace(
    el,
    h('h1', {}, 'Connectors'),
    answer.errors.length ? errorBox(answer.errors.map((e) => e.message).join('; ')) : null,
    h(
      'table',
      { class: 'list', id: 'connector-health' },
      h('thead', {}, h('tr', {}, ['Connector', 'Kind', 'Health', 'Latency', 'Timeout', 'Entities'].map((t) => h('th', { scope: 'col' }, t)))),
      h(
        'tbody',
        {},
        list.map((/** @type {any} */ c) =>
          h(
            'tr',
            { 'data-connector': c.name },
            h('td', {}, h('a', { href: `#connector-${c.name}` }, c.name)),
            h('td', {}, c.kind),
            h('td', {}, c.health ? badge(c.health.status) : '—', c.health?.error ? h('div', { class: 'error-text small' }, c.health.error) : null),
            h('td', {}, c.health ? `${c.health.latencyMs.toFixed(1)} ms` : '—'),
            h('td', {}, `${c.timeoutMs} ms`),
            h('td', {}, String(c.entities.length)),
          ),
        ),
      ),
    ),
    h('p', { class: 'muted small' }, 'Purposes each store serves and the last `subject-gateway check` result are not offered by the API yet: run `subject-gateway check` for the latter.'),
    list.map((/** @type {any} */ c) =>
      h(
        'section',
        { class: 'store', id: `connector-${c.name}` },
        h('h2', {}, c.name, ' ', h('span', { class: 'muted small' }, c.kind)),
        c.description ? h('p', {}, c.description) : null,
        c.entities.map((/** @type {any} */ e) =>
          h(
            'details',
            { class: 'entity' },
            h('summary', {}, h('strong', {}, e.name), ` — ${e.source}; looks up ${e.lookups.map((/** @type {any} */ l) => `${l.kind} (${l.field})`).join(', ') || '—'}; yields ${e.yields.map((/** @type {any} */ l) => `${l.kind} (${l.field})`).join(', ') || '—'}`),
            e.description ? h('p', {}, e.description) : null,
            h(
              'table',
              { class: 'list' },
              h('thead', {}, h('tr', {}, ['Field', 'Type', 'Category', ''].map((t) => h('th', { scope: 'col' }, t)))),
              h('tbody', {}, e.fields.map((/** @type {any} */ f) => h('tr', {}, h('td', {}, f.name), h('td', {}, f.type), h('td', {}, h('code', {}, f.category)), h('td', { class: 'muted' }, f.categoryName)))),
            ),
          ),
        ),
      ),
    ),
  );
}
