#include "sql.h"
#include "app.h"
#include "lib/arena.h"
#include "lib/request.h"

#define S(id, text, n, flags)	[id] = { #id, text, n, flags }

const struct db_stmt sql_stmts[STMT__MAX] = {
	S(STMT_PING, "SELECT 1", 0, DB_RETRY),
};

static void
give_back(void *p)
{
	db_release(p);
}

struct db *
sql_db_or_reply(struct request *r)
{
	struct app_req *ar = app_req(r);
	struct db_err err;

	if (ar->db != NULL)
		return ar->db;
	ar->db = db_acquire(&err);
	if (ar->db == NULL) {
		reply_db_error(r, &err);
		return NULL;
	}
	arena_cleanup(r->arena, give_back, ar->db);
	return ar->db;
}

void
sql_release(struct request *r)
{
	struct app_req *ar = app_req(r);

	if (ar->db != NULL) {
		arena_release(r->arena, ar->db);
		ar->db = NULL;
	}
}

static void
clear(void *p)
{
	PQclear(p);
}

PGresult *
sql_run(struct request *r, enum stmt s, const char *const *params,
    struct db_err *err)
{
	struct db *db = app_req(r)->db;
	PGresult *res;

	if (db == NULL) {
		db = sql_db_or_reply(r);
		if (db == NULL) {
			/* Already answered; tell the caller with a 503. */
			err->status = 503;
			err->code = "unavailable";
			err->message = "The database is unavailable.";
			return NULL;
		}
	}
	res = db_exec(db, s, params, err);
	arena_cleanup(r->arena, clear, res);
	return res;
}

PGresult *
sql_run_or_reply(struct request *r, enum stmt s, const char *const *params)
{
	struct db_err err;
	PGresult *res = sql_run(r, s, params, &err);

	if (res == NULL)
		reply_db_error(r, &err);
	return res;
}

int
sql_begin_or_reply(struct request *r)
{
	struct db *db = sql_db_or_reply(r);
	struct db_err err;

	if (db == NULL)
		return -1;
	if (db_begin(db, &err) != 0) {
		reply_db_error(r, &err);
		return -1;
	}
	return 0;
}

int
sql_commit_or_reply(struct request *r)
{
	struct db_err err;

	if (db_commit(app_req(r)->db, &err) != 0) {
		reply_db_error(r, &err);
		return -1;
	}
	return 0;
}

void
sql_rollback(struct request *r)
{
	if (app_req(r)->db != NULL)
		db_rollback(app_req(r)->db);
}

void
reply_db_error(struct request *r, const struct db_err *err)
{
	if (!r->replied)
		reply_error(r, err->status, err->code, err->message, NULL);
}

const char *
sql_get(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}
