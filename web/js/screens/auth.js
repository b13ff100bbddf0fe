// Sign up, check your email, verify, sign in, forgot and reset password.
import { h, announce } from '../dom.js';
import { t, getLang } from '../i18n.js';
import { post, ApiError } from '../api.js';
import * as session from '../session.js';
import { navigate } from '../router.js';
import { page, field, form, notice, errorText, action } from '../ui.js';

const PASSWORD = { minlength: 8, maxlength: 128 };

function card(title, intro, ...children) {
	return h('div', { class: 'auth' },
		h('div', { class: 'auth-card' },
			h('img', { src: '/img/logo.svg', alt: '', class: 'auth-logo', width: 48, height: 48 }),
			page(title, intro ? h('p', { class: 'lead', text: intro }) : null, ...children)));
}

function links(...items) {
	return h('p', { class: 'auth-links' }, items.flatMap((x, i) => (i ? [' · ', x] : [x])));
}
const a = (href, text) => h('a', { href, text });

// The token of a mail link: in the fragment (api.md), or in the query
// (links mailed before the fragment form).  It leaves the address bar at once, so it is neither
// kept in history nor sent anywhere by a later navigation.
function takeToken() {
	const frag = new URLSearchParams(location.hash.slice(1));
	const token = frag.get('token') || new URLSearchParams(location.search).get('token');
	if (token) history.replaceState(null, '', location.pathname);
	return token;
}

export function signup({ query, outlet }) {
	const ref = (query.get('ref') || '').trim().toUpperCase();
	const refNote = h('p', { class: 'hint', role: 'status' });
	const f = form([
		field({ label: t('auth.email'), name: 'email', type: 'email', autocomplete: 'email', required: true }),
		field({ label: t('auth.password'), name: 'password', type: 'password', autocomplete: 'new-password', required: true, ...PASSWORD, hint: t('auth.password_hint') }),
		h('div', { class: 'row' },
			field({ label: t('auth.first_name'), name: 'first_name', autocomplete: 'given-name', required: true, maxlength: 100 }),
			field({ label: t('auth.last_name'), name: 'last_name', autocomplete: 'family-name', required: true, maxlength: 100 })),
		field({ label: t('auth.referral_code'), name: 'referral_code', value: ref, autocomplete: 'off', maxlength: 32, hint: t('auth.referral_hint') }),
		refNote,
	], t('auth.signup_button'), async (v) => {
		const body = { email: v.email.trim(), password: v.password, first_name: v.first_name.trim(), last_name: v.last_name.trim(), language: getLang() };
		const code = v.referral_code.trim().toUpperCase();
		if (code) body.referral_code = code;
		try {
			await post('/api/auth/signup', body, { auth: false });
		} catch (e) {
			if (e.code === 'invalid_referral_code') e.field = 'referral_code';
			throw e;
		}
		sessionStorage.setItem('miky.pending', body.email);
		navigate('/check-email');
	});
	outlet.append(card(t('auth.signup_title'), t('auth.signup_intro'), f,
		links(h('span', null, t('auth.have_account'), ' ', a('/signin', t('auth.signin_link'))))));
	if (ref) {
		post('/api/user/verify-referral', { referral_code: ref }, { auth: false }).then((r) => {
			refNote.textContent = t('auth.invited_by', { name: r.referrer_first_name });
		}, (e) => {
			if (e.code === 'invalid_referral_code') refNote.textContent = t('auth.ref_unknown');
		});
	}
}

export function checkEmail({ outlet }) {
	const email = sessionStorage.getItem('miky.pending') || '';
	const resent = h('p', { role: 'status', class: 'hint' });
	const resend = h('button', { type: 'button', class: 'btn', text: t('auth.resend') });
	resend.addEventListener('click', () => action(resend, async () => {
		await post('/api/auth/resend-verification', { email }, { auth: false });
		resent.textContent = t('auth.resent');
	}, (e) => { resent.textContent = errorText(e); }));
	outlet.append(card(t('auth.check_title'),
		email ? t('auth.check_intro', { email }) : t('auth.check_intro_plain'),
		h('p', { text: t('auth.check_spam') }),
		email ? h('div', { class: 'form-actions' }, resend) : null, resent,
		links(a('/signin', t('auth.signin_link')), a('/signup', t('auth.signup_again')))));
}

