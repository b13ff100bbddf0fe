// The admin area (api.md's /api/admin): overview, users, transactions
// (cash-outs to settle) and settings.  Only for admins.
import { h, replace, announce } from '../dom.js';
import { t, fmtNumber, fmtMoney, fmtDate } from '../i18n.js';
import { get, put, qs } from '../api.js';
import * as session from '../session.js';
import { page, loading, errorBox, empty, notice, table, badge, action, errorText, stat, pager } from '../ui.js';

const TABS = ['overview', 'users', 'transactions', 'settings'];

export function admin({ params, outlet }) {
	const tab = TABS.includes(params.tab) ? params.tab : 'overview';
	const body = h('div', null, loading());
	const nav = h('nav', { class: 'tabs', 'aria-label': t('admin.sections') }, h('ul', null,
		TABS.map((x) => h('li', null, h('a', { href: x === 'overview' ? '/admin' : `/admin/${x}`, 'aria-current': x === tab ? 'page' : null, text: t(`admin.${x}`) })))));
	outlet.append(page(t('admin.title'), nav, body));
	if (session.getUser()?.role !== 'admin') { replace(body, notice(t('admin.forbidden'), 'error')); return; }
	({ overview, users, transactions, settings })[tab](body);
}

async function overview(body) {
	try {
		const s = await get('/api/admin/stats?days=30');
		const series = Array.isArray(s.series) ? s.series : [];
		replace(body,
			h('div', { class: 'stat-row' },
				stat(fmtNumber(s.users?.total), t('admin.users_total')),
				stat(fmtNumber(s.users?.verified), t('admin.users_verified')),
				stat(fmtNumber(s.users?.new_7d), t('admin.users_new')),
				stat(fmtNumber(s.messages?.total), t('admin.messages_total')),
				stat(fmtNumber(s.messages?.last_24h), t('admin.messages_24h')),
				stat(fmtNumber(s.credits_consumed_30d), t('admin.credits_30d')),
				stat(fmtMoney(s.revenue_cents?.total), t('admin.revenue_total')),
				stat(fmtMoney(s.revenue_cents?.last_30d), t('admin.revenue_30d')),
				stat(fmtNumber(s.referrals?.total), t('admin.referrals')),
				stat(`${fmtNumber(s.cashouts_pending?.count)} · ${fmtMoney(s.cashouts_pending?.amount_cents)}`, t('admin.cashouts_pending'))),
			h('h2', { text: t('admin.by_plan') }),
			h('div', { class: 'stat-row' }, Object.entries(s.users?.by_plan || {}).map(([k, v]) => stat(fmtNumber(v), t(`plan.${k}`)))),
			series.length ? h('h2', { text: t('admin.last_days') }) : null,
			series.length ? table(t('admin.last_days'), [
				[t('admin.date'), (r) => r.date],
				[t('admin.new_users'), (r) => fmtNumber(r.users), 'num'],
				[t('admin.messages'), (r) => fmtNumber(r.messages), 'num'],
				[t('admin.revenue'), (r) => fmtMoney(r.revenue_cents), 'num'],
			], series.slice().reverse()) : null);
	} catch (e) { replace(body, errorBox(e, () => overview(body))); }
}

// filters(controls [[id, label, element]], onSubmit): a row of filters.
function filters(controls, onSubmit) {
	const f = h('form', { class: 'filters', role: 'search' },
		controls.map(([id, label, el]) => { el.id = id; return [h('label', { for: id, class: 'visually-hidden', text: label }), el]; }),
		h('button', { type: 'submit', class: 'btn', text: t('common.search') }));
	f.addEventListener('submit', (e) => { e.preventDefault(); onSubmit(); });
	return f;
}

const options = (pairs) => pairs.map(([v, l]) => h('option', { value: v, text: l }));

function users(body) {
	const q = h('input', { type: 'search', placeholder: t('admin.search_users') });
	const plan = h('select', null, options([['', t('admin.any_plan')], ...['free', 'plus', 'business'].map((p) => [p, t(`plan.${p}`)])]));
	const list = h('div');
	const more = h('div');
	const msg = h('div');
	const p = pager(list, more, async (cursor) => {
		const r = await get(`/api/admin/users${qs({ q: q.value.trim(), plan: plan.value, limit: 50, cursor })}`);
		return [r.users, r.next_cursor];
	}, draw);

	function draw(rows) {
		if (!rows.length) { replace(list, empty(t('admin.no_users'))); return; }
		replace(list, table(t('admin.users'), [
			[t('auth.email'), (u) => h('span', null, u.email, u.role === 'admin' ? [' ', badge('admin', 'info')] : null, u.banned ? [' ', badge(t('admin.banned'), 'failed')] : null)],
			[t('ref.name'), (u) => `${u.first_name} ${u.last_name}`],
			[t('profile.plan'), (u) => t(`plan.${u.plan}`)],
			[t('nav.credits'), (u) => fmtNumber(u.credits), 'num'],
			[t('admin.verified'), (u) => (u.email_verified ? t('common.yes') : t('common.no'))],
			[t('admin.joined'), (u) => fmtDate(u.created_at, false)],
			['', (u) => editor(u)],
		], rows));
	}

	function editor(u) {
		const d = h('details', { class: 'row-edit' }, h('summary', { text: t('admin.edit') }));
		const planSel = h('select', { name: 'plan' }, ['free', 'plus', 'business'].map((x) => h('option', { value: x, text: t(`plan.${x}`), selected: x === u.plan })));
		const role = h('select', { name: 'role' }, ['user', 'admin'].map((x) => h('option', { value: x, text: x, selected: x === u.role })));
		const delta = h('input', { type: 'number', name: 'credits_delta', step: '1', value: '0' });
		const banned = h('input', { type: 'checkbox', name: 'banned', checked: !!u.banned });
		const verified = h('input', { type: 'checkbox', name: 'email_verified', checked: !!u.email_verified });
		const save = h('button', { type: 'submit', class: 'btn btn-small btn-primary', text: t('common.save') });
		const lab = (text, input) => h('label', { class: 'inline' }, h('span', { text }), input);
		const f = h('form', { class: 'edit-user' },
			lab(t('profile.plan'), planSel), lab(t('admin.role'), role), lab(t('admin.credits_delta'), delta),
			lab(t('admin.banned'), banned), lab(t('admin.verified'), verified), save);
		f.addEventListener('submit', (e) => {
			e.preventDefault();
			const change = {};
			if (planSel.value !== u.plan) change.plan = planSel.value;
			if (role.value !== u.role) change.role = role.value;
			if (Number(delta.value)) change.credits_delta = Number(delta.value);
			if (banned.checked !== !!u.banned) change.banned = banned.checked;
			if (verified.checked !== !!u.email_verified) change.email_verified = verified.checked;
			if (!Object.keys(change).length) return;
			action(save, async () => {
				const r = await put(`/api/admin/users/${u.id}`, change);
				p.rows = p.rows.map((x) => (x.id === u.id ? r.user : x));
				draw(p.rows);
				announce(t('admin.saved'));
				replace(msg, notice(t('admin.saved_user', { email: r.user.email }), 'ok'));
			}, (e2) => replace(msg, notice(errorText(e2), 'error')));
		});
		d.append(f);
		return d;
	}

	replace(body, filters([['admin-q', t('admin.search_users'), q], ['admin-plan', t('profile.plan'), plan]], () => p.load()), msg, list, more);
	p.load();
}

