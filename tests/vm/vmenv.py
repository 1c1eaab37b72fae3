"""Real guests for the VM runtime tests.

- guest_kernel(cache): a Debian cloud kernel (apt-get download, unpacked,
  never installed) and a busybox initramfs whose /init loads the virtio
  modules, answers ACPI power-off, prints what it sees on the serial
  console (QUBES-DISK NAME SERIAL, QUBES-READY) and then runs a shell
  there. Cached in @cache between runs.
- Libvirtd(work): a private root libvirtd whose whole state is under
  WORK/lv (a mount namespace binds its folders there, a network
  namespace holds its bridges and taps), as ../shared/RUNTIME-NOTES.md
  measured it. stop() destroys every domain, ends libvirtd and any QEMU
  left, and removes the namespace.

Everything raises RuntimeError when a piece is missing: the callers fail
under CI=true, as the project's rule says, and skip elsewhere.
"""
import glob
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time

MODULES = ['virtio_ring', 'virtio', 'virtio_pci_modern_dev',
           'virtio_pci_legacy_dev', 'virtio_pci', 'virtio_blk', 'failover',
           'net_failover', 'virtio_net', 'virtio_balloon', 'virtio_console',
           'evdev', 'button']

INIT = r'''#!/bin/busybox sh
/bin/busybox mkdir -p /bin /sbin /proc /sys /dev /tmp /etc/acpi/PWRF \
    /var/log /var/run
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in %(modules)s; do
    [ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko
done
printf '#!/bin/sh\necho QUBES-POWEROFF\nsync\npoweroff -f\n' \
    > /etc/acpi/PWRF/00000080
chmod +x /etc/acpi/PWRF/00000080
n=0
while [ $n -lt 50 ] && ! { ls /sys/block/vd* && ls /dev/input/event*; } \
        >/dev/null 2>&1; do
    sleep 0.1; n=$((n+1))
done
sleep 0.2
acpid -c /etc/acpi
for b in /sys/block/vd*; do
    [ -e "$b" ] || continue
    echo "QUBES-DISK $(basename $b) $(cat $b/serial 2>/dev/null)"
done
echo "QUBES-CMDLINE $(cat /proc/cmdline)"
# the network qubesd puts on the command line (domain-spec.c): a client's
# ip=IP::GW:MASK:NAME:eth0:off:DNS1:DNS2, a netvm's qubes.gateway=GW
for arg in $(cat /proc/cmdline); do
    case "$arg" in
    ip=*)
        IFS=: read ip _ gw _ <<EOF_IP
${arg#ip=}
EOF_IP
        n=0
        while [ $n -lt 50 ] && [ ! -e /sys/class/net/eth0 ]; do
            sleep 0.1; n=$((n+1))
        done
        ip link set lo up
        ip link set eth0 up
        ip addr add "$ip/32" dev eth0
        ip route add "$gw" dev eth0
        ip route add default via "$gw" dev eth0
        echo "QUBES-NET eth0 $ip via $gw"
        ;;
    qubes.gateway=*)
        gw=${arg#qubes.gateway=}
        ip link set lo up
        # no forwarding between links: a Qubes netvm drops what one
        # client sends to another (its firewall's FORWARD rules)
        echo 0 > /proc/sys/net/ipv4/ip_forward
        # each client's link arrives as a hot-plugged NIC whose MAC
        # fe:ff:AA:BB:CC:DD is the client's address
        ( while true; do
            for i in /sys/class/net/eth*; do
                [ -e "$i" ] || continue
                dev=${i##*/}
                [ -e "/tmp/link-$dev" ] && continue
                mac=$(cat $i/address)
                case "$mac" in fe:ff:*) ;; *) continue ;; esac
                set -- $(echo "$mac" | tr : ' ')
                client=$(printf '%%d.%%d.%%d.%%d' 0x$3 0x$4 0x$5 0x$6)
                ip link set "$dev" up
                ip addr add "$gw/32" dev "$dev"
                ip route add "$client" dev "$dev"
                echo 1 > /proc/sys/net/ipv4/conf/$dev/proxy_arp
                touch "/tmp/link-$dev"
                echo "QUBES-LINK $dev $client"
            done
            for f in /tmp/link-*; do
                [ -e "$f" ] || continue
                [ -e "/sys/class/net/${f#/tmp/link-}" ] || {
                    rm -f "$f"; echo "QUBES-UNLINK ${f#/tmp/link-}"; }
            done
            sleep 0.3
        done ) &
        ( while true; do echo hello-from-netvm | nc -l -p 7; done ) &
        # a second port, and the qubes' DNS address, for the firewall
        ( while true; do echo hello-8-from-netvm | nc -l -p 8; done ) &
        ip addr add 10.139.1.1/32 dev lo
        ( while true; do echo hello-dns-from-netvm | nc -l -p 53; done ) &
        echo "QUBES-NETVM $gw"
        ;;
    esac
done
echo QUBES-READY
# `disk NAME`: the disk of the volume NAME (qubesd gives it as the
# virtio serial)
printf '#!/bin/sh\nfor b in /sys/block/vd*; do [ "$(cat $b/serial)" = "$1" ] && echo /dev/${b##*/}; done\n' > /bin/disk
chmod +x /bin/disk
# commands from the console, one per line, no echo and no prompt
stty -F /dev/ttyS0 -echo
while true; do sh </dev/ttyS0 >/dev/ttyS0 2>&1; done
'''


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True,
                          **kw)


