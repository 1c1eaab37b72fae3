#!/usr/bin/env bash
# The tour and the benchmarks, run as processes (TAP). Arguments: the build
# folder. Runs on whatever filesystem TMPDIR is on, with setup_check=no
# where reflinks are missing, so it needs no root.
set -u
build=$1
work=$(mktemp -d "${TMPDIR:-/var/tmp}/qubes-programs-XXXXXX")
export QUBES_LOCK_DIR=$work/locks
trap 'rm -rf "$work"' EXIT
n=0
fails=0
check() { # description, then a command that must succeed
    local what=$1
    shift
    n=$((n + 1))
    if "$@" >"$work/out" 2>&1; then
        echo "ok $n - $what"
    else
        echo "not ok $n - $what"
        sed 's/^/# /' "$work/out"
        fails=$((fails + 1))
    fi
}
echo "1..6"
check "tour runs" sh -c "'$build/src/qubes-storage-tour' --pool-dir '$work/tour' >'$work/tour.txt' 2>&1"
check "tour shows an outdated root and a revert" \
    grep -Eq "is_outdated\(appvms/work/root\) = yes|0x23 before, 0x22 after" "$work/tour.txt"
check "tour logs every file change with its path" \
    grep -q "| Renamed file: $work/tour/appvms/work/private-dirty.img -> $work/tour/appvms/work/private.img" "$work/tour.txt"
check "storage-cycle prints its figures" \
    sh -c "'$build/bench/storage-cycle' --pool-dir '$work/cycle' --cycles 3 --setup-check no | tail -1 | grep -Eq '^ms_per_cycle=[0-9.]+ fsyncs_per_cycle=[34]$'"
check "copy-fallback copies a sparse image exactly" \
    "$build/bench/copy-fallback" --dir "$work/copy" --size-gib 1 --runs 1
check "api-bench runs its calls through qubesd and prints its figures" \
    sh -c "'$build/bench/api-bench' --qubesd '$build/src/qubesd' --base-dir '$work/api' --domains 40 --calls 64 --runs 1 --clients 1,4 | tail -1 | grep -Eq '^list_cps=[0-9]+ get_cps=[0-9]+ load_ms=[0-9.]+ save_ms=[0-9.]+ rss_mib=[0-9.]+$'"
exit $((fails > 0))
