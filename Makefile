# migrate: batched, resumable, exactly-once data migrations for PostgreSQL

MODULE_big = migrate
OBJS = \
	src/api.o \
	src/args.o \
	src/batch.o \
	src/catalog.o \
	src/catalog_ranges.o \
	src/citus.o \
	src/estimate.o \
	src/horizon.o \
	src/keys.o \
	src/launch.o \
	src/migrate.o \
	src/pacing.o \
	src/pacing_sample.o \
	src/preview.o \
	src/ranges.o \
	src/register.o \
	src/replication.o \
	src/replication_decide.o \
	src/revert.o \
	src/runner.o \
	src/runner_lock.o \
	src/schedule.o \
	src/security.o \
	src/series.o \
	src/statements.o \
	src/team.o \
	src/validate.o \
	src/verify.o \
	src/worker.o

EXTENSION = migrate
DATA = sql/migrate--0.1.sql sql/migrate--0.1--0.2.sql sql/migrate--0.2--0.3.sql \
	sql/migrate--0.3--0.4.sql
PGFILEDESC = "migrate - batched background data migrations"

REGRESS = upgrade setup register run control await errors security privileges monitor pacing quarantine revert schedule verify parallel
REGRESS_OPTS = --inputdir=. --outputdir=.

ISOLATION = start-race step-pause-cancel concurrent-writes revert-race split-race partition-detach
ISOLATION_OPTS = --inputdir=test/isolation

TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

# PGXS names the tests' directory in its "+++ tap install-check in ... +++"
# (and regress) lines with subdir, which an extension built outside the
# PostgreSQL tree does not set
subdir = migrate

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

PG_CPPFLAGS += -I$(srcdir)/src

# the TAP tests' own module (test/perl/MigrateTest.pm)
PROVE_FLAGS += -I $(srcdir)/test/perl

# every source file includes the shared header
$(OBJS): $(wildcard src/*.h)

# the pacer's decisions against made-up workloads, outside the server, in
# milliseconds (test/unit/pacer_test.c)
test/unit/pacer_test: test/unit/pacer_test.c test/unit/pacer_stubs.c src/pacing.c src/pacing.h src/migrate.h
	$(CC) $(CFLAGS) -I$(srcdir)/src $(CPPFLAGS) -o $@ $(srcdir)/test/unit/pacer_test.c \
		$(srcdir)/test/unit/pacer_stubs.c $(srcdir)/src/pacing.c -L$(pkglibdir) -lpgport -lm

# the replication holds' decisions against made-up standbys and slots
# (test/unit/replication_test.c)
test/unit/replication_test: test/unit/replication_test.c src/replication_decide.c src/replication.h
	$(CC) $(CFLAGS) -I$(srcdir)/src $(CPPFLAGS) -o $@ $(srcdir)/test/unit/replication_test.c \
		$(srcdir)/src/replication_decide.c -L$(pkglibdir) -lpgport -lm

.PHONY: unitcheck
unitcheck: test/unit/pacer_test test/unit/replication_test
	test/unit/pacer_test
	test/unit/replication_test

# TAP tests alone (they need a non-root user: see test/run-tests.sh)
tapcheck:
	$(prove_installcheck)

EXTRA_CLEAN = results regression.diffs regression.out output_iso tmp_check log test/unit/pacer_test test/unit/replication_test

# the PGXN release zip of what HEAD holds: migrate-<META.json's version>.zip
DIST_VERSION = $(shell perl -MJSON::PP -0777 -ne 'print decode_json($$_)->{version}' $(srcdir)/META.json)
.PHONY: dist
dist:
	git -C $(srcdir) archive --format=zip --prefix=migrate-$(DIST_VERSION)/ -o $(CURDIR)/migrate-$(DIST_VERSION).zip HEAD
	@echo migrate-$(DIST_VERSION).zip
