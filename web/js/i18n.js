// English and Italian.  The language is the signed-in user's (api.md's
// user.language), else the one chosen on this device, else the browser's.
import en from './strings-en.js';
import it from './strings-it.js';

const TABLES = { en, it };
export const LANGUAGES = [['en', 'English'], ['it', 'Italiano']];
const KEY = 'miky.lang';
let lang = pick(localStorage.getItem(KEY) || navigator.language || 'en');
const listeners = new Set();

function pick(tag) {
	const base = String(tag || '').toLowerCase().slice(0, 2);
	return TABLES[base] ? base : 'en';
}

export function getLang() { return lang; }

export function setLang(tag, remember = true) {
	const next = pick(tag);
	if (remember) localStorage.setItem(KEY, next);
	if (next === lang) return;
	lang = next;
	document.documentElement.lang = lang;
	for (const fn of listeners) fn(lang);
}

export function onLangChange(fn) { listeners.add(fn); return () => listeners.delete(fn); }

// t('key', {name: 'x'}): the string in the current language with {name}
// filled in; the English one when Italian lacks it; the key itself when
// both do (a bug, but visible rather than blank).
export function t(key, vars) {
	let s = TABLES[lang][key] ?? en[key] ?? key;
	if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
	return s;
}

// tn('key', n): the key's .one or .other form.
export function tn(key, n, vars) {
	return t(`${key}.${n === 1 ? 'one' : 'other'}`, { n: fmtNumber(n), ...vars });
}

export function fmtNumber(n) {
	return new Intl.NumberFormat(lang).format(n ?? 0);
}

// Money: the API has integer cents, all in the one currency that
// GET /api/payments/plans names (features.js sets it; the server's default
// until then).
let currency = 'USD';
export function setCurrency(code) {
	if (/^[a-z]{3}$/i.test(code || '')) currency = code.toUpperCase();
}
export function fmtMoney(cents) {
	return new Intl.NumberFormat(lang, { style: 'currency', currency }).format((cents ?? 0) / 100);
}
// currencySymbol(): "$", "€", ... as this language writes it.
export function currencySymbol() {
	return new Intl.NumberFormat(lang, { style: 'currency', currency }).formatToParts(0).find((p) => p.type === 'currency')?.value || currency;
}

export function fmtDate(iso, withTime = true) {
	if (!iso) return '';
	const d = new Date(iso);
	return new Intl.DateTimeFormat(lang, withTime
		? { dateStyle: 'medium', timeStyle: 'short' } : { dateStyle: 'medium' }).format(d);
}

// A short relative form for lists: "14:05" today, else "3 Mar".
export function fmtShort(iso) {
	const d = new Date(iso);
	const now = new Date();
	const same = d.toDateString() === now.toDateString();
	return new Intl.DateTimeFormat(lang, same ? { timeStyle: 'short' } : { day: 'numeric', month: 'short' }).format(d);
}

document.documentElement.lang = lang;
