/*
 * The map of the API: one row per endpoint, and the dispatcher that runs
 * the checks every request goes through, once and in this order:
 * route (404/405) -> query -> path ids -> body size (413) -> auth
 * (401/403) -> content type (415) -> JSON parse and validation (400) ->
 * handler.  Handlers never repeat these checks.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "chat.h"
#include "config.h"
#include "events.h"
#include "session.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/router.h"
#include "lib/xalloc.h"

#define KB	1024
#define MB	(1024 * 1024)

static const struct route routes[] = {
	/* method, pattern, handler, access, body limit, body spec */
	{ "POST", "/api/auth/signup", auth_signup, PUBLIC, 64 * KB,
	    auth_signup_in },
	{ "POST", "/api/auth/verify-email", auth_verify_email, PUBLIC, 64 * KB,
	    auth_verify_in },
	{ "POST", "/api/auth/resend-verification", auth_resend_verification,
	    PUBLIC, 64 * KB, auth_email_in },
	{ "POST", "/api/auth/signin", auth_signin, PUBLIC, 64 * KB,
	    auth_signin_in },
	{ "POST", "/api/auth/forgot-password", auth_forgot_password, PUBLIC,
	    64 * KB, auth_email_in },
	{ "POST", "/api/auth/reset-password", auth_reset_password, PUBLIC,
	    64 * KB, auth_reset_in },
	{ "POST", "/api/auth/refresh-token", auth_refresh_token, PUBLIC,
	    64 * KB, auth_refresh_in },
	{ "POST", "/api/auth/logout", auth_logout, PUBLIC, 64 * KB,
	    auth_logout_in },

	{ "GET", "/api/user/profile", user_profile, USER, 0, NULL },
	{ "PUT", "/api/user/profile", user_profile_update, USER, 64 * KB,
	    user_profile_in },
	{ "GET", "/api/user/credits", user_credits, USER, 0, NULL },
	{ "POST", "/api/user/verify-referral", user_verify_referral, PUBLIC,
	    64 * KB, user_referral_in },
	{ "POST", "/api/user/change-password", user_change_password, USER,
	    64 * KB, user_password_in },
	{ "GET", "/api/user/export", user_export, USER, 0, NULL },
	{ "DELETE", "/api/user", user_delete, USER, 64 * KB, user_delete_in },

	{ "GET", "/api/personas", personas_list, PUBLIC, 0, NULL },
	{ "GET", "/api/conversations", conv_list, USER, 0, NULL },
	{ "POST", "/api/conversations", conv_create, USER, 64 * KB,
	    conv_create_in },
	{ "GET", "/api/conversations/:id", conv_get, USER, 0, NULL },
	{ "PUT", "/api/conversations/:id", conv_update, USER, 64 * KB,
	    conv_update_in },
	{ "DELETE", "/api/conversations/:id", conv_delete, USER, 0, NULL },
	{ "POST", "/api/conversations/:id/messages", chat_message, USER,
	    256 * KB, chat_message_in },
	{ "POST", "/api/chat/send", chat_send, USER, 256 * KB, chat_send_in },
	{ "POST", "/api/chat/voice-to-text", chat_voice, USER, 25 * MB, NULL },

	{ "GET", "/api/payments/plans", payments_plans, PUBLIC, 0, NULL },
	{ "POST", "/api/payments/create-subscription",
	    payments_create_subscription, USER, 64 * KB, payments_plan_in },
	{ "POST", "/api/payments/update-subscription",
	    payments_update_subscription, USER, 64 * KB, payments_plan_in },
	{ "POST", "/api/payments/cancel-subscription",
	    payments_cancel_subscription, USER, 64 * KB, payments_cancel_in },
	{ "POST", "/api/payments/buy-credits", payments_buy_credits, USER,
	    64 * KB, payments_pack_in },
	{ "GET", "/api/payments/transactions", payments_transactions, USER, 0,
	    NULL },
	/* Stripe-signed raw bytes: no JSON spec, no content-type rule. */
	{ "POST", "/api/payments/webhook", payments_webhook, PUBLIC, 1 * MB,
	    NULL },

	{ "GET", "/api/referrals/stats", referrals_stats, USER, 0, NULL },
	{ "GET", "/api/referrals/share-link", referrals_share_link, USER, 0,
	    NULL },
	{ "POST", "/api/referrals/cashout", referrals_cashout, USER, 64 * KB,
	    referrals_cashout_in },

	{ "GET", "/api/admin/stats", admin_stats, ADMIN, 0, NULL },
	{ "GET", "/api/admin/users", admin_users, ADMIN, 0, NULL },
	{ "PUT", "/api/admin/users/:id", admin_user_update, ADMIN, 64 * KB,
	    admin_user_in },
	{ "GET", "/api/admin/conversations", admin_conversations, ADMIN, 0,
	    NULL },
	{ "GET", "/api/admin/transactions", admin_transactions, ADMIN, 0,
	    NULL },
	{ "PUT", "/api/admin/transactions/:id", admin_transaction_update,
	    ADMIN, 64 * KB, admin_tx_in },
	{ "GET", "/api/admin/settings", admin_settings_get, ADMIN, 0, NULL },
	/* Ten personas' system prompts may take 200,000 characters. */
	{ "PUT", "/api/admin/settings", admin_settings_put, ADMIN, 512 * KB,
	    admin_settings_in },

	{ "GET", "/api/health", ops_health, PUBLIC, 0, NULL },
	{ "GET", "/api/metrics", ops_metrics, PUBLIC, 0, NULL },
};

#define NROUTES	(sizeof(routes) / sizeof(routes[0]))