def _kernel_package():
    """The versioned Debian cloud kernel package name."""
    for attempt in range(2):
        r = subprocess.run(['apt-cache', 'depends', 'linux-image-cloud-amd64'],
                           capture_output=True, text=True)
        for line in r.stdout.splitlines():
            line = line.strip()
            if line.startswith('Depends: linux-image-'):
                return line.split()[1]
        subprocess.run(['apt-get', 'update', '-qq'], capture_output=True)
    raise RuntimeError('no Debian cloud kernel package (apt-cache depends '
                       'linux-image-cloud-amd64): %s' % r.stderr.strip())


def guest_kernel(cache):
    """Returns (version, folder with vmlinuz, initramfs, modules.img)."""
    os.makedirs(cache, exist_ok=True)
    done = os.path.join(cache, 'kernel-ready')
    kdir = os.path.join(cache, 'kernel')
    # the stamp names the kernel and the initramfs's /init it was built
    # with: a changed /init rebuilds it
    init = INIT % {'modules': ' '.join(MODULES)}
    digest = hashlib.sha256(init.encode()).hexdigest()[:16]
    if os.path.exists(done):
        with open(done) as f:
            words = f.read().split()
        if len(words) == 2 and words[1] == digest:
            return words[0], kdir
    if not os.path.exists('/bin/busybox'):
        raise RuntimeError('busybox-static is not installed (/bin/busybox)')
    pkg = _kernel_package()
    dl = tempfile.mkdtemp(prefix='kernel-', dir=cache)
    try:
        run(['apt-get', 'download', pkg], cwd=dl)
        deb = glob.glob(os.path.join(dl, '*.deb'))[0]
        root = os.path.join(dl, 'root')
        run(['dpkg-deb', '-x', deb, root])
        vmlinuz = glob.glob(os.path.join(root, 'boot', 'vmlinuz-*'))[0]
        version = os.path.basename(vmlinuz)[len('vmlinuz-'):]
        moddir = os.path.join(root, 'lib', 'modules', version)
        shutil.rmtree(kdir, ignore_errors=True)
        os.makedirs(kdir)
        shutil.copy(vmlinuz, os.path.join(kdir, 'vmlinuz'))
        # the initramfs: busybox, the modules, /init
        ird = os.path.join(dl, 'initrd')
        os.makedirs(os.path.join(ird, 'bin'))
        os.makedirs(os.path.join(ird, 'lib', 'modules'))
        shutil.copy('/bin/busybox', os.path.join(ird, 'bin', 'busybox'))
        found = {}
        for path in glob.glob(os.path.join(moddir, '**', '*.ko*'),
                              recursive=True):
            name = os.path.basename(path).split('.ko')[0].replace('-', '_')
            if name in MODULES:
                found[name] = path
        for name, path in found.items():
            dst = os.path.join(ird, 'lib', 'modules', name + '.ko')
            if path.endswith('.xz'):
                with open(dst, 'wb') as out:
                    subprocess.run(['xz', '-dc', path], stdout=out, check=True)
            else:
                shutil.copy(path, dst)
        with open(os.path.join(ird, 'init'), 'w') as f:
            f.write(init)
        os.chmod(os.path.join(ird, 'init'), 0o755)
        out = os.path.join(kdir, 'initramfs')
        with open(out, 'wb') as f:
            find = subprocess.Popen(['find', '.'], cwd=ird,
                                    stdout=subprocess.PIPE)
            cpio = subprocess.Popen(['cpio', '-o', '-H', 'newc', '--quiet'],
                                    cwd=ird, stdin=find.stdout,
                                    stdout=subprocess.PIPE)
            find.stdout.close()
            gz = subprocess.run(['gzip', '-1'], stdin=cpio.stdout, stdout=f)
            cpio.wait()
            find.wait()
            if gz.returncode or cpio.returncode or find.returncode:
                raise RuntimeError('cannot build the initramfs')
        # the reference's modules.img: a disk the guest could mount; ours
        # carries nothing (the initramfs has the modules)
        with open(os.path.join(kdir, 'modules.img'), 'wb') as f:
            f.truncate(1 << 20)
        with open(done, 'w') as f:
            f.write('%s %s\n' % (version, digest))
        return version, kdir
    finally:
        shutil.rmtree(dl, ignore_errors=True)


