// @ts-check
/**
 * The actions on one privacy request: which fit its state and the caller's role, and one
 * function per action, each confirmed in a dialog before anything is sent. The server checks
 * the role again: hiding a button is a convenience, never the protection.
 *
 * Approval (issue 13): `approveRequest` and `denyRequest`, offered on a request AWAITING_APPROVAL
 * to a role holding `approve` that did not submit it. Manual tasks: `completeManualTask`, offered
 * for each open manual task of the request (`request.manualTasks`, loaded by the detail page).
 * @module actions
 */

import { gqlStrict, may, me } from './api.js';
import { h, field, confirmAction } from './ui.js';

export const REQUEST_FIELDS = `id type status regulation reason subject requestedBy createdAt updatedAt dueAt overdue
  extensionReason completedAt error receipt receiptSha256 decidedBy decidedAt decisionReason
  download { url expiresAt sha256 bytes }
  tasks { connector entity action status attempts records files legalBasis retainUntil verified error errorCode startedAt finishedAt }
  events { at kind message status }`;

const FINISHED = ['COMPLETED', 'FAILED', 'CANCELLED', 'DENIED'];

/** What the detail page asks about a request's open manual tasks. */
export const MANUAL_FIELDS = 'id requestId connector entity action role instructions status';

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
  // Four eyes: never offered to the submitter (and refused by the server with FOUR_EYES).
  if (request.status === 'AWAITING_APPROVAL' && may('approve') && request.requestedBy !== me()?.principal) {
    actions.push({ id: 'approve', label: 'Approve', run: approveRequest });
    actions.push({ id: 'deny', label: 'Deny…', run: denyRequest, danger: true });
  }
  for (const task of request.manualTasks || []) {
    if (task.status !== 'OPEN') continue;
    actions.push({
      id: `complete-${task.connector}-${task.entity}`,
      label: `Complete ${task.connector}.${task.entity}…`,
      run: () => completeManualTask(task),
    });
  }
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
 * `approvePrivacyRequest(id)`: the request runs.
 * @param {any} request
 */
export async function approveRequest(request) {
  const ok = await confirmAction('Approve this request?', h('p', {}, `${request.id} will run as planned.`), { confirmLabel: 'Approve' });
  if (!ok) return null;
  const data = await gqlStrict(`mutation Approve($id: ID!) { approvePrivacyRequest(id: $id) { ${REQUEST_FIELDS} } }`, { id: request.id });
  return data.approvePrivacyRequest;
}

/**
 * `denyPrivacyRequest(id, reason)`: the request ends DENIED, nothing done.
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
 * `completeManualTask(id, outcome, note)` with DONE / NOT_FOUND / FAILED (FAILED needs a note),
 * on an open manual task of the request.
 * @param {{ id: string, connector: string, entity: string, instructions?: string }} task
 */
export async function completeManualTask(task) {
  const outcome = /** @type {HTMLSelectElement} */ (h('select', { id: 'manual-outcome' }, ['DONE', 'NOT_FOUND', 'FAILED'].map((o) => h('option', { value: o }, o))));
  const note = /** @type {HTMLTextAreaElement} */ (h('textarea', { id: 'manual-note', rows: '3' }));
  const ok = await confirmAction(
    'Complete the manual task',
    h('div', {}, h('p', {}, `${task.connector}.${task.entity}: ${task.instructions || ''}`), field('Outcome', outcome), field('What was done', note)),
    {
      confirmLabel: 'Record outcome',
      validate: () => (outcome.value === 'FAILED' && !note.value.trim() ? 'Say why it could not be done.' : null),
    },
  );
  if (!ok) return null;
  const data = await gqlStrict(
    'mutation Complete($id: ID!, $outcome: ManualTaskOutcome!, $note: String) { completeManualTask(id: $id, outcome: $outcome, note: $note) { id status } }',
    { id: task.id, outcome: outcome.value, note: note.value.trim() || null },
  );
  return data.completeManualTask;
}
