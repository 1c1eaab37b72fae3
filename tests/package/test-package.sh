#!/usr/bin/env bash
# The Debian packages, end to end, as an administrator meets them:
#   1. scripts/package builds them from a clean copy of the tree, and
#      lintian finds no error and no warning;
#   2. a fresh Debian 12 root (mmdebstrap, from Debian's mirror) takes
#      them with apt; the first install made /var/lib/qubes/qubes.xml and
#      the group qubes; systemd-analyze verifies both units there;
#   3. qubesd runs in the root as its unit runs it (the unit's ExecStart,
#      plus --offline: no hypervisor in the root), and the installed
#      tools make a pool and a qube, which qubesd saves when stopped;
#   4. a package rebuilt with a higher version upgrades the root: the
#      qube, its pool and qubes.xml are still there;
#   5. apt purge leaves only the user's qubes (/var/lib/qubes), which is
#      listed.
# TAP output. Needs root, network to Debian's mirror, debhelper, lintian,
# mmdebstrap and systemd-analyze (scripts/install-deps).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/qubes-package-test-XXXXXX)
R=$work/root
n=0
cleanup() {
    if [ -n "${qpid:-}" ]; then kill "$qpid" 2>/dev/null || true; fi
    for m in "$R/run" "$R/dev" "$R/proc"; do
        mountpoint -q "$m" 2>/dev/null && umount -l "$m"
    done
    rm -rf "$work"
}
trap cleanup EXIT
ok() { n=$((n + 1)); echo "ok $n - $1"; }
fail() { n=$((n + 1)); echo "not ok $n - $1"; shift; printf '# %s\n' "$@";
         echo "1..$n"; exit 1; }
in_root() { chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    QUBESD_SOCKET=/run/qubesd.sock "$@"; }

# 1. build, lintian, units
"$root/scripts/package" "$work/debs" >"$work/package.log" 2>&1 ||
    fail "scripts/package builds the packages and lintian passes them" \
        "$(tail -30 "$work/package.log")"
ok "scripts/package: $(ls "$work"/debs/*.deb | grep -vc dbgsym) packages, lintian: no error, no warning"
# 2. a fresh Debian 12 and apt install
mmdebstrap --variant=apt --quiet bookworm "$R" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" \
    >"$work/mmdebstrap.log" 2>&1 ||
    fail "mmdebstrap makes a Debian 12 root" "$(tail -20 "$work/mmdebstrap.log")"
