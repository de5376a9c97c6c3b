# What the benchmark's scripts (bloat.sh, tpcb.sh) share; they source it
# after setting BIN, PORT, OUT and top:
#
#   bench_build            install the dependencies, build and install
#                          migrate (unless SKIP_BUILD=1)
#   bench_cluster NAME LINE...
#                          make and start a throw-away cluster in $data,
#                          with shared_preload_libraries = 'migrate' and
#                          each LINE in its postgresql.conf; it is stopped
#                          and removed when the script exits, after
#                          bench_before_stop (a script may redefine it)
#   as_pg CMD...           run CMD as postgres

as_pg() { runuser -u postgres -- "$@"; }

bench_build() {
    [ "${SKIP_BUILD:-0}" = 1 ] && return
    bash "$top/test/install-deps.sh" test
    make -s -C "$top" PG_CONFIG="$BIN/pg_config"
    make -s -C "$top" install PG_CONFIG="$BIN/pg_config" >/dev/null
}

bench_before_stop() { :; }

bench_cleanup() {
    bench_before_stop
    as_pg "$BIN/pg_ctl" -D "$data/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$data"
}

bench_cluster() {
    local name=$1 line
    shift
    mkdir -p "$OUT"
    data=$(mktemp -d "/tmp/migrate-$name-data.XXXXXX")
    chown postgres "$data" "$OUT"
    trap bench_cleanup EXIT
    as_pg "$BIN/initdb" -D "$data/pg" -A trust >/dev/null
    {
        echo "port = $PORT"
        echo "unix_socket_directories = '$data'"
        echo "listen_addresses = ''"
        echo "shared_preload_libraries = 'migrate'"
        for line in "$@"; do echo "$line"; done
    } >> "$data/pg/postgresql.conf"
    as_pg "$BIN/pg_ctl" -D "$data/pg" -l "$data/log" -w start >/dev/null
}