def install_kernel(base_dir, version, kdir):
    """Puts the guest kernel in base/vm-kernels/VERSION for qubesd."""
    dst = os.path.join(base_dir, 'vm-kernels', version)
    os.makedirs(dst, exist_ok=True)
    for f in ('vmlinuz', 'initramfs', 'modules.img'):
        shutil.copy(os.path.join(kdir, f), os.path.join(dst, f))


def ensure_qemu_user():
    """libvirt's QEMU driver looks its compiled-in user up first."""
    if subprocess.run(['getent', 'group', 'libvirt-qemu'],
                      capture_output=True).returncode:
        run(['groupadd', '-r', 'libvirt-qemu'])
    if subprocess.run(['getent', 'passwd', 'libvirt-qemu'],
                      capture_output=True).returncode:
        run(['useradd', '-r', '-g', 'libvirt-qemu', '-d', '/var/lib/libvirt',
             '-s', '/usr/sbin/nologin', 'libvirt-qemu'])


BINDS = [('etc', '/etc/libvirt'), ('run', '/run/libvirt'),
         ('lib', '/var/lib/libvirt'), ('cache', '/var/cache/libvirt'),
         ('log', '/var/log/libvirt')]


class Libvirtd:
    """A private libvirtd; @work must be a short absolute path (its unix
    socket lives there), @caps_cache a folder kept between runs."""

    def __init__(self, work, caps_cache=None, keep=()):
        for tool in ('/usr/sbin/libvirtd', '/usr/bin/qemu-system-x86_64',
                     '/usr/bin/virsh'):
            if not os.path.exists(tool):
                raise RuntimeError('%s is missing (scripts/install-deps '
                                   'installs it)' % tool)
        ensure_qemu_user()
        self.work = work
        self.keep = [os.path.realpath(k) for k in keep]
        self.lv = os.path.join(work, 'lv')
        self.sock = os.path.join(self.lv, 'libvirt-sock')
        self.uri = 'qemu:///system?socket=' + self.sock
        self.netns = 'qubes-test-%d' % os.getpid()
        self.proc = None
        for d, _ in BINDS:
            os.makedirs(os.path.join(self.lv, d), exist_ok=True)
        if caps_cache:
            os.makedirs(caps_cache, exist_ok=True)
            self.cache = caps_cache
        else:
            self.cache = os.path.join(self.lv, 'cache')
        with open(os.path.join(self.lv, 'etc', 'libvirtd.conf'), 'w') as f:
            f.write('unix_sock_dir = "%s"\nauth_unix_rw = "none"\n'
                    'auth_unix_ro = "none"\nlog_outputs = "3:file:%s"\n'
                    % (self.lv, os.path.join(self.lv, 'libvirtd.log')))
        with open(os.path.join(self.lv, 'etc', 'qemu.conf'), 'w') as f:
            f.write('user = "root"\ngroup = "root"\ndynamic_ownership = 0\n'
                    'stdio_handler = "file"\nsecurity_driver = "none"\n'
                    'namespaces = []\n')

    def start(self, timeout=60):
        run(['ip', 'netns', 'add', self.netns])
        run(self.enter() + ['ip', 'link', 'set', 'lo', 'up'])
        return self._spawn(timeout)

    def enter(self):
        """The command prefix that runs a program in libvirtd's network
        namespace, and in no new mount namespace: `ip netns exec` would
        make one, a copy of every mount of the moment, and the loop
        filesystems of other tests would stay busy in it."""
        return ['nsenter', '--net=/run/netns/' + self.netns]

    def restart_daemon(self, timeout=60):
        """Ends libvirtd alone (its QEMU processes keep running, as when
        the service restarts) and starts it again."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.log.close()
        return self._spawn(timeout)

    def _spawn(self, timeout):
        binds = []
        for d, target in BINDS:
            os.makedirs(target, exist_ok=True)
            src = self.cache if d == 'cache' else os.path.join(self.lv, d)
            binds.append('mount --bind %s %s' % (src, target))
        # The new mount namespace starts with a copy of every mount: the
        # loop filesystems of other tests would stay mounted in it, their
        # devices busy, until libvirtd ends. Only the pools it serves
        # (@keep) stay.
        keep = ' '.join(self.keep)  # temp dirs: no spaces
        drop = ("awk '$1 ~ /^\\/dev\\/loop/ {print $2}' /proc/self/mounts | "
                "while read m; do case \" %s \" in *\" $m \"*) ;; "
                "*) umount -l \"$m\" ;; esac; done" % keep)
        # its own /sys: the view of its network namespace
        binds.insert(0, 'umount -l /sys && mount -t sysfs sysfs /sys')
        script = drop + '; ' + ' && '.join(binds) + \
            ' && exec libvirtd -f %s -p %s' % (
            os.path.join(self.lv, 'etc', 'libvirtd.conf'),
            os.path.join(self.lv, 'libvirtd.pid'))
        self.log = open(os.path.join(self.lv, 'libvirtd.out'), 'ab')
        self.proc = subprocess.Popen(
            self.enter() + ['unshare', '--mount',
             '--propagation', 'private', '--', 'sh', '-c', script],
            stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('libvirtd exited: ' + self.read_log())
            r = subprocess.run(['virsh', '-c', self.uri, 'version'],
                               capture_output=True, text=True)
            if r.returncode == 0:
                return self
            time.sleep(0.3)
        raise RuntimeError('libvirtd did not answer in %d s: %s'
                           % (timeout, self.read_log()))

    def read_log(self):
        out = []
        for f in ('libvirtd.out', 'libvirtd.log'):
            p = os.path.join(self.lv, f)
            if os.path.exists(p):
                with open(p, errors='replace') as fh:
                    out.append(fh.read()[-4000:])
        return '\n'.join(out)

    def virsh(self, *args):
        return subprocess.run(['virsh', '-c', self.uri] + list(args),
                              capture_output=True, text=True)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            r = self.virsh('list', '--name')
            for name in r.stdout.split():
                self.virsh('destroy', name)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        kill_leftovers(self.lv, self.netns)
        if self.proc:
            self.log.close()
        self.proc = None


def kill_leftovers(lvdir, netns):
    """What a private libvirtd (state under @lvdir) may leave: QEMU
    processes (killed by their pid files) and its network namespace."""
    for pidfile in glob.glob(os.path.join(lvdir, 'run', 'qemu', '*.pid')):
        try:
            with open(pidfile) as f:
                os.kill(int(f.read().strip()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    subprocess.run(['ip', 'netns', 'del', netns], capture_output=True)


def private_libvirtd(cache, keep=(), prefix='qv'):
    """A private libvirtd started in a fresh folder under /tmp (short:
    its socket path must fit in sun_path; lv.work), with libvirt's
    capabilities cached in CACHE/libvirt-caps. A failed start leaves
    nothing; afterwards lv.stop() and removing lv.work are the caller's."""
    work = tempfile.mkdtemp(prefix=prefix, dir='/tmp')
    lv = None
    try:
        lv = Libvirtd(work, os.path.join(cache, 'libvirt-caps'), keep=keep)
        return lv.start()
    except BaseException:
        if lv:
            lv.stop()
        shutil.rmtree(work, ignore_errors=True)
        raise
