// The signed-in session.  The access token lives only in memory; the
// refresh token is kept in localStorage so a reload stays signed in, and
// is rotated on every refresh (api.md: a spent one is refused and ends the
// whole session family).  Tabs share it: a refresh runs under a Web Lock
// and re-reads the stored token inside it, so two tabs never spend the
// same one; signing out in one tab signs out the others.

const KEY = 'miky.refresh';
let access = null;
let accessUntil = 0;      // ms epoch; refreshed a little before
let user = null;
let refreshing = null;    // the refresh in flight in this tab
const listeners = new Set();

export function getUser() { return user; }
export function isSignedIn() { return !!user; }
export function hasRefreshToken() { return !!localStorage.getItem(KEY); }

export function onSessionChange(fn) { listeners.add(fn); return () => listeners.delete(fn); }
function emit(why) { for (const fn of listeners) fn(user, why); }

// setUser(u): a new user object from the API (profile, verify, sign-in).
export function setUser(u, why = 'user') {
	user = u;
	emit(why);
}

// setCredits(n): the balance after a turn, a transcription, a purchase.
export function setCredits(n) {
	if (!user || typeof n !== 'number') return;
	user = { ...user, credits: n };
	emit('credits');
}

// begin(answer): an answer of verify-email or sign-in.
export function begin(answer) {
	storeTokens(answer);
	setUser(answer.user, 'signin');
}

function storeTokens({ access_token, refresh_token, expires_in }) {
	access = access_token;
	accessUntil = Date.now() + Math.max(30, (expires_in ?? 900) - 60) * 1000;
	if (refresh_token) localStorage.setItem(KEY, refresh_token);
}

// accessToken() is a usable access token, refreshed when it is about to
// expire; null when signed out.
export async function accessToken() {
	if (access && Date.now() < accessUntil) return access;
	if (!hasRefreshToken()) return null;
	await refresh();
	return access;
}

// refresh() rotates the refresh token for a new access token.  A refused
// token (spent, revoked, expired) signs out; a network failure does not.
export function refresh() {
	if (!refreshing) {
		const run = () => doRefresh();
		refreshing = (navigator.locks ? navigator.locks.request('miky-refresh', run) : run())
			.finally(() => { refreshing = null; });
	}
	return refreshing;
}

async function doRefresh() {
	const token = localStorage.getItem(KEY);
	if (!token) { end('expired'); return; }
	let res;
	try {
		res = await fetch('/api/auth/refresh-token', {
			method: 'POST',
			headers: { 'Content-Type': 'application/json' },
			body: JSON.stringify({ refresh_token: token }),
			credentials: 'same-origin',
		});
	} catch (e) {
		// Offline: the session stays; the caller reports a network error.
		throw Object.assign(new Error(e.message), { status: 0, code: 'network' });
	}
	if (res.ok) {
		storeTokens(await res.json());
		return;
	}
	if (res.status === 401 || res.status === 400) {
		end('expired');
		return;
	}
	throw Object.assign(new Error(`refresh: ${res.status}`), { status: res.status, code: `http_${res.status}` });
}

// forget() drops the session here (after logout, or when refused).
function end(why) {
	access = null;
	accessUntil = 0;
	localStorage.removeItem(KEY);
	if (user) {
		user = null;
		emit(why);
	}
}

export async function signOut(all = false) {
	const token = localStorage.getItem(KEY);
	const bearer = all ? await accessToken().catch(() => null) : null;
	if (token) {
		// Best effort: the session ends here whatever the server says.
		await fetch('/api/auth/logout', {
			method: 'POST',
			headers: { 'Content-Type': 'application/json', ...(bearer ? { Authorization: `Bearer ${bearer}` } : {}) },
			body: JSON.stringify(all ? { refresh_token: token, all: true } : { refresh_token: token }),
		}).catch(() => {});
	}
	end('signout');
}

export function expire() { end('expired'); }

// Another tab signed out (or in as someone else): follow it.
window.addEventListener('storage', (e) => {
	if (e.key !== KEY) return;
	if (!e.newValue) end('signout');
});
