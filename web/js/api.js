// Calls to the Miky API (api.md).  JSON in and out; errors are ApiError
// with api.md's {code, message, field}.  An authenticated call that gets a
// 401 refreshes the session once and retries; a second 401 signs out.
import * as session from './session.js';

export class ApiError extends Error {
	constructor(status, code, message, field, retryAfter) {
		super(message || code);
		this.status = status;
		this.code = code;
		this.field = field;
		this.retryAfter = retryAfter;
	}
}

// api(method, path, {body, auth = true, signal, raw, contentType}):
// the parsed JSON answer (null for 204), or with raw the Response itself
// once its status is 2xx.
export async function api(method, path, opts = {}) {
	const { body, auth = true, signal, raw = false, contentType, accept } = opts;
	const send = async () => {
		const headers = { Accept: accept || 'application/json' };
		let payload;
		if (body instanceof Blob) {
			payload = body;
			headers['Content-Type'] = contentType || body.type || 'application/octet-stream';
		} else if (body !== undefined) {
			payload = JSON.stringify(body);
			headers['Content-Type'] = 'application/json';
		}
		if (auth) {
			const token = await session.accessToken();
			if (!token) throw new ApiError(401, 'unauthorized', 'Signed out.');
			headers.Authorization = `Bearer ${token}`;
		}
		try {
			return await fetch(path, { method, headers, body: payload, signal, credentials: 'same-origin' });
		} catch (e) {
			if (e.name === 'AbortError') throw e;
			throw new ApiError(0, 'network', e.message);
		}
	};
	let res = await send();
	if (res.status === 401 && auth) {
		await session.refresh().catch(() => {});
		if (!session.hasRefreshToken()) throw await toError(res);
		res = await send();
		if (res.status === 401) {
			session.expire();
			throw await toError(res);
		}
	}
	if (!res.ok) throw await toError(res);
	if (raw) return res;
	if (res.status === 204) return null;
	const type = res.headers.get('Content-Type') || '';
	return type.includes('json') ? res.json() : res.text();
}

async function toError(res) {
	let e = {};
	try { e = (await res.json()).error || {}; } catch { /* not JSON */ }
	return new ApiError(res.status, e.code || `http_${res.status}`, e.message || res.statusText,
		e.field, Number(res.headers.get('Retry-After')) || undefined);
}

export const get = (path, opts) => api('GET', path, opts);
export const post = (path, body, opts) => api('POST', path, { ...opts, body });
export const put = (path, body, opts) => api('PUT', path, { ...opts, body });
export const del = (path, body, opts) => api('DELETE', path, { ...opts, body });

// qs({a: 1, b: null}) is "?a=1" (empty values left out).
export function qs(params) {
	const u = new URLSearchParams();
	for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, v);
	const s = u.toString();
	return s ? `?${s}` : '';
}
