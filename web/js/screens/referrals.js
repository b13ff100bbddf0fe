// Invite friends: the link (copy, share), the stats with each invitee's
// status, and cash-outs.
import { h, replace, announce } from '../dom.js';
import { t, fmtNumber, fmtMoney, fmtDate, currencySymbol } from '../i18n.js';
import { get, post } from '../api.js';
import * as session from '../session.js';
import { page, loading, errorBox, notice, field, form, table, badge, empty, stat } from '../ui.js';

export function referrals({ outlet }) {
	const u = session.getUser();
	const linkBox = h('div', null, loading());
	const statsBox = h('div', null, loading());
	outlet.append(page(t('ref.title'), h('p', { class: 'lead', text: t('ref.intro') }), linkBox, statsBox));

	function renderLink(url, text) {
		const input = h('input', { type: 'text', id: 'ref-link', readOnly: true, value: url, class: 'mono' });
		input.addEventListener('focus', () => input.select());
		const copied = h('span', { role: 'status', class: 'hint' });
		const copy = h('button', { type: 'button', class: 'btn btn-primary', text: t('ref.copy') });
		copy.addEventListener('click', async () => {
			try {
				await navigator.clipboard.writeText(url);
			} catch {
				input.select();
				document.execCommand?.('copy');
			}
			copied.textContent = t('ref.copied');
			announce(t('ref.copied'));
		});
		const share = navigator.share ? h('button', { type: 'button', class: 'btn', text: t('ref.share') }) : null;
		share?.addEventListener('click', () => navigator.share({ title: 'Miky', text, url }).catch(() => {}));
		replace(linkBox, h('div', { class: 'card' },
			h('label', { for: 'ref-link', text: t('ref.your_link') }),
			h('div', { class: 'copy-row' }, input, copy, share), copied,
			h('p', { class: 'hint' }, t('ref.code'), ' ', h('strong', { class: 'mono', text: u.referral_code }))));
	}

	async function load() {
		try {
			const [link, s] = await Promise.all([get('/api/referrals/share-link'), get('/api/referrals/stats')]);
			renderLink(link.url, link.share_text);
			renderStats(s);
		} catch (e) {
			replace(statsBox, errorBox(e, load));
		}
	}

	function renderStats(s) {
		const list = s.referrals.length ? table(t('ref.people'), [
			[t('ref.name'), (r) => r.first_name],
			[t('ref.status'), (r) => badge(t(`ref.status_${r.status}`), r.status)],
			[t('ref.since'), (r) => fmtDate(r.created_at, false)],
			[t('ref.credits'), (r) => fmtNumber(r.credits_awarded), 'num'],
			[t('ref.cash'), (r) => fmtMoney(r.cash_awarded_cents), 'num'],
		], s.referrals) : empty(t('ref.none'));
		replace(statsBox,
			h('div', { class: 'stat-row' },
				stat(fmtNumber(s.referrals_count), t('ref.invited')),
				stat(fmtNumber(s.credits_earned), t('ref.credits_earned')),
				stat(fmtMoney(s.cash_earned_cents), t('ref.cash_earned')),
				stat(fmtMoney(s.cash_available_cents), t('ref.available')),
				stat(fmtMoney(s.cash_pending_cents), t('ref.pending')),
				stat(fmtMoney(s.cash_paid_out_cents), t('ref.paid_out'))),
			h('p', { class: 'hint', text: t('ref.how') }),
			h('h2', { text: t('ref.people') }), list,
			h('h2', { text: t('ref.cashout') }), cashout(s));
	}

	function cashout(s) {
		if (s.cash_available_cents <= 0) return h('p', { text: t('ref.cashout_none') });
		const done = h('div', { role: 'status' });
		const f = form([
			field({ label: t('ref.amount', { currency: currencySymbol() }), name: 'amount', type: 'number', min: '0.01', step: '0.01', max: (s.cash_available_cents / 100).toFixed(2), required: true, value: (s.cash_available_cents / 100).toFixed(2), inputmode: 'decimal', hint: t('ref.amount_hint', { max: fmtMoney(s.cash_available_cents) }) }),
			field({ label: t('ref.method'), name: 'method', options: [['paypal', 'PayPal'], ['bank', t('ref.bank')]] }),
			field({ label: t('ref.destination'), name: 'destination', required: true, maxlength: 320, autocomplete: 'off', hint: t('ref.destination_hint') }),
		], t('ref.cashout_button'), async (v) => {
			const amount_cents = Math.round(Number(v.amount) * 100);
			try {
				await post('/api/referrals/cashout', { amount_cents, method: v.method, destination: v.destination.trim() });
			} catch (e) {
				if (e.field === 'amount_cents') e.field = 'amount';
				throw e;
			}
			replace(done, notice(t('ref.cashout_sent', { amount: fmtMoney(amount_cents) }), 'ok'));
			setTimeout(load, 1500);
		});
		return h('div', null, done, f);
	}

	load();
}
