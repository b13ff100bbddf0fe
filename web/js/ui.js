// Shared pieces of every screen: page frame, form fields with their
// errors, busy buttons, and the loading / empty / error states.
import { h, uid, announce, replace } from './dom.js';
import { t } from './i18n.js';

export function page(title, ...children) {
	return h('section', { class: 'page' }, h('h1', { text: title }), ...children);
}

// errorText(err): what to tell a person about an ApiError (or other).
export function errorText(err) {
	if (!err) return t('error.generic');
	if (err.status === 0) return t('error.network');
	if (err.status === 429) return t('error.rate_limited');
	if (err.code && t(`error.${err.code}`) !== `error.${err.code}`) return t(`error.${err.code}`);
	if (err.status >= 500) return t('error.server');
	return err.message || t('error.generic');
}

export function loading(text) {
	return h('p', { class: 'state state-loading', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text || t('common.loading'));
}

export function empty(text, ...extra) {
	return h('div', { class: 'state state-empty' }, h('p', { text }), ...extra);
}

export function errorBox(err, retry) {
	return h('div', { class: 'state state-error', role: 'alert' },
		h('p', { text: errorText(err) }),
		retry ? h('button', { type: 'button', class: 'btn', onclick: retry, text: t('common.retry') }) : null);
}

export function notice(text, kind = 'info', ...extra) {
	return h('div', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, h('p', { text }), ...extra);
}

// field({label, name, type, ...input attributes, hint, options}): a labelled
// input (or <select> with options [[value, label]], or <textarea>) with a
// place for its error, tied by aria-describedby.
export function field(o) {
	const id = uid(o.name);
	const hintId = o.hint ? `${id}-hint` : null;
	const errId = `${id}-err`;
	const { label, hint, options, type = 'text', ...attrs } = o;
	const describedby = [hintId, errId].filter(Boolean).join(' ');
	let input;
	if (options) {
		input = h('select', { id, name: o.name, 'aria-describedby': describedby, ...attrs },
			options.map(([v, l]) => h('option', { value: v, text: l, selected: String(attrs.value ?? '') === String(v) })));
	} else if (type === 'textarea') {
		input = h('textarea', { id, 'aria-describedby': describedby, ...attrs });
	} else {
		input = h('input', { id, type, 'aria-describedby': describedby, ...attrs });
	}
	return h('div', { class: 'field' },
		h('label', { for: id, text: label }),
		input,
		hint ? h('p', { class: 'hint', id: hintId, text: hint }) : null,
		h('p', { class: 'field-error', id: errId, hidden: true }));
}

// form(children, submitLabel, onSubmit(values, form)): a form that shows
// a busy button while onSubmit runs and puts an ApiError next to the
// field it names (api.md's error.field), or above the button.
export function form(children, submitLabel, onSubmit, { extra = null, cls = '' } = {}) {
	const status = h('div', { class: 'form-error', role: 'alert', hidden: true });
	const button = h('button', { type: 'submit', class: 'btn btn-primary', text: submitLabel });
	const f = h('form', { class: ['form', cls], novalidate: true }, children, status, h('div', { class: 'form-actions' }, button, extra));
	f.addEventListener('submit', async (e) => {
		e.preventDefault();
		clearErrors(f);
		if (!f.checkValidity()) {
			const bad = [...f.elements].find((el) => el.willValidate && !el.validity.valid);
			showFieldError(f, bad.name, bad.validationMessage);
			bad.focus();
			return;
		}
		const values = Object.fromEntries(new FormData(f));
		setBusy(button, true);
		try {
			await onSubmit(values, f);
		} catch (err) {
			if (err?.name === 'AbortError') return;
			const msg = errorText(err);
			if (!(err?.field && showFieldError(f, err.field, msg))) {
				status.textContent = msg;
				status.hidden = false;
			}
		} finally {
			setBusy(button, false);
		}
	});
	return f;
}

export function showFieldError(f, name, msg) {
	const input = f.elements.namedItem(name);
	if (!input || !input.id) return false;
	const p = document.getElementById(`${input.id}-err`);
	if (!p) return false;
	p.textContent = msg;
	p.hidden = false;
	input.setAttribute('aria-invalid', 'true');
	input.focus();
	return true;
}

export function clearErrors(f) {
	for (const p of f.querySelectorAll('.field-error')) { p.hidden = true; p.textContent = ''; }
	for (const i of f.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid');
	const s = f.querySelector('.form-error');
	if (s) { s.hidden = true; s.textContent = ''; }
}

export function setBusy(button, busy) {
	button.disabled = busy;
	button.classList.toggle('busy', busy);
	if (busy) button.setAttribute('aria-busy', 'true');
	else button.removeAttribute('aria-busy');
}

// action(button, fn): run fn with the button busy; errors go to onError.
export async function action(button, fn, onError) {
	setBusy(button, true);
	try {
		return await fn();
	} catch (err) {
		if (onError) onError(err);
		else announce(errorText(err), true);
	} finally {
		setBusy(button, false);
	}
}

export function badge(text, kind = '') {
	return h('span', { class: ['badge', kind && `badge-${kind}`], text });
}

// table(columns [[label, fn(row) -> node|string, cls]], rows): a data table
// with a caption for screen readers.
export function table(caption, columns, rows) {
	return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption },
		h('table', { class: 'table' },
			h('caption', { class: 'visually-hidden', text: caption }),
			h('thead', null, h('tr', null, columns.map(([l, , c]) => h('th', { scope: 'col', class: c, text: l })))),
			h('tbody', null, rows.map((r) => h('tr', null, columns.map(([, fn, c]) => h('td', { class: c }, fn(r))))))));
}

export function moreButton(onClick) {
	return h('button', { type: 'button', class: 'btn btn-ghost more', text: t('common.more'), onclick: onClick });
}

// stat(value, label): one figure of a row of figures.
export function stat(n, label) {
	return h('div', { class: 'stat' }, h('span', { class: 'stat-n', text: n }), h('span', { class: 'stat-l', text: label }));
}

// pager(list, more, fetchPage, draw): a list loaded a page at a time.
// fetchPage(cursor) resolves to [items, next_cursor]; draw(rows) shows
// all rows so far in list; a "Load more" button in more asks for the next
// page.  p.load() starts again; p.rows can be changed and drawn again.
export function pager(list, more, fetchPage, draw) {
	const p = { rows: [] };
	p.load = async (cursor) => {
		if (!cursor) { p.rows = []; replace(list, loading()); }
		more.replaceChildren();
		try {
			const [items, next] = await fetchPage(cursor);
			p.rows.push(...items);
			draw(p.rows);
			if (next) more.append(moreButton(() => p.load(next)));
		} catch (e) {
			replace(list, errorBox(e, () => p.load(cursor)));
		}
	};
	return p;
}
