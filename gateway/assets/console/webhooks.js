// @ts-check
/**
 * Webhook deliveries (`webhookDeliveries`, needs `manage_webhooks`): filter by status or request,
 * newest first with paging, each attempt's count, last HTTP status and error; a DEAD (or any)
 * delivery is sent again with `redeliverWebhook`, confirmed first. Shown only to roles holding
 * `manage_webhooks`; the server refuses the rest anyway.
 * @module webhooks
 */

import { gql, gqlStrict } from './api.js';
import { h, replace, field, select, errorBox, when, badge, confirmAction } from './ui.js';

const PAGE = 25;
const FIELDS = 'id endpoint requestId eventType sequence status attempts createdAt lastAttemptAt nextAttemptAt deliveredAt retryUntil lastStatusCode lastError';

/** @param {HTMLElement} el */
export async function render(el) {
  const status = /** @type {HTMLSelectElement} */ (select([['', 'any status'], 'PENDING', 'DELIVERED', 'DEAD'], { id: 'webhook-status' }));
  const request = /** @type {HTMLInputElement} */ (h('input', { id: 'webhook-request', placeholder: 'pr_…', autocomplete: 'off' }));
  const list = h('div', { id: 'webhooks', 'aria-live': 'polite' });
  const notice = h('div', { 'aria-live': 'polite', id: 'webhook-notice' });
  const pager = h('div', { class: 'buttons' });
  /** @type {(string|null)[]} */
  let cursors = [];
  /** @type {string|null} */
  let after = null;
  replace(
    el,
    h('h1', {}, 'Webhook deliveries'),
    h(
      'form',
      { class: 'filters', onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); cursors = []; after = null; load(); } },
      field('Status', status),
      field('Request', request),
      h('div', { class: 'field' }, h('span', {}, ' '), h('button', { type: 'submit', class: 'primary', id: 'webhook-submit' }, 'Filter')),
    ),
    notice,
    list,
    pager,
  );

  async function load() {
    const answer = await gql(
      `query Deliveries($status: WebhookDeliveryStatus, $requestId: ID, $first: Int, $after: String) {
        webhookDeliveries(status: $status, requestId: $requestId, first: $first, after: $after) { deliveries { ${FIELDS} } endCursor hasNextPage } }`,
      { status: status.value || null, requestId: request.value.trim() || null, first: PAGE, after },
    );
    const page = answer.data?.webhookDeliveries;
    if (!page) {
      replace(list, errorBox(answer.errors.map((e) => e.message).join('; ') || 'No answer.'));
      replace(pager);
      return;
    }
    replace(list, page.deliveries.length ? table(page.deliveries) : h('p', { class: 'muted' }, 'No deliveries match.'));
    replace(
      pager,
      cursors.length ? h('button', { type: 'button', onclick: () => { after = cursors.pop() ?? null; load(); } }, '← Newer') : null,
      page.hasNextPage ? h('button', { type: 'button', onclick: () => { cursors.push(after); after = page.endCursor; load(); } }, 'Older →') : null,
    );
  }

  /** @param {any[]} deliveries */
  function table(deliveries) {
    return h(
      'table',
      { class: 'list', id: 'webhook-deliveries' },
      h('thead', {}, h('tr', {}, ['Message', 'Endpoint', 'Request', 'Event', 'Status', 'Tries', 'Last attempt', 'Next / delivered', 'Last error', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h(
        'tbody',
        {},
        deliveries.map((d) =>
          h(
            'tr',
            { 'data-id': d.id },
            h('td', {}, h('code', { class: 'small', title: d.id }, `${d.id.slice(0, 12)}…`)),
            h('td', {}, d.endpoint),
            h('td', {}, h('a', { href: `#/request/${encodeURIComponent(d.requestId)}`, title: d.requestId }, `${d.requestId.slice(0, 11)}…`)),
            h('td', {}, `${d.eventType} (#${d.sequence})`),
            h('td', {}, badge(d.status)),
            h('td', {}, String(d.attempts)),
            h('td', { class: 'small' }, when(d.lastAttemptAt), d.lastStatusCode ? ` → ${d.lastStatusCode}` : ''),
            h('td', { class: 'small' }, d.deliveredAt ? when(d.deliveredAt) : d.status === 'PENDING' ? `next ${when(d.nextAttemptAt)}` : `gave up ${when(d.retryUntil)}`),
            h('td', { class: 'error-text small' }, d.lastError || ''),
            h('td', {}, h('button', { type: 'button', id: `redeliver-${d.id}`, onclick: () => redeliver(d) }, 'Redeliver…')),
          ),
        ),
      ),
    );
  }

  /** @param {any} d */
  async function redeliver(d) {
    const ok = await confirmAction('Send this message again?', h('p', {}, `${d.eventType} of ${d.requestId} to ${d.endpoint}, under the same message id.`), { confirmLabel: 'Redeliver' });
    if (!ok) return;
    replace(notice);
    try {
      const data = await gqlStrict(`mutation Redeliver($id: ID!) { redeliverWebhook(id: $id) { ${FIELDS} } }`, { id: d.id });
      replace(notice, h('p', { class: 'ok', role: 'status' }, `Queued again: ${data.redeliverWebhook.status}.`));
      await load();
    } catch (error) {
      replace(notice, errorBox(`Redeliver refused: ${error instanceof Error ? error.message : error}`));
    }
  }

  await load();
}
