// Miky's web app: the shell (top bar with the balance) and the screens.
import { h, replace } from './dom.js';
import { t, tn, setLang, getLang, onLangChange, LANGUAGES } from './i18n.js';
import { get } from './api.js';
import * as session from './session.js';
import * as features from './features.js';
import { route, start, navigate, render, currentPattern } from './router.js';
import * as auth from './screens/auth.js';
import { chat } from './screens/chat.js';
import { profile, credits } from './screens/account.js';
import { plans, billingReturn } from './screens/billing.js';
import { referrals } from './screens/referrals.js';
import { admin } from './screens/admin.js';
import { page } from './ui.js';

// An invitation link may be the bare site with ?ref=: it leads to sign-up.
route('/', 'any', ({ query }) => navigate(session.isSignedIn() ? '/chat'
	: query.get('ref') ? `/signup?ref=${encodeURIComponent(query.get('ref'))}` : '/signin', { replace: true }));
route('/signup', 'guest', auth.signup);
route('/check-email', 'guest', auth.checkEmail);
route('/verify-email', 'any', auth.verify);
route('/signin', 'guest', auth.signin);
route('/forgot-password', 'guest', auth.forgot);
route('/reset-password', 'any', auth.reset);
route('/chat', 'user', chat);
route('/chat/new', 'user', chat);
route('/chat/:id', 'user', chat);
route('/profile', 'user', profile);
route('/credits', 'user', credits);
route('/plans', 'user', plans);
route('/billing/success', 'user', billingReturn);
route('/billing/cancel', 'user', billingReturn);
route('/invite', 'user', referrals);
route('/admin', 'user', admin);
route('/admin/:tab', 'user', admin);

function notFound({ outlet }) {
	outlet.append(page(t('nf.title'), h('p', { text: t('nf.text') }), h('a', { href: '/', class: 'btn', text: t('nf.home') })));
}

// --- the top bar ----------------------------------------------------------
const topbar = document.getElementById('topbar');
let navExtras = { payments: false };

function link(href, text, pattern) {
	const here = currentPattern() && (currentPattern() === pattern || currentPattern().startsWith(`${pattern}/`));
	return h('li', null, h('a', { href, text, 'aria-current': here ? 'page' : null }));
}

function renderTopbar() {
	const user = session.getUser();
	const brand = h('a', { href: '/', class: 'brand', 'aria-label': t('nav.home') },
		h('img', { src: '/img/logo.svg', alt: '', width: 28, height: 28 }), h('span', { text: 'Miky' }));
	if (!user) {
		const sel = h('select', { id: 'lang-select', 'aria-label': t('nav.language') },
			LANGUAGES.map(([v, l]) => h('option', { value: v, text: l, selected: v === getLang() })));
		sel.addEventListener('change', () => setLang(sel.value));
		replace(topbar, h('div', { class: 'topbar-inner' }, brand, h('div', { class: 'topbar-end' }, sel)));
		return;
	}
	const nav = h('nav', { 'aria-label': t('nav.main') }, h('ul', null,
		link('/chat', t('nav.chat'), '/chat'),
		link('/credits', t('nav.credits'), '/credits'),
		navExtras.payments ? link('/plans', t('nav.plans'), '/plans') : null,
		link('/invite', t('nav.invite'), '/invite'),
		user.role === 'admin' ? link('/admin', t('nav.admin'), '/admin') : null,
		link('/profile', t('nav.profile'), '/profile')));
	const balance = h('a', { href: '/credits', class: 'balance', id: 'balance', dataset: { credits: user.credits },
		'aria-label': tn('nav.balance_label', user.credits) },
	h('span', { class: 'coin', 'aria-hidden': 'true' }), h('span', { class: 'balance-n', text: new Intl.NumberFormat(getLang()).format(user.credits) }));
	const out = h('button', { type: 'button', class: 'btn btn-ghost btn-small', text: t('nav.signout') });
	out.addEventListener('click', async () => { await session.signOut(); });
	replace(topbar, h('div', { class: 'topbar-inner' }, brand, nav, h('div', { class: 'topbar-end' }, balance, out)));
}

async function detectFeatures() {
	navExtras = { payments: await features.hasPayments() };
	renderTopbar();
}

// --- session and language ---------------------------------------------------
session.onSessionChange((user, why) => {
	if (user?.language && user.language !== getLang()) setLang(user.language, true);
	if (why === 'credits') {
		const b = document.getElementById('balance');
		if (b && user) {
			b.dataset.credits = user.credits;
			b.querySelector('.balance-n').textContent = new Intl.NumberFormat(getLang()).format(user.credits);
			b.setAttribute('aria-label', tn('nav.balance_label', user.credits));
			b.classList.remove('bump');
			void b.offsetWidth;
			b.classList.add('bump');
			return;
		}
	}
	renderTopbar();
	if (why === 'signin' || why === 'user') detectFeatures();
	if (why === 'expired') navigate(`/signin?reason=expired&next=${encodeURIComponent(location.pathname)}`, { replace: true });
	if (why === 'signout') navigate('/signin', { replace: true });
});
onLangChange(() => { renderTopbar(); render(); });

async function boot() {
	// The catalogue (with the currency of every amount) while the profile loads.
	const payments = features.hasPayments();
	if (session.hasRefreshToken()) {
		try {
			const r = await get('/api/user/profile');
			session.setUser(r.user, 'boot');
		} catch { /* signed out, or offline: the sign-in screen says so */ }
	}
	navExtras = { payments: await payments };
	renderTopbar();
	await start(document.getElementById('main'), { notFound, after: renderTopbar });
	document.body.classList.add('ready');
}

boot();
