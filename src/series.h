/*-------------------------------------------------------------------------
 *
 * series.h
 *	  Series: migrations run one after the other, each started by the
 *	  worker of the one before, on behalf of the role that started the
 *	  series (series.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_SERIES_H
#define MIGRATE_SERIES_H

#include "migrate.h"

/* Most migrations one series may have */
#define MIGRATE_MAX_SERIES			1000

extern void migrate_series_start_next(int64 prev_id, const char *prev_name,
									  Oid prev_owner, List *rest, Oid starter,
									  TimestampTz since);

#endif							/* MIGRATE_SERIES_H */
