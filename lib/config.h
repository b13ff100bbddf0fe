/*
 * Configuration from the environment, described by one table of settings
 * (name, type, default, bounds, description) in the manner of
 * PostgreSQL's GUC records.  config_load() checks every entry and reports
 * each problem in one clear line, so an operator fixes them all at once.
 */
#ifndef MIKY_CONFIG_H
#define MIKY_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

enum config_type {
	CONFIG_STR,	/* length within [min, max] */
	CONFIG_SECRET,	/* like STR, never printed */
	CONFIG_INT,	/* decimal within [min, max] */
	CONFIG_URL,	/* absolute URL, scheme listed in `schemes` */
};

struct config_var {
	const char	*name;
	enum config_type type;
	const char	*def;		/* default as text; NULL: none */
	long long	 min, max;
	bool		 required;
	const char	*schemes;	/* CONFIG_URL: "http,https" */
	const char	*desc;
	const char	**str;		/* out: STR, SECRET, URL (NULL if unset) */
	long long	*num;		/* out: INT */
};

/*
 * Reads every variable of the table (terminated by a NULL name) from the
 * environment, applies defaults and checks bounds.  Returns the number of
 * problems; each was written to `errs` as one line.
 */
int	config_load(const struct config_var *, FILE *errs);
/*
 * Prints name=value lines for `check-config`: secrets masked, and the
 * password in a URL's user information too.
 */
void	config_dump(const struct config_var *, FILE *);

#endif
