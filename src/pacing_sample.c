/*-------------------------------------------------------------------------
 *
 * pacing_sample.c
 *	  What the pacer decides from: one look at the server's statistics
 *	  (the cluster's transaction counts, the other sessions at work and
 *	  what they wait on, the standbys' replay lag), handed to
 *	  migrate_pacer_observe (pacing.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "migrate.h"
#include "catalog.h"
#include "pacing.h"

/*
 * migrate_pacer_sample
 *		Look at the server for pacer p; own_xacts and own_xids are the
 *		transactions (and ids) the runner and its team committed so far.
 *
 * Needs a transaction with SPI connected; reads the statistics views as
 * the catalog owner (standbys' lag is only shown to privileged roles).
 * Does nothing if the last sample is recent.
 */
void
migrate_pacer_sample(Pacer *p, int64 own_xacts, int64 own_xids)
{
	TimestampTz now = GetCurrentTimestamp();
	PacerSample s;
	bool		isnull;
	Datum		d;

	if (p->last.at != 0 &&
		!TimestampDifferenceExceeds(p->last.at, now, PACER_SAMPLE_INTERVAL_MS))
		return;

	migrate_server_read("SELECT pg_catalog.count(*), pg_catalog.mode() WITHIN GROUP"
						"   (ORDER BY pg_catalog.concat_ws(':', wait_event_type, wait_event)),"
						" (SELECT pg_catalog.sum(xact_commit OPERATOR(pg_catalog.+) xact_rollback)::pg_catalog.int8"
						"    FROM pg_catalog.pg_stat_database),"
						" (SELECT pg_catalog.max(pg_catalog.date_part('epoch', replay_lag))"
						"    FROM pg_catalog.pg_stat_replication)"
						" FROM pg_catalog.pg_stat_activity"
						" WHERE state OPERATOR(pg_catalog.=) 'active'"
						"   AND backend_type OPERATOR(pg_catalog.=) 'client backend'"
						"   AND pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()"
						"   AND wait_event_type IS DISTINCT FROM 'Extension'"
						"   AND wait_event_type IS DISTINCT FROM 'Timeout'"
						/* a Citus coordinator's lead reading this node's shard migrations */
						"   AND query NOT LIKE 'SELECT migrate.citus\\_node\\_exec(%'",
						 0, NULL, NULL, NULL);
	memset(&s, 0, sizeof(s));
	s.at = now;
	s.active = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	s.cause = isnull ? NULL : TextDatumGetCString(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	s.xacts = isnull ? 0 : DatumGetInt64(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);
	s.replication_lag_s = isnull ? 0 : DatumGetFloat8(d);
	s.xids = (int64) U64FromFullTransactionId(ReadNextFullTransactionId());
	s.own_xacts = own_xacts;
	s.own_xids = own_xids;
	migrate_pacer_observe(p, &s);
}
