// @ts-check
/**
 * A new privacy request for one identity: erasure (its `erasurePlan` shown, and confirmed,
 * before anything is submitted), export, rectification or objection. Only the kinds the role
 * may submit are offered; the server checks again.
 * @module new
 */

import { gql, gqlStrict, may } from './api.js';
import { h, replace, field, select, errorBox, confirmAction, show } from './ui.js';

/** Request kind → the operation it needs and its mutation. */
const KINDS = [
  { id: 'ERASURE', label: 'Erasure', needs: 'erase', mutation: 'eraseSubject', input: 'EraseSubjectInput' },
  { id: 'EXPORT', label: 'Export (access)', needs: 'export', mutation: 'exportSubject', input: 'ExportSubjectInput' },
  { id: 'RECTIFICATION', label: 'Rectification', needs: 'rectify', mutation: 'rectifySubject', input: 'RectifySubjectInput' },
  { id: 'OBJECTION', label: 'Objection', needs: 'manage_requests', mutation: 'recordObjection', input: 'RecordObjectionInput' },
];

/**
 * The identity kinds a person can be looked up by (those some entity looks up), email first.
 * @returns {Promise<string[]>}
 */
export async function identityKinds() {
  const data = await gqlStrict('{ connectors { entities { lookups { kind } } } }');
  const kinds = new Set();
  for (const c of data.connectors) for (const e of c.entities) for (const l of e.lookups) kinds.add(l.kind);
  return [...kinds].sort((a, b) => (a === 'EMAIL' ? -1 : b === 'EMAIL' ? 1 : a.localeCompare(b)));
}