/* Routes whose reads go with the user's row (sql_prefetch()). */
static const struct {
	void	(*handler)(struct request *);
	void	(*prefetch)(struct request *, const char *);
} prefetches[] = {
	{ conv_list, conv_list_prefetch },
	{ conv_get, conv_get_prefetch },
};

static struct router	*router;
static const char	*route_names[NROUTES];
static void		(*prefetch_of[NROUTES])(struct request *, const char *);

int
routes_init(void)
{
	size_t i, k;

	admin_settings_init();
	for (i = 0; i < NROUTES; i++)
		for (k = 0; k < sizeof(prefetches) / sizeof(prefetches[0]); k++)
			if (routes[i].handler == prefetches[k].handler)
				prefetch_of[i] = prefetches[k].prefetch;
	router = router_new(routes, NROUTES);
	for (i = 0; i < NROUTES; i++)
		route_names[i] = xasprintf("%s %s", routes[i].method,
		    routes[i].pattern);
	if (metrics_init(route_names, NROUTES) != 0)
		return -1;
	return events_init();
}

/* True if origin is listed in CORS_ORIGINS (comma-separated). */
static bool
cors_allowed(const char *origin)
{
	const char *p = conf.cors_origins, *comma;
	size_t n, len = strlen(origin);

	while (p != NULL && *p != '\0') {
		while (*p == ' ')
			p++;
		comma = strchr(p, ',');
		n = comma != NULL ? (size_t)(comma - p) : strlen(p);
		while (n > 0 && p[n - 1] == ' ')
			n--;
		if (n == len && strncmp(p, origin, n) == 0)
			return true;
		p = comma != NULL ? comma + 1 : NULL;
	}
	return false;
}

/* Adds CORS headers for an allowed cross-origin caller; true if added. */
static bool
cors(struct request *r)
{
	const char *origin = req_param(r, "HTTP_ORIGIN");

	if (origin == NULL || !cors_allowed(origin))
		return false;
	req_add_header(r, "Access-Control-Allow-Origin", origin);
	req_add_header(r, "Vary", "Origin");
	req_add_header(r, "Access-Control-Expose-Headers",
	    "X-Request-Id, Retry-After");
	return true;
}

static void
preflight(struct request *r, const char *allow)
{
	if (cors(r)) {
		req_add_header(r, "Access-Control-Allow-Methods", allow);
		req_add_header(r, "Access-Control-Allow-Headers",
		    "Authorization, Content-Type, Accept");
		req_add_header(r, "Access-Control-Max-Age", "600");
	}
	req_add_header(r, "Allow", allow);
	reply_empty(r, 204);
}

/* Reads, parses and validates the JSON body against the route's spec. */
static int
json_body_or_reply(struct request *r)
{
	struct jerror err;
	cJSON *root;

	if (r->content_length > 0 &&
	    !req_content_type_is(r, "application/json")) {
		reply_error(r, 415, "unsupported_media_type",
		    "The body must be application/json.", NULL);
		return -1;
	}
	if (req_read_body(r) != 0) {
		reply_error(r, 400, "invalid_json",
		    "The request body is incomplete.", NULL);
		return -1;
	}
	/* No body at all is an empty object: required fields are named. */
	root = json_parse(r->arena, r->body_len > 0 ? r->body : "{}",
	    r->body_len > 0 ? r->body_len : 2, &err);
	if (root == NULL ||
	    json_validate(r->arena, root, r->route->spec, r->in, &err) != 0) {
		reply_error(r, 400, err.code, err.message, err.field);
		return -1;
	}
	return 0;
}

static int
params_ok(struct request *r)
{
	size_t i;

	for (i = 0; i < ROUTE_MAX_PARAMS && r->params[i] != NULL; i++)
		if (!json_uuid_ok(r->params[i]))
			return 0;
	return 1;
}

void
app_handle(struct request *r)
{
	struct app_req ar = { 0 };
	char allow[64];
	const struct route *rt;
	int i;

	r->app = &ar;
	i = r->path_ok ? router_match(router, r->method, r->segs, r->nsegs,
	    r->params, allow, sizeof(allow)) : ROUTER_NOT_FOUND;
	if (i == ROUTER_BAD_METHOD && strcmp(r->method, "OPTIONS") == 0) {
		preflight(r, allow);
		return;
	}
	cors(r);
	if (i == ROUTER_NOT_FOUND) {
		reply_error(r, 404, "not_found", "No such endpoint.", NULL);
		return;
	}
	if (i == ROUTER_BAD_METHOD) {
		req_add_header(r, "Allow", allow);
		reply_error(r, 405, "method_not_allowed",
		    "This endpoint does not take that method.", NULL);
		return;
	}
	rt = r->route = &routes[i];
	r->route_index = i;
	log_set_context(r->request_id, rt->pattern);
	if (!r->query_ok) {
		reply_error(r, 400, "invalid_input",
		    "The query string is malformed.", NULL);
		return;
	}
	if (!params_ok(r)) {
		reply_error(r, 404, "not_found", "No such resource.", NULL);
		return;
	}
	/* Checked before a byte is read; routes without a body ignore it. */
	if (rt->body_limit > 0 && r->content_length >
	    (long long)rt->body_limit) {
		reply_error(r, 413, "payload_too_large", arena_printf(r->arena,
		    "The request body is too large: at most %zu KiB here.",
		    rt->body_limit / KB), NULL);
		return;
	}
	ar.prefetch = prefetch_of[i];
	if (rt->access != PUBLIC &&
	    session_auth_or_reply(r, (enum access)rt->access) != 0)
		return;
	if (rt->spec != NULL && json_body_or_reply(r) != 0)
		return;
	rt->handler(r);
}
