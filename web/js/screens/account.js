// Profile (names, language, password, data export, deletion) and the
// credits history.
import { h, replace, announce } from '../dom.js';
import { t, fmtNumber, fmtDate, fmtMoney, LANGUAGES, setLang } from '../i18n.js';
import { get, put, post, del, qs } from '../api.js';
import * as session from '../session.js';
import { hasPayments } from '../features.js';
import { page, field, form, notice, loading, empty, errorBox, table, badge, stat, pager } from '../ui.js';

export function profile({ outlet }) {
	const u = session.getUser();
	const saved = h('div', { role: 'status' });
	const names = form([
		h('div', { class: 'row' },
			field({ label: t('auth.first_name'), name: 'first_name', value: u.first_name, autocomplete: 'given-name', required: true, maxlength: 100 }),
			field({ label: t('auth.last_name'), name: 'last_name', value: u.last_name, autocomplete: 'family-name', required: true, maxlength: 100 })),
		field({ label: t('profile.language'), name: 'language', value: u.language, options: LANGUAGES }),
	], t('common.save'), async (v) => {
		const r = await put('/api/user/profile', { first_name: v.first_name.trim(), last_name: v.last_name.trim(), language: v.language });
		session.setUser(r.user);
		setLang(r.user.language);
		announce(t('profile.saved'));
		replace(saved, notice(t('profile.saved'), 'ok'));
	});

	const pwDone = h('div', { role: 'status' });
	const pw = form([
		field({ label: t('profile.current_password'), name: 'current_password', type: 'password', autocomplete: 'current-password', required: true }),
		field({ label: t('auth.new_password'), name: 'new_password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8, maxlength: 128, hint: t('auth.password_hint') }),
	], t('profile.change_password'), async (v, f) => {
		await post('/api/user/change-password', { current_password: v.current_password, new_password: v.new_password });
		f.reset();
		replace(pwDone, notice(t('profile.password_changed'), 'ok'));
	});

	const exportBtn = h('button', { type: 'button', class: 'btn', text: t('profile.export') });
	const exportOut = h('div');
	exportBtn.addEventListener('click', async () => {
		exportBtn.disabled = true;
		try {
			const data = await get('/api/user/export');
			const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' }));
			const a = h('a', { href: url, download: 'miky-export.json', class: 'btn btn-primary', text: t('profile.export_download') });
			replace(exportOut, a);
			a.focus();
		} catch (e) { replace(exportOut, errorBox(e)); } finally { exportBtn.disabled = false; }
	});

	const delForm = form([
		field({ label: t('profile.delete_password'), name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
	], t('profile.delete_button'), async (v) => {
		if (!confirm(t('profile.delete_confirm'))) return;
		await del('/api/user', { password: v.password });
		await session.signOut();
	}, { cls: 'danger-zone' });

	outlet.append(page(t('profile.title'),
		h('dl', { class: 'facts' },
			h('dt', { text: t('auth.email') }), h('dd', { text: u.email }),
			h('dt', { text: t('profile.plan') }), h('dd', { text: t(`plan.${u.plan}`) }),
			h('dt', { text: t('profile.member_since') }), h('dd', { text: fmtDate(u.created_at, false) })),
		h('h2', { text: t('profile.details') }), saved, names,
		h('h2', { text: t('profile.password') }), pwDone, pw,
		h('h2', { text: t('profile.your_data') }), h('p', { text: t('profile.export_text') }), exportBtn, exportOut,
		h('details', { class: 'danger' }, h('summary', { text: t('profile.delete_title') }), h('p', { text: t('profile.delete_text') }), delForm)));
}

export function credits({ outlet }) {
	const head = h('div', { class: 'stat-row' });
	const ledger = h('div');
	const more = h('div');
	const tx = h('div');
	const p = pager(ledger, more, async (cursor) => {
		const r = await get(`/api/user/credits${qs({ limit: 50, cursor })}`);
		session.setCredits(r.credits);
		replace(head, stat(fmtNumber(r.credits), t('credits.balance')), stat(t(`plan.${r.plan}`), t('credits.plan')));
		return [r.ledger, r.next_cursor];
	}, (rows) => {
		if (!rows.length) replace(ledger, empty(t('credits.empty')));
		else replace(ledger, table(t('credits.history'), [
			[t('credits.when'), (x) => h('time', { datetime: x.created_at, text: fmtDate(x.created_at) })],
			[t('credits.what'), (x) => (t(`reason.${x.reason}`) === `reason.${x.reason}` ? x.reason : t(`reason.${x.reason}`))],
			[t('credits.change'), (x) => h('span', { class: x.delta < 0 ? 'neg' : 'pos', text: (x.delta > 0 ? '+' : '') + fmtNumber(x.delta) }), 'num'],
			[t('credits.after'), (x) => fmtNumber(x.balance_after), 'num'],
		], rows));
	});

	async function loadTransactions() {
		if (!(await hasPayments())) return;
		replace(tx, h('h2', { text: t('credits.payments') }), loading());
		try {
			const r = await get('/api/payments/transactions?limit=50');
			replace(tx, h('h2', { text: t('credits.payments') }), r.transactions.length
				? table(t('credits.payments'), [
					[t('credits.when'), (x) => fmtDate(x.created_at)],
					[t('credits.what'), (x) => t(`tx.${x.type}`)],
					[t('credits.amount'), (x) => fmtMoney(x.amount_cents), 'num'],
					[t('nav.credits'), (x) => (x.credits ? fmtNumber(x.credits) : '—'), 'num'],
					[t('credits.status'), (x) => badge(t(`status.${x.status}`), x.status)],
				], r.transactions)
				: empty(t('credits.no_payments')));
		} catch (e) { replace(tx, errorBox(e, loadTransactions)); }
	}

	outlet.append(page(t('credits.title'), head, h('h2', { text: t('credits.history') }), ledger, more, tx));
	p.load();
	loadTransactions();
}
