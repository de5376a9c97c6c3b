#!/bin/bash
# Check that the release metadata name the version migrate.control installs:
# META.json's version and provides.migrate.version (PGXN wants x.y.z, so
# default_version '0.3' is 0.3.0 there) and debian/changelog's upstream
# version (0.3, 0.3~dev or 0.3.0, with or without a Debian revision).
# Fails, naming the file, when one differs.
set -euo pipefail
cd "$(dirname "$0")/.."

control=$(sed -n "s/^default_version = '\([^']*\)'$/\1/p" migrate.control)
[ -n "$control" ] || { echo "versions: no default_version in migrate.control" >&2; exit 1; }
semver=$control
[[ $semver =~ ^[0-9]+\.[0-9]+$ ]] && semver=$semver.0

meta=$(perl -MJSON::PP -0777 -ne '$m = decode_json($_);
    print "$m->{version} $m->{provides}{migrate}{version}\n"' META.json)
deb=$(dpkg-parsechangelog -l debian/changelog -S Version 2>/dev/null ||
      sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' debian/changelog)
deb=${deb%-*}                   # no Debian revision
deb=${deb%%~*}                  # 0.3~dev is a 0.3 before its release

status=0
for v in $meta; do
    [ "$v" = "$semver" ] || { echo "versions: META.json says $v, migrate.control $control (want $semver)" >&2; status=1; }
done
[ "$deb" = "$control" ] || [ "$deb" = "$semver" ] ||
    { echo "versions: debian/changelog says $deb, migrate.control $control" >&2; status=1; }
[ $status -eq 0 ] && echo "versions: META.json, debian/changelog and migrate.control agree on $control"
exit $status
