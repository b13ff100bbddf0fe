// Parts of the API that may not exist on this server yet (api.md's
// payments, referral stats and admin areas): each is probed once and its
// screens shown only when it answers.  A 404 (no such route) or 503
// (payments not configured) hides the part.
import { api } from './api.js';

const cache = new Map();

async function probe(name, path, auth) {
	if (!cache.has(name)) {
		cache.set(name, api('GET', path, { auth }).then(() => true, (e) => {
			if (e.status === 404 || e.status === 503 || e.status === 405) return false;
			if (e.status === 0 || e.status >= 500) { cache.delete(name); return false; }
			return true;   // 401/403/400: the route exists
		}));
	}
	return cache.get(name);
}

export const hasPayments = () => probe('payments', '/api/payments/plans', false);
export const hasReferralStats = () => probe('referrals', '/api/referrals/stats', true);
export const hasAdmin = () => probe('admin', '/api/admin/stats', true);

// After a sign-out or a change of user the answers may differ.
export function forget() { cache.delete('referrals'); cache.delete('admin'); }
