#include <stdio.h>
#include <stdlib.h>

#include "jsonw.h"

void
jw_init(struct jw *w, struct buf *b)
{
	w->b = b;
	w->depth = 0;
	w->after_key = false;
	w->comma[0] = false;
}

/* Emits the separator a new value needs at the current position. */
static void
value_prefix(struct jw *w)
{
	if (w->after_key)
		w->after_key = false;
	else if (w->comma[w->depth])
		buf_putc(w->b, ',');
	w->comma[w->depth] = true;
}

static void
open(struct jw *w, char c, char close)
{
	value_prefix(w);
	buf_putc(w->b, c);
	if (w->depth + 1 >= JW_MAXDEPTH)
		abort();	/* a programming error, not input */
	w->comma[++w->depth] = false;
	w->close[w->depth] = close;
}

void
jw_obj(struct jw *w)
{
	open(w, '{', '}');
}

void
jw_arr(struct jw *w)
{
	open(w, '[', ']');
}

void
jw_end(struct jw *w)
{
	buf_putc(w->b, w->close[w->depth--]);
}

void
jw_key(struct jw *w, const char *k)
{
	if (w->comma[w->depth])
		buf_putc(w->b, ',');
	w->comma[w->depth] = true;
	buf_json_str(w->b, k);
	buf_putc(w->b, ':');
	w->after_key = true;
}

void
jw_str(struct jw *w, const char *s)
{
	value_prefix(w);
	buf_json_str(w->b, s);
}

void
jw_strn(struct jw *w, const char *s, size_t n)
{
	value_prefix(w);
	buf_json_strn(w->b, s, n);
}

void
jw_int(struct jw *w, long long v)
{
	value_prefix(w);
	buf_printf(w->b, "%lld", v);
}

void
jw_bool(struct jw *w, bool v)
{
	value_prefix(w);
	buf_puts(w->b, v ? "true" : "false");
}

void
jw_null(struct jw *w)
{
	value_prefix(w);
	buf_puts(w->b, "null");
}

void
jw_raw(struct jw *w, const char *json)
{
	value_prefix(w);
	buf_puts(w->b, json);
}

void
jw_kstr(struct jw *w, const char *k, const char *v)
{
	jw_key(w, k);
	jw_str(w, v);
}

void
jw_kint(struct jw *w, const char *k, long long v)
{
	jw_key(w, k);
	jw_int(w, v);
}

void
jw_kbool(struct jw *w, const char *k, bool v)
{
	jw_key(w, k);
	jw_bool(w, v);
}

void
jw_knull(struct jw *w, const char *k)
{
	jw_key(w, k);
	jw_null(w);
}

void
jw_kraw(struct jw *w, const char *k, const char *json)
{
	jw_key(w, k);
	jw_raw(w, json);
}

void
jw_kobj(struct jw *w, const char *k)
{
	jw_key(w, k);
	jw_obj(w);
}

void
jw_karr(struct jw *w, const char *k)
{
	jw_key(w, k);
	jw_arr(w);
}