cp /etc/resolv.conf "$R/etc/resolv.conf"
mount -t proc proc "$R/proc"
mount --bind /dev "$R/dev"
mount -t tmpfs tmpfs "$R/run"
mkdir -p "$R/tmp/debs"
cp "$work"/debs/qubes-core-c*_0.1.0_amd64.deb "$R/tmp/debs/"
rm -f "$R"/tmp/debs/*dbgsym*
in_root apt-get update -q >"$work/apt.log" 2>&1
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends /tmp/debs/qubes-core-c_0.1.0_amd64.deb \
    /tmp/debs/qubes-core-c-tools_0.1.0_amd64.deb \
    /tmp/debs/qubes-core-c-qmemman_0.1.0_amd64.deb >>"$work/apt.log" 2>&1 ||
    fail "apt installs the three packages" "$(tail -20 "$work/apt.log")"
[ -f "$R/var/lib/qubes/qubes.xml" ] ||
    fail "the first install makes /var/lib/qubes/qubes.xml" "$(ls -la "$R/var/lib/qubes" 2>&1)"
in_root getent group qubes >/dev/null || fail "the group qubes exists"
[ -L "$R/etc/qubes-rpc/admin.vm.volume.Import" ] && [ -f "$R/etc/qubes/qmemman.conf" ] ||
    fail "the files are where Qubes puts them"
ok "apt install in a fresh Debian 12: qubes.xml, the group qubes, /etc/qubes-rpc, /etc/qubes/qmemman.conf"
# the units as installed, by the root's own systemd
out=$(in_root systemd-analyze verify --man=no \
    /lib/systemd/system/qubesd.service \
    /lib/systemd/system/qmemmand.service 2>&1 || true)
[ -z "$out" ] || fail "systemd-analyze verify on both units" "$out"
ok "systemd-analyze verify: qubesd.service, qmemmand.service"

# 3. qubesd as its unit runs it; the installed tools
start_qubesd() {
    exec_start=$(sed -n 's/^ExecStart=//p' "$R/lib/systemd/system/qubesd.service")
    # the unit's RuntimeDirectory
    mkdir -p "$R/run/qubes"
    chroot "$R" env -i PATH=/usr/sbin:/usr/bin $exec_start --offline \
        >"$work/qubesd.log" 2>&1 &
    qpid=$!
    for _ in $(seq 100); do
        [ -S "$R/run/qubesd.sock" ] && return 0
        sleep 0.1
    done
    fail "qubesd starts as its unit starts it" "$(cat "$work/qubesd.log")"
}
stop_qubesd() {
    kill -TERM "$qpid"
    wait "$qpid" || fail "qubesd stops cleanly on SIGTERM" "$(cat "$work/qubesd.log")"
    qpid=
}
start_qubesd
mkdir -p "$R/srv/pool2"
in_root qvm-pool add pool2 file-reflink -o dir_path=/srv/pool2 \
    -o setup_check=no >/dev/null ||
    fail "qvm-pool add in the root"
in_root qvm-create -C StandaloneVM -l red -P pool2 keeper >/dev/null ||
    fail "qvm-create in the root" "$(cat "$work/qubesd.log")"
in_root qvm-prefs keeper memory 512
got=$(in_root qvm-ls --raw-data -O name,class,label keeper)
[ "$got" = "keeper|StandaloneVM|red" ] || fail "qvm-ls shows the new qube" "$got"
stop_qubesd
grep -q '<property name="name">keeper</property>' "$R/var/lib/qubes/qubes.xml" ||
    fail "qubes.xml holds the qube after the stop"
ok "qubesd from the unit's ExecStart; qvm-pool add, qvm-create, qvm-prefs, qvm-ls"

# 4. an upgrade to a rebuilt package with a higher version
"$root/scripts/package" --version 0.1.0+test1 "$work/debs2" \
    >"$work/package2.log" 2>&1 ||
    fail "scripts/package --version builds the upgrade" "$(tail -30 "$work/package2.log")"
cp "$work"/debs2/qubes-core-c*_0.1.0+test1_amd64.deb "$R/tmp/debs/"
rm -f "$R"/tmp/debs/*dbgsym*
sum_before=$(sha256sum "$R/var/lib/qubes/qubes.xml" | cut -d' ' -f1)
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends /tmp/debs/qubes-core-c_0.1.0+test1_amd64.deb \
    /tmp/debs/qubes-core-c-tools_0.1.0+test1_amd64.deb \
    /tmp/debs/qubes-core-c-qmemman_0.1.0+test1_amd64.deb >>"$work/apt.log" 2>&1 ||
    fail "apt upgrades to the rebuilt packages" "$(tail -20 "$work/apt.log")"
[ "$(sha256sum "$R/var/lib/qubes/qubes.xml" | cut -d' ' -f1)" = "$sum_before" ] ||
    fail "the upgrade keeps qubes.xml as it was"
start_qubesd
got=$(in_root qvm-prefs keeper memory)
[ "$got" = 512 ] || fail "the qube is still there after the upgrade" "$got"
in_root qvm-pool list | grep -q '^pool2 ' || fail "the pool is still there"
stop_qubesd
ok "upgrade to 0.1.0+test1: qubes.xml unchanged, the qube and its pool still there"

# 5. purge: only the user's qubes stay
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q \
    qubes-core-c qubes-core-c-tools qubes-core-c-qmemman >>"$work/apt.log" 2>&1 ||
    fail "apt purge" "$(tail -20 "$work/apt.log")"
left=$(cd "$R" && find etc/qubes etc/qubes-rpc usr/lib/qubes usr/sbin/qubesd \
    usr/sbin/qmemmand var/log/qubes lib/systemd/system/qubesd.service \
    2>/dev/null || true)
[ -z "$left" ] || fail "purge removes the packages' files and configuration" "$left"
echo "# what purge leaves: the user's qubes"
(cd "$R" && find var/lib/qubes -maxdepth 2 | sort | sed 's/^/#   /')
[ -f "$R/var/lib/qubes/qubes.xml" ] && [ -d "$R/srv/pool2/appvms/keeper" ] ||
    fail "purge keeps the user's qubes (qubes.xml, the pools)"
ok "apt purge: configuration and logs gone, /var/lib/qubes and the pool kept"
echo "1..$n"
