#!/bin/sh
# test/citus-build.sh: build and install Citus from a source tarball into the
# PostgreSQL that PG_CONFIG names, for the Citus TAP tests (test/t/05x_citus_*.pl).
#
#   test/citus-build.sh [SOURCE] [PG_CONFIG]
#
# SOURCE defaults to $MIGRATE_CITUS_SOURCE, PG_CONFIG to $PG_CONFIG or
# pg_config.  With no source (unset or missing file) it says so and exits 0:
# the Citus tests then skip.  When the PostgreSQL already has citus.so and a
# citus.control of the tarball's default_version, nothing is built (exit 0).
# Needs the build dependencies (Debian 12: libcurl4-openssl-dev liblz4-dev
# libzstd-dev libkrb5-dev libssl-dev) and the rights to write into the
# PostgreSQL's directories (run as root for a system PostgreSQL).
#
# PostgreSQL 15.20 and later 15.x export have_createdb_privilege(), which
# Citus 13 defines again for versions before 16: the build renames Citus's
# copy (one #define, see ../shared/deps/README.md).
set -eu

src=${1:-${MIGRATE_CITUS_SOURCE:-}}
pgc=${2:-${PG_CONFIG:-pg_config}}

if [ -z "$src" ] || [ ! -f "$src" ]; then
	echo "citus-build: no Citus source (MIGRATE_CITUS_SOURCE='${src}'): nothing built, the Citus tests will skip"
	exit 0
fi

pkglibdir=$("$pgc" --pkglibdir)
sharedir=$("$pgc" --sharedir)
work=$(mktemp -d "${TMPDIR:-/tmp}/citus-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

tar -xzf "$src" -C "$work"
dir=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n 1)
want=$(sed -n "s/^default_version *= *'\(.*\)'.*/\1/p" "$dir/src/backend/distributed/citus.control")

have=""
if [ -f "$pkglibdir/citus.so" ] && [ -f "$sharedir/extension/citus.control" ]; then
	have=$(sed -n "s/^default_version *= *'\(.*\)'.*/\1/p" "$sharedir/extension/citus.control")
fi
if [ -n "$want" ] && [ "$have" = "$want" ]; then
	echo "citus-build: Citus $have already installed in $pkglibdir: nothing to do"
	exit 0
fi

# its build dependencies from Debian's packages, when run as root
if [ "$(id -u)" = 0 ] && command -v dpkg >/dev/null; then
	missing=""
	for p in libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev libssl-dev; do
		dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "citus-build: installing$missing"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
	fi
fi

compat="$dir/src/include/pg_version_compat.h"
if grep -q '^have_createdb_privilege(void)' "$compat" &&
	! grep -q 'citus_compat_have_createdb_privilege' "$compat"; then
	# rename Citus's own copy (static inline, PostgreSQL < 16) so that it
	# does not clash with the one 15.20 exports
	perl -0pi -e 's/(static inline bool\n)(have_createdb_privilege\(void\))/#define have_createdb_privilege citus_compat_have_createdb_privilege\n$1$2/' "$compat"
fi

echo "citus-build: building Citus $want from $src for $("$pgc" --version) (a few minutes)"
cd "$dir"
./configure -q PG_CONFIG="$pgc" >"$work/configure.log" 2>&1 || { tail -n 30 "$work/configure.log"; exit 1; }
make -s -j"${CITUS_BUILD_JOBS:-2}" >"$work/make.log" 2>&1 || { tail -n 40 "$work/make.log"; exit 1; }
make -s install >"$work/install.log" 2>&1 || { tail -n 30 "$work/install.log"; exit 1; }
echo "citus-build: Citus $want installed into $pkglibdir"