/** @param {HTMLElement} el */
export async function render(el) {
  const kinds = KINDS.filter((k) => may(k.needs));
  if (!kinds.length) {
    replace(el, h('h1', {}, 'New request'), h('p', { class: 'muted', id: 'no-kinds' }, 'Your role may not submit privacy requests.'));
    return;
  }
  const idKinds = await identityKinds();
  const kind = /** @type {HTMLSelectElement} */ (select(kinds.map((k) => /** @type {[string,string]} */ ([k.id, k.label])), { id: 'new-kind' }));
  const idKind = /** @type {HTMLSelectElement} */ (select(idKinds, { id: 'new-identity-kind' }));
  const idValue = /** @type {HTMLInputElement} */ (h('input', { id: 'new-identity-value', autocomplete: 'off', required: true }));
  const reason = /** @type {HTMLInputElement} */ (h('input', { id: 'new-reason', autocomplete: 'off' }));
  const regulation = /** @type {HTMLSelectElement} */ (select([['', 'GDPR (default)'], ['GDPR', 'GDPR'], ['CCPA', 'CCPA']], { id: 'new-regulation' }));
  const extra = h('div', { id: 'new-extra' });
  const plan = h('div', { id: 'plan', 'aria-live': 'polite' });
  const message = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'new-submit' }, '');
  /** @type {() => any} */
  let extraInput = () => ({});
  /** @type {{ key: string, entries: number, connectors: number } | null} the plan shown */
  let planned = null;
  let idempotencyKey = crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;

  const onKind = () => {
    planned = null;
    replace(plan);
    replace(message);
    const chosen = KINDS.find((k) => k.id === kind.value);
    submit.textContent = chosen?.id === 'ERASURE' ? 'Preview erasure plan' : `Submit ${chosen?.label.toLowerCase()}`;
    if (chosen?.id === 'RECTIFICATION') {
      const rows = h('div', { class: 'changes' });
      const addRow = () => {
        const f = /** @type {HTMLInputElement} */ (h('input', { class: 'change-field', placeholder: 'attribute (as declared with rectify = …)' }));
        const v = /** @type {HTMLInputElement} */ (h('input', { class: 'change-value', placeholder: 'correct value' }));
        rows.append(h('div', { class: 'row' }, field('Attribute', f), field('Correct value', v)));
      };
      addRow();
      replace(extra, rows, h('button', { type: 'button', onclick: addRow }, 'Add a correction'));
      extraInput = () => ({
        changes: [...rows.querySelectorAll('.row')]
          .map((row) => ({
            field: /** @type {HTMLInputElement} */ (row.querySelector('.change-field')).value.trim(),
            value: /** @type {HTMLInputElement} */ (row.querySelector('.change-value')).value,
          }))
          .filter((c) => c.field),
      });
    } else if (chosen?.id === 'OBJECTION') {
      const purpose = /** @type {HTMLInputElement} */ (h('input', { id: 'new-objection-purpose', value: 'marketing', required: true }));
      replace(extra, field('Purpose objected to (a data use: marketing, analytics, …)', purpose));
      extraInput = () => ({ purpose: purpose.value.trim() });
    } else {
      replace(extra);
      extraInput = () => ({});
    }
  };
  kind.addEventListener('change', onKind);
  const unplan = () => {
    if (!planned) return;
    planned = null;
    replace(plan);
    submit.textContent = 'Preview erasure plan';
  };
  idValue.addEventListener('input', unplan);
  idKind.addEventListener('change', unplan);
  onKind();

  const form = h(
    'form',
    { class: 'card', id: 'new-request', onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); go(); } },
    h('h1', {}, 'New request'),
    h('div', { class: 'row' }, field('Request', kind), field('Identity kind', idKind), field('Identity value', idValue)),
    h('div', { class: 'row' }, field('Reason (kept with the request)', reason), field('Regulation', regulation)),
    extra,
    message,
    h('div', { class: 'buttons' }, submit),
  );
  replace(el, form, plan);
  idValue.focus();

  async function go() {
    replace(message);
    const chosen = KINDS.find((k) => k.id === kind.value);
    if (!chosen) return;
    const identity = { kind: idKind.value, value: idValue.value };
    if (!identity.value.trim()) {
      replace(message, errorBox('Give the identity value.'));
      return;
    }
    const input = {
      identity,
      idempotencyKey,
      reason: reason.value.trim() || null,
      regulation: regulation.value || null,
      ...extraInput(),
    };
    if (chosen.id === 'ERASURE') {
      const planKey = JSON.stringify(identity);
      if (planned?.key !== planKey) {
        const shown = await showPlan(identity);
        planned = shown ? { key: planKey, ...shown } : null;
        submit.textContent = planned ? 'Erase this person…' : 'Preview erasure plan';
        return;
      }
      const shown = planned;
      const ok = await confirmAction(
        'Erase this person?',
        h('div', {}, h('p', {}, `Everything the plan lists is deleted, masked or retained as shown, in ${shown.entries} entities of ${shown.connectors} stores.`), h('p', { class: 'error-text' }, 'This cannot be undone.')),
        { confirmLabel: 'Erase' },
      );
      if (!ok) return;
    } else {
      const ok = await confirmAction(`Submit this ${chosen.label.toLowerCase()}?`, h('p', {}, `For the ${identity.kind} given.`), { confirmLabel: 'Submit' });
      if (!ok) return;
    }
    try {
      const data = await gqlStrict(
        `mutation Submit($input: ${chosen.input}!) { ${chosen.mutation}(input: $input) { id status } }`,
        { input },
      );
      idempotencyKey = crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
      location.hash = `#/request/${encodeURIComponent(data[chosen.mutation].id)}`;
    } catch (error) {
      replace(message, errorBox(`Refused: ${error instanceof Error ? error.message : error}`));
    }
  }

  /**
   * Shows the erasure plan; resolves to its size, or null when there is nothing to confirm.
   * @param {{ kind: string, value: string }} identity
   */
  async function showPlan(identity) {
    replace(plan, h('p', { class: 'muted' }, 'Planning…'));
    const answer = await gql(
      `query Plan($identity: IdentityInput!) { erasurePlan(identity: $identity) { subject identities blocked
        entries { connector entity action records files fieldsTouched legalBasis retainUntil limit exceedsLimit supported note blockedBy error } } }`,
      { identity },
    );
    const p = answer.data?.erasurePlan;
    if (!p) {
      replace(plan, errorBox(`No plan: ${answer.errors.map((e) => e.message).join('; ')}`));
      return null;
    }
    const failing = p.entries.filter((/** @type {any} */ e) => e.error);
    replace(
      plan,
      h('h2', {}, 'Erasure plan'),
      h('p', {}, `${p.identities} identities found for this person. `, p.blocked ? h('strong', { class: 'error-text', id: 'plan-blocked' }, 'Blocked: the erasure would stop before acting (see below).') : 'Nothing is changed until you confirm.'),
      answer.errors.length ? errorBox(answer.errors.map((e) => e.message).join('; ')) : null,
      failing.length ? errorBox(`${failing.length} lookups failed: the erasure would retry them.`) : null,
      h(
        'table',
        { class: 'list', id: 'plan-entries' },
        h('thead', {}, h('tr', {}, ['Connector', 'Entity', 'Action', 'Records', 'Files', 'Fields rewritten', 'Kept because / until', 'Note', 'Problems'].map((t) => h('th', { scope: 'col' }, t)))),
        h(
          'tbody',
          {},
          p.entries.map((/** @type {any} */ e) =>
            h(
              'tr',
              { class: e.blockedBy || e.error || e.exceedsLimit || !e.supported ? 'row-overdue' : '' },
              h('td', {}, e.connector), h('td', {}, e.entity), h('td', {}, h('strong', {}, e.action)),
              h('td', {}, show(e.records)), h('td', {}, show(e.files)),
              h('td', {}, e.fieldsTouched.join(', ') || '—'),
              h('td', {}, e.legalBasis ? `${e.legalBasis}${e.retainUntil ? `, until ${e.retainUntil}` : ''}` : '—'),
              h('td', { class: 'muted small' }, e.note || ''),
              h('td', { class: 'error-text' }, [e.blockedBy, e.error, e.exceedsLimit ? `more than ${e.limit} records` : null, e.supported ? null : 'not supported'].filter(Boolean).join('; ')),
            ),
          ),
        ),
      ),
    );
    if (p.blocked) return null;
    const connectors = new Set(p.entries.map((/** @type {any} */ e) => e.connector));
    return { entries: p.entries.length, connectors: connectors.size };
  }
}