export function verify({ outlet }) {
	const token = takeToken();
	if (!token) {
		outlet.append(card(t('auth.verify_title'), null,
			notice(t('auth.link_broken'), 'error'),
			links(a('/signin', t('auth.signin_link')), a('/signup', t('auth.signup_link')))));
		return;
	}
	const f = form([
		field({ label: t('auth.password'), name: 'password', type: 'password', autocomplete: 'current-password', required: true, ...PASSWORD, autofocus: true }),
	], t('auth.verify_button'), async (v) => {
		const answer = await post('/api/auth/verify-email', { token, password: v.password }, { auth: false });
		sessionStorage.removeItem('miky.pending');
		session.begin(answer);
		announce(t('auth.verified'));
		navigate('/chat', { replace: true });
	});
	outlet.append(card(t('auth.verify_title'), t('auth.verify_intro'), f));
}

export function signin({ query, outlet }) {
	const extra = h('div');
	const f = form([
		field({ label: t('auth.email'), name: 'email', type: 'email', autocomplete: 'username', required: true }),
		field({ label: t('auth.password'), name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
	], t('auth.signin_button'), async (v) => {
		extra.replaceChildren();
		try {
			const answer = await post('/api/auth/signin', { email: v.email.trim(), password: v.password }, { auth: false });
			session.begin(answer);
		} catch (e) {
			if (e.code === 'email_not_verified') {
				const b = h('button', { type: 'button', class: 'btn', text: t('auth.resend') });
				b.addEventListener('click', () => action(b, async () => {
					await post('/api/auth/resend-verification', { email: v.email.trim() }, { auth: false });
					sessionStorage.setItem('miky.pending', v.email.trim());
					navigate('/check-email');
				}));
				extra.append(notice(t('error.email_not_verified'), 'warn', b));
				return;
			}
			throw e;
		}
		const next = query.get('next');
		navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/chat', { replace: true });
	});
	const msg = query.get('reason') === 'expired' ? notice(t('auth.expired'), 'warn')
		: query.get('reason') === 'reset' ? notice(t('auth.reset_done'), 'ok') : null;
	outlet.append(card(t('auth.signin_title'), null, msg, extra, f,
		links(a('/forgot-password', t('auth.forgot_link')), a('/signup', t('auth.signup_link')))));
}

export function forgot({ outlet }) {
	const done = h('div');
	const f = form([
		field({ label: t('auth.email'), name: 'email', type: 'email', autocomplete: 'email', required: true }),
	], t('auth.forgot_button'), async (v) => {
		await post('/api/auth/forgot-password', { email: v.email.trim() }, { auth: false });
		f.hidden = true;
		done.append(notice(t('auth.forgot_sent', { email: v.email.trim() }), 'ok'));
	});
	outlet.append(card(t('auth.forgot_title'), t('auth.forgot_intro'), done, f,
		links(a('/signin', t('auth.signin_link')))));
}

export function reset({ outlet }) {
	const token = takeToken();
	if (!token) {
		outlet.append(card(t('auth.reset_title'), null, notice(t('auth.link_broken'), 'error'),
			links(a('/forgot-password', t('auth.forgot_link')))));
		return;
	}
	const f = form([
		field({ label: t('auth.new_password'), name: 'password', type: 'password', autocomplete: 'new-password', required: true, ...PASSWORD, hint: t('auth.password_hint') }),
		field({ label: t('auth.confirm_password'), name: 'confirm', type: 'password', autocomplete: 'new-password', required: true, ...PASSWORD }),
	], t('auth.reset_button'), async (v) => {
		if (v.password !== v.confirm) throw Object.assign(new ApiError(400, 'mismatch', t('auth.mismatch'), 'confirm'));
		await post('/api/auth/reset-password', { token, password: v.password }, { auth: false });
		await session.signOut();
		navigate('/signin?reason=reset', { replace: true });
	});
	outlet.append(card(t('auth.reset_title'), t('auth.reset_intro'), f));
}
