// @ts-check
/**
 * DOM helpers shared by the pages: elements built with textContent only (never innerHTML, so
 * nothing a store returns can run as markup), dates as days left, badges, the confirm dialog.
 * @module ui
 */

/**
 * Creates an element. `attrs` keys starting with `on` become listeners; `class`, `for`, `hidden`,
 * data-* and aria-* are attributes; children are nodes or text.
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {...(Node|string|number|null|undefined|false|Array<Node|string|null|undefined|false>)} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'value') {
      /** @type {any} */ (el).value = value;
    } else if (name === 'checked') {
      /** @type {any} */ (el).checked = Boolean(value);
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === 'string' || typeof child === 'number' ? String(child) : child);
  }
  return el;
}

/** @param {HTMLElement} el @param {...any} children */
export function replace(el, ...children) {
  el.replaceChildren();
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === 'string' ? child : child);
  }
}

/** The page's main element. */
export function main() {
  return /** @type {HTMLElement} */ (document.getElementById('main'));
}

/** @param {string|null|undefined} iso */
export function when(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/**
 * Days left until `dueAt`, highlighted when overdue.
 * @param {string} dueAt
 * @param {boolean} overdue
 * @param {boolean} finished
 */
export function daysLeft(dueAt, overdue, finished) {
  const ms = new Date(dueAt).getTime() - Date.now();
  const days = Math.ceil(ms / 86400000);
  if (finished) return h('span', { class: 'muted', title: when(dueAt) }, 'done');
  if (overdue || days < 0) {
    return h('span', { class: 'overdue', title: when(dueAt) }, `overdue by ${Math.max(1, -days)} d`);
  }
  return h('span', { class: days <= 5 ? 'soon' : '', title: when(dueAt) }, `${days} d left`);
}

/** @param {string} status */
export function badge(status) {
  return h('span', { class: `badge s-${String(status).toLowerCase()}` }, status);
}

/**
 * An error box (role=alert), or nothing.
 * @param {string|null|undefined} message
 */
export function errorBox(message) {
  return message ? h('p', { class: 'error', role: 'alert' }, message) : null;
}

/**
 * Shows the confirm dialog with `body`; resolves to true when confirmed. When `validate` is
 * given it runs on confirm and a string it returns is shown as an error (the dialog stays).
 * Escape or Cancel resolves to false.
 * @param {string} title
 * @param {Node|string} body
 * @param {{ confirmLabel?: string, validate?: () => string|null }} [options]
 * @returns {Promise<boolean>}
 */
export function confirmAction(title, body, options = {}) {
  const dialog = /** @type {HTMLDialogElement} */ (document.getElementById('confirm'));
  const ok = /** @type {HTMLButtonElement} */ (document.getElementById('confirm-ok'));
  const cancel = /** @type {HTMLButtonElement} */ (document.getElementById('confirm-cancel'));
  const error = /** @type {HTMLElement} */ (document.getElementById('confirm-error'));
  /** @type {HTMLElement} */ (document.getElementById('confirm-title')).textContent = title;
  replace(/** @type {HTMLElement} */ (document.getElementById('confirm-body')), body);
  ok.textContent = options.confirmLabel || 'Confirm';
  error.hidden = true;
  return new Promise((resolve) => {
    const done = (/** @type {boolean} */ result) => {
      ok.removeEventListener('click', onOk);
      cancel.removeEventListener('click', onCancel);
      dialog.removeEventListener('cancel', onCancel);
      dialog.removeEventListener('keydown', onKey);
      dialog.close();
      resolve(result);
    };
    const onOk = () => {
      const problem = options.validate ? options.validate() : null;
      if (problem) {
        error.textContent = problem;
        error.hidden = false;
        return;
      }
      done(true);
    };
    const onCancel = (/** @type {Event} */ event) => {
      event.preventDefault();
      done(false);
    };
    const onKey = (/** @type {KeyboardEvent} */ event) => {
      if (event.key === 'Enter' && event.target instanceof HTMLInputElement) {
        event.preventDefault();
        onOk();
      }
    };
    ok.addEventListener('click', onOk);
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener('cancel', onCancel);
    dialog.addEventListener('keydown', onKey);
    dialog.showModal();
    const first = dialog.querySelector('#confirm-body input, #confirm-body textarea, #confirm-body select');
    (/** @type {HTMLElement|null} */ (first) || cancel).focus();
  });
}

/**
 * A labelled form control.
 * @param {string} label
 * @param {HTMLElement} control
 */
export function field(label, control) {
  if (!control.id) control.id = `f-${Math.random().toString(36).slice(2, 9)}`;
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control);
}

/**
 * A `<select>` of options (`[value, label]` pairs or plain values).
 * @param {Array<string|[string, string]>} options
 * @param {Record<string, any>} [attrs]
 */
export function select(options, attrs = {}) {
  return h(
    'select',
    attrs,
    options.map((o) => (Array.isArray(o) ? h('option', { value: o[0] }, o[1]) : h('option', { value: o }, o))),
  );
}

/** lower_snake (or kebab) to lowerCamel, as the schema names connectors. @param {string} name */
export function camel(name) {
  return name.replace(/[-_]+([a-zA-Z0-9])/g, (_, c) => c.toUpperCase()).replace(/^[A-Z]/, (c) => c.toLowerCase());
}

/** Human text for a JSON value. @param {any} value */
export function show(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}
