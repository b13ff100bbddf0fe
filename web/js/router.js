// Screens by path, with the History API.  A screen is
//   render({params, query, outlet}) -> optional cleanup function
// and declares who may see it: 'user' (signed in), 'guest' (signed out;
// a signed-in visitor goes to /chat) or 'any'.  Links with data-link (or
// any same-origin <a> without target) navigate without a reload; after a
// navigation the new screen's heading gets the focus, for screen readers
// and keyboards.
import { isSignedIn } from './session.js';

const routes = [];
let outlet;
let cleanup = null;
let current = null;
let fallback = '/';
let onRender = () => {};

export function route(pattern, access, render) {
	const keys = [];
	const re = new RegExp('^' + pattern.replace(/:(\w+)/g, (_, k) => { keys.push(k); return '([^/]+)'; }) + '/?$');
	routes.push({ re, keys, access, render, pattern });
}

export function navigate(path, { replace = false } = {}) {
	if (replace) history.replaceState(null, '', path);
	else history.pushState(null, '', path);
	return render();
}

// setPath(path): change the address bar without rendering (a new
// conversation that got its id while streaming).
export function setPath(path) { history.replaceState(null, '', path); }

export function currentPattern() { return current?.pattern; }

export function start(el, { notFound, after }) {
	outlet = el;
	fallback = notFound;
	onRender = after || onRender;
	window.addEventListener('popstate', () => render());
	document.addEventListener('click', (e) => {
		const a = e.target.closest?.('a');
		if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
		if (a.target || a.hasAttribute('download') || a.origin !== location.origin) return;
		if (a.pathname.startsWith('/api/')) return;
		e.preventDefault();
		if (a.pathname + a.search + a.hash !== location.pathname + location.search + location.hash) navigate(a.pathname + a.search + a.hash);
	});
	return render();
}

export async function render() {
	const path = location.pathname;
	let m = null;
	let r = routes.find((x) => (m = x.re.exec(path)));
	if (!r) { r = { render: fallback, access: 'any' }; m = []; }
	if (r.access === 'user' && !isSignedIn()) {
		const next = path + location.search;
		history.replaceState(null, '', `/signin${next === '/' ? '' : `?next=${encodeURIComponent(next)}`}`);
		return render();
	}
	if (r.access === 'guest' && isSignedIn()) {
		history.replaceState(null, '', '/chat');
		return render();
	}
	if (cleanup) { try { cleanup(); } catch { /* ignore */ } cleanup = null; }
	const params = {};
	r.keys?.forEach((k, i) => { params[k] = decodeURIComponent(m[i + 1]); });
	const first = current === null;
	const token = ++renders;
	current = r;
	outlet.replaceChildren();
	const ret = await r.render({ params, query: new URLSearchParams(location.search), outlet });
	if (token !== renders) {
		// Another navigation came while this screen was loading.
		if (typeof ret === 'function') ret();
		return;
	}
	if (typeof ret === 'function') cleanup = ret;
	onRender(r);
	focusHeading(!first);
}
let renders = 0;

// focusHeading(focus): the title from the screen's <h1>, which also gets
// the focus after a navigation.
export function focusHeading(focus = true) {
	const h1 = outlet.querySelector('h1');
	if (!h1) return;
	document.title = `${h1.textContent} · Miky`;
	if (focus) {
		h1.tabIndex = -1;
		h1.focus();
	}
}
