// The catalogue of GET /api/payments/plans -- plans, credit packs and the
// currency every amount of the API is in -- fetched once per page load.
// A failure (offline, a 5xx) is not kept: the next caller asks again, and
// meanwhile the screens that sell something say payments are unavailable.
import { get } from './api.js';
import { setCurrency } from './i18n.js';

let catalogue = null;

export function plans() {
	if (!catalogue) {
		catalogue = get('/api/payments/plans', { auth: false }).then((r) => { setCurrency(r.currency); return r; });
		catalogue.catch(() => { catalogue = null; });
	}
	return catalogue;
}

export const hasPayments = () => plans().then(() => true, () => false);
