// @ts-check
/**
 * The actions on one privacy request: which fit its state and the caller's role, and one
 * function per action, each confirmed in a dialog before anything is sent. The server checks
 * the role again: hiding a button is a convenience, never the protection.
 *
 * Issue 13 adds approval and manual tasks: `approveRequest`, `denyRequest` and
 * `completeManualTask` below are the places they plug in (marked `PLUG-IN (issue 13)`).
 * @module actions
 */

import { gqlStrict, may } from './api.js';
import { h, field, confirmAction } from './ui.js';

export const REQUEST_FIELDS = `id type status regulation reason subject requestedBy createdAt updatedAt dueAt overdue
  extensionReason completedAt error receipt receiptSha256
  download { url expiresAt sha256 bytes }
  tasks { connector entity action status attempts records files legalBasis retainUntil verified error errorCode startedAt finishedAt }`;

const FINISHED = ['COMPLETED', 'FAILED', 'CANCELLED'];

/**
 * @typedef {{ id: string, label: string, run: (request: any) => Promise<any|null>, danger?: boolean }} Action
 */

/**
 * The actions `request` offers this caller now.
 * @param {any} request
 * @returns {Action[]}
 */
export function available(request) {
  /** @type {Action[]} */
  const actions = [];
  if (!may('manage_requests')) return actions;
  if (request.status === 'FAILED') actions.push({ id: 'retry', label: 'Retry', run: retryRequest });
  if (!FINISHED.includes(request.status)) {
    actions.push({ id: 'extend', label: 'Extend due date…', run: extendRequest });
    actions.push({ id: 'cancel', label: 'Cancel request', run: cancelRequest, danger: true });
  }
  // PLUG-IN (issue 13): when the API has approval, offer these for a request awaiting it, to a
  // role holding `approve` that did not submit it (the server enforces four eyes):
  //   if (request.status === 'AWAITING_APPROVAL' && may('approve') && request.requestedBy !== me()?.principal) {
  //     actions.push({ id: 'approve', label: 'Approve', run: approveRequest });
  //     actions.push({ id: 'deny', label: 'Deny…', run: denyRequest, danger: true });
  //   }
  return actions;
}

/** `retryPrivacyRequest`: runs a FAILED request again (only what is not done). @param {any} request */
export async function retryRequest(request) {
  const ok = await confirmAction('Retry this request?', h('p', {}, `${request.id} runs again: only the tasks not done yet.`), { confirmLabel: 'Retry' });
  if (!ok) return null;
  const data = await gqlStrict(`mutation Retry($id: ID!) { retryPrivacyRequest(id: $id) { ${REQUEST_FIELDS} } }`, { id: request.id });
  return data.retryPrivacyRequest;
}

/** `cancelPrivacyRequest`. @param {any} request */
export async function cancelRequest(request) {
  const ok = await confirmAction(
    'Cancel this request?',
    h('p', {}, `${request.id} stops; what is done stays done. This cannot be undone.`),
    { confirmLabel: 'Cancel request' },
  );
  if (!ok) return null;
  const data = await gqlStrict(`mutation Cancel($id: ID!) { cancelPrivacyRequest(id: $id) { ${REQUEST_FIELDS} } }`, { id: request.id });
  return data.cancelPrivacyRequest;
}

/** `extendPrivacyRequest(days, reason)`: the reason is required. @param {any} request */
export async function extendRequest(request) {
  const days = /** @type {HTMLInputElement} */ (h('input', { type: 'number', min: '1', max: '60', value: '30', id: 'extend-days', required: true }));
  const reason = /** @type {HTMLTextAreaElement} */ (h('textarea', { id: 'extend-reason', rows: '3', required: true }));
  const ok = await confirmAction(
    'Extend the due date',
    h('div', {}, h('p', {}, 'The law asks for the reason; it is kept with the request.'), field('Days', days), field('Reason', reason)),
    {
      confirmLabel: 'Extend',
      validate: () => {
        if (!(Number(days.value) >= 1)) return 'Give a number of days (1 or more).';
        if (!reason.value.trim()) return 'Give the reason for the extension.';
        return null;
      },
    },
  );
  if (!ok) return null;
  const data = await gqlStrict(
    `mutation Extend($id: ID!, $days: Int!, $reason: String!) { extendPrivacyRequest(id: $id, days: $days, reason: $reason) { ${REQUEST_FIELDS} } }`,
    { id: request.id, days: Number(days.value), reason: reason.value.trim() },
  );
  return data.extendPrivacyRequest;
}

/**
 * PLUG-IN (issue 13): `approvePrivacyRequest(id)`. Not in the API yet.
 * @param {any} request
 */
export async function approveRequest(request) {
  const ok = await confirmAction('Approve this request?', h('p', {}, `${request.id} will run as planned.`), { confirmLabel: 'Approve' });
  if (!ok) return null;
  const data = await gqlStrict(`mutation Approve($id: ID!) { approvePrivacyRequest(id: $id) { ${REQUEST_FIELDS} } }`, { id: request.id });
  return data.approvePrivacyRequest;
}

/**
 * PLUG-IN (issue 13): `denyPrivacyRequest(id, reason)`. Not in the API yet.
 * @param {any} request
 */
export async function denyRequest(request) {
  const reason = /** @type {HTMLTextAreaElement} */ (h('textarea', { id: 'deny-reason', rows: '3', required: true }));
  const ok = await confirmAction('Deny this request', field('Reason', reason), {
    confirmLabel: 'Deny',
    validate: () => (reason.value.trim() ? null : 'Give the reason for the denial.'),
  });
  if (!ok) return null;
  const data = await gqlStrict(
    `mutation Deny($id: ID!, $reason: String!) { denyPrivacyRequest(id: $id, reason: $reason) { ${REQUEST_FIELDS} } }`,
    { id: request.id, reason: reason.value.trim() },
  );
  return data.denyPrivacyRequest;
}

/**
 * PLUG-IN (issue 13): `completeManualTask(id, outcome, note)` with DONE / NOT_FOUND / FAILED. Not
 * in the API yet; the detail page will offer it on a manual task assigned to the caller's role.
 * @param {{ id: string }} task
 */
export async function completeManualTask(task) {
  const outcome = /** @type {HTMLSelectElement} */ (h('select', { id: 'manual-outcome' }, ['DONE', 'NOT_FOUND', 'FAILED'].map((o) => h('option', { value: o }, o))));
  const note = /** @type {HTMLTextAreaElement} */ (h('textarea', { id: 'manual-note', rows: '3' }));
  const ok = await confirmAction('Complete the manual task', h('div', {}, field('Outcome', outcome), field('What was done', note)), { confirmLabel: 'Record outcome' });
  if (!ok) return null;
  const data = await gqlStrict(
    'mutation Complete($id: ID!, $outcome: String!, $note: String) { completeManualTask(id: $id, outcome: $outcome, note: $note) { id } }',
    { id: task.id, outcome: outcome.value, note: note.value.trim() || null },
  );
  return data.completeManualTask;
}