function transactions(body) {
	const type = h('select', null, options([['', t('admin.any_type')], ...['subscription', 'credits', 'referral', 'cashout'].map((x) => [x, t(`tx.${x}`)])]));
	const status = h('select', null, options([['', t('admin.any_status')], ...['pending', 'completed', 'failed', 'refunded'].map((x) => [x, t(`status.${x}`)])]));
	type.value = 'cashout';
	status.value = 'pending';
	const list = h('div');
	const more = h('div');
	const msg = h('div');
	const p = pager(list, more, async (cursor) => {
		const r = await get(`/api/admin/transactions${qs({ type: type.value, status: status.value, limit: 50, cursor })}`);
		return [r.transactions, r.next_cursor];
	}, draw);

	function draw(rows) {
		if (!rows.length) { replace(list, empty(t('admin.no_transactions'))); return; }
		replace(list, table(t('admin.transactions'), [
			[t('credits.when'), (x) => fmtDate(x.created_at)],
			[t('admin.type'), (x) => t(`tx.${x.type}`)],
			[t('auth.email'), (x) => x.email || x.user_email || ''],
			[t('credits.amount'), (x) => fmtMoney(x.amount_cents), 'num'],
			[t('credits.status'), (x) => badge(t(`status.${x.status}`), x.status)],
			['', (x) => (x.type === 'cashout' && x.status === 'pending' ? settle(x) : '')],
		], rows));
	}

	function settle(x) {
		const ok = h('button', { type: 'button', class: 'btn btn-small btn-primary', text: t('admin.mark_paid') });
		const no = h('button', { type: 'button', class: 'btn btn-small btn-danger', text: t('admin.mark_failed') });
		const go = (b, s) => action(b, async () => {
			const r = await put(`/api/admin/transactions/${x.id}`, { status: s });
			p.rows = p.rows.map((y) => (y.id === x.id ? { ...y, ...r.transaction } : y));
			draw(p.rows);
			announce(t('admin.saved'));
		}, (e) => replace(msg, notice(errorText(e), 'error')));
		ok.addEventListener('click', () => go(ok, 'completed'));
		no.addEventListener('click', () => go(no, 'failed'));
		return h('span', { class: 'btn-group' }, ok, no);
	}

	replace(body, filters([['tx-type', t('admin.type'), type], ['tx-status', t('credits.status'), status]], () => p.load()), msg, list, more);
	p.load();
}

async function settings(body) {
	const msg = h('div');
	try {
		const r = await get('/api/admin/settings');
		const keys = Object.keys(r.settings).sort();
		const rowsEl = keys.map((k) => {
			const v = r.settings[k];
			const id = `set-${k}`;
			const multi = typeof v === 'object' || (typeof v === 'string' && v.length > 60);
			const input = multi
				? h('textarea', { id, rows: 4, class: 'mono', value: typeof v === 'string' ? v : JSON.stringify(v, null, 2) })
				: h('input', { id, type: 'text', class: 'mono', value: typeof v === 'string' ? v : JSON.stringify(v) });
			const save = h('button', { type: 'button', class: 'btn btn-small', text: t('common.save') });
			save.addEventListener('click', () => action(save, async () => {
				let value = input.value;
				if (typeof v !== 'string') {
					try { value = JSON.parse(input.value); } catch { throw Object.assign(new Error(t('admin.bad_json')), { status: 400 }); }
				}
				await put('/api/admin/settings', { [k]: value });
				replace(msg, notice(t('admin.saved_key', { key: k }), 'ok'));
			}, (e) => replace(msg, notice(e.status === 400 && !e.code ? e.message : errorText(e), 'error'))));
			return h('div', { class: 'setting' }, h('label', { for: id, class: 'mono', text: k }), input, save);
		});
		replace(body, msg, keys.length ? h('div', { class: 'settings' }, rowsEl) : empty(t('admin.no_settings')));
	} catch (e) { replace(body, errorBox(e, () => settings(body))); }
}
