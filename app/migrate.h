/*
 * The schema migrations, compiled into the binary from the schema/ files in
 * name order (see tools/embed.c).
 */
#ifndef MIKY_APP_MIGRATE_H
#define MIKY_APP_MIGRATE_H

#include <stddef.h>

struct schema_file {
	const char	*name;
	const char	*sql;
};

extern const struct schema_file	schema_files[];
extern const size_t		schema_nfiles;

#endif
