// Plans and credit packs (Stripe Checkout), the subscription, and the
// pages Checkout returns to.
import { h, replace, announce } from '../dom.js';
import { t, tn, fmtNumber, fmtMoney, fmtDate } from '../i18n.js';
import { get, post } from '../api.js';
import * as session from '../session.js';
import { plans as catalogue } from '../features.js';
import { page, loading, errorBox, notice, action, errorText, empty, badge } from '../ui.js';

const LIVE = ['active', 'trialing', 'past_due'];

// The account as it was when Checkout began, kept for this tab while it is
// at Stripe: the return page compares with it (the webhook often comes
// before the person does, and the app reloads on the way back).
// Storage may be refused (privacy settings): then the return page
// compares with the account it loads.
const BEFORE = 'miky.checkout';
const kept = {
	get() { try { return JSON.parse(sessionStorage.getItem(BEFORE)); } catch { return null; } },
	set(v) { try { sessionStorage.setItem(BEFORE, JSON.stringify(v)); } catch { /* refused */ } },
	clear() { try { sessionStorage.removeItem(BEFORE); } catch { /* refused */ } },
};

export function plans({ outlet }) {
	const body = h('div', null, loading());
	const msg = h('div');
	outlet.append(page(t('plans.title'), h('p', { class: 'lead', text: t('plans.intro') }), msg, body));

	const checkout = (btn, path, payload) => action(btn, async () => {
		const r = await post(path, payload);
		const u = session.getUser();
		kept.set({ session_id: r.session_id, credits: u.credits, plan: u.plan, subscription_status: u.subscription_status });
		announce(t('plans.redirecting'));
		location.assign(r.checkout_url);
	}, (e) => replace(msg, notice(e.code === 'conflict' ? t('plans.already') : errorText(e), 'error')));

	async function load() {
		let r;
		try {
			r = await catalogue();
		} catch {
			replace(body, empty(t('plans.unavailable')));
			return;
		}
		try {
			const me = await get('/api/user/profile');
			session.setUser(me.user);
			const u = me.user;
			const subscribed = LIVE.includes(u.subscription_status);
			const planCards = r.plans.map((p) => {
				const current = u.plan === p.id;
				const btn = h('button', { type: 'button', class: ['btn', current ? '' : 'btn-primary'], disabled: current,
					text: current ? t('plans.current') : subscribed ? t('plans.switch') : t('plans.subscribe') });
				btn.addEventListener('click', () => {
					if (!subscribed) return checkout(btn, '/api/payments/create-subscription', { plan: p.id });
					return action(btn, async () => {
						const s = await post('/api/payments/update-subscription', { plan: p.id });
						replace(msg, notice(t('plans.switched', { plan: p.name }), 'ok'));
						void s;
						load();
					}, (e) => replace(msg, notice(errorText(e), 'error')));
				});
				return h('li', { class: ['card', 'plan', current && 'current'] },
					h('h3', { text: p.name }),
					h('p', { class: 'price' }, h('span', { class: 'price-n', text: fmtMoney(p.price_cents) }), h('span', { text: t('plans.per_month') })),
					h('p', { text: tn('plans.monthly_credits', p.monthly_credits) }),
					current ? badge(t('plans.current'), 'ok') : null, btn);
			});
			const packCards = r.credit_packs.map((p) => {
				const btn = h('button', { type: 'button', class: 'btn btn-primary', text: t('plans.buy') });
				btn.addEventListener('click', () => checkout(btn, '/api/payments/buy-credits', { pack: p.id }));
				return h('li', { class: 'card pack' },
					h('h3', { text: tn('plans.pack_credits', p.credits) }),
					h('p', { class: 'price' }, h('span', { class: 'price-n', text: fmtMoney(p.price_cents) })),
					h('p', { class: 'hint', text: t('plans.per_credit', { price: fmtMoney(p.price_cents / p.credits) }) }), btn);
			});
			const sub = subscribed ? subscriptionBox(u) : null;
			replace(body,
				sub,
				h('h2', { text: t('plans.plans') }), h('ul', { class: 'cards' }, planCards),
				h('h2', { text: t('plans.packs') }), h('ul', { class: 'cards' }, packCards),
				h('p', { class: 'hint', text: t('plans.stripe_note') }));
		} catch (e) {
			replace(body, errorBox(e, load));
		}
	}

	function subscriptionBox(u) {
		const cancelEnd = h('button', { type: 'button', class: 'btn', text: t('plans.cancel_end') });
		const cancelNow = h('button', { type: 'button', class: 'btn btn-danger', text: t('plans.cancel_now') });
		const done = (s) => {
			replace(msg, notice(s.cancel_at_period_end
				? t('plans.cancelled_end', { date: fmtDate(s.current_period_end, false) }) : t('plans.cancelled_now'), 'ok'));
			load();
		};
		cancelEnd.addEventListener('click', () => action(cancelEnd, async () => done((await post('/api/payments/cancel-subscription', { at_period_end: true })).subscription),
			(e) => replace(msg, notice(errorText(e), 'error'))));
		cancelNow.addEventListener('click', () => {
			if (!confirm(t('plans.cancel_now_confirm'))) return;
			action(cancelNow, async () => done((await post('/api/payments/cancel-subscription', { at_period_end: false })).subscription),
				(e) => replace(msg, notice(errorText(e), 'error')));
		});
		return h('div', { class: 'card sub' },
			h('h2', { text: t('plans.your_subscription') }),
			h('p', null, t(`plan.${u.plan}`), ' · ', badge(t(`sub.${u.subscription_status}`), u.subscription_status === 'past_due' ? 'warn' : 'ok')),
			u.subscription_status === 'past_due' ? notice(t('plans.past_due'), 'warn') : null,
			h('div', { class: 'form-actions' }, cancelEnd, cancelNow));
	}

	load();
}

// /billing/success and /billing/cancel: where Stripe Checkout returns.
// On success the credits or plan arrive by webhook, before or moments
// after the person: poll the profile a while and show the change since
// Checkout began.
export function billingReturn({ outlet, query }) {
	const ok = location.pathname.endsWith('/success');
	const then = kept.get();
	if (!ok) kept.clear();
	const before = then?.session_id === query.get('session_id') ? then : session.getUser();
	const state = h('div', null, ok ? loading(t('billing.waiting')) : null);
	outlet.append(page(ok ? t('billing.success_title') : t('billing.cancel_title'),
		h('p', { class: 'lead', text: ok ? t('billing.success_text') : t('billing.cancel_text') }),
		state,
		h('div', { class: 'form-actions' },
			h('a', { href: '/chat', class: 'btn btn-primary', text: t('billing.to_chat') }),
			h('a', { href: '/credits', class: 'btn', text: t('billing.to_credits') }))));
	if (!ok) return;
	let stopped = false;
	(async () => {
		for (let i = 0; i < 15 && !stopped; i++) {
			try {
				const r = await get('/api/user/profile');
				if (r.user.credits !== before.credits || r.user.plan !== before.plan || r.user.subscription_status !== before.subscription_status) {
					session.setUser(r.user);
					kept.clear();
					replace(state, notice(t('billing.arrived', { credits: fmtNumber(r.user.credits), plan: t(`plan.${r.user.plan}`) }), 'ok'));
					return;
				}
			} catch { /* keep trying */ }
			await new Promise((res) => setTimeout(res, 2000));
		}
		if (!stopped) replace(state, notice(t('billing.slow'), 'info'));
	})();
	return () => { stopped = true; };
}
