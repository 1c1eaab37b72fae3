"""Test harness for qubesd: real filesystems on loop devices, the daemon
as a process, a raw Admin API client, and a small TAP runner.

Under CI=true a test that cannot get its filesystem fails instead of
skipping (the storage harness's rule).
"""
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback


class Skip(Exception):
    pass


def in_ci():
    return os.environ.get('CI') == 'true'


class LoopFS:
    """A fresh filesystem of @kind on a loop device, mounted in a temp dir.
    @direct_io: the loop device writes its file with O_DIRECT, as a disk
    has no second page cache (benchmarks)."""

    def __init__(self, kind, size='2G', direct_io=False):
        self.kind = kind
        self.top = tempfile.mkdtemp(prefix='qubesd-test-')
        self.img = os.path.join(self.top, 'fs.img')
        self.mnt = os.path.join(self.top, 'mnt')
        self.dev = None
        os.mkdir(self.mnt)
        try:
            subprocess.run(['truncate', '-s', size, self.img], check=True)
            mkfs = {'xfs': ['mkfs.xfs', '-q', '-f', '-m', 'reflink=1'],
                    'btrfs': ['mkfs.btrfs', '-q', '-f'],
                    'ext4': ['mkfs.ext4', '-q', '-F']}[kind]
            subprocess.run(mkfs + [self.img], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self.dev = subprocess.run(
                ['losetup', '-f', '--show'] +
                (['--direct-io=on'] if direct_io else []) + [self.img],
                check=True,
                capture_output=True, text=True).stdout.strip()
            subprocess.run(['mount', self.dev, self.mnt], check=True,
                           capture_output=True)
        except (OSError, subprocess.CalledProcessError) as e:
            self.close()
            msg = 'cannot make a %s filesystem: %s' % (kind, e)
            if in_ci():
                raise RuntimeError(msg)
            raise Skip(msg)

    # XFS_IOC_GOINGDOWN (_IOR('X', 125, __u32)) and its "log not flushed"
    XFS_IOC_GOINGDOWN = 0x8004587d
    GOINGDOWN_NOLOGFLUSH = 2

    def shut_down(self):
        """The filesystem stops as at a power cut (XFS: its log not
        flushed): every later call on it fails with EIO."""
        fd = os.open(self.mnt, os.O_RDONLY)
        try:
            fcntl.ioctl(fd, self.XFS_IOC_GOINGDOWN,
                        struct.pack('I', self.GOINGDOWN_NOLOGFLUSH))
        finally:
            os.close(fd)

    def remount(self):
        """Unmounted and mounted again: the journal is replayed."""
        subprocess.run(['umount', self.mnt], check=True)
        subprocess.run(['mount', self.dev, self.mnt], check=True)

    def close(self):
        if self.dev:
            subprocess.run(['umount', self.mnt], capture_output=True)
            subprocess.run(['losetup', '-d', self.dev], capture_output=True)
            self.dev = None
        subprocess.run(['rm', '-rf', self.top])


def make_kernel(base_dir, version, files=('vmlinuz', 'initramfs')):
    """An installed kernel for qubesd on @base_dir: vm-kernels/VERSION
    with @files (a few bytes each)."""
    kdir = os.path.join(base_dir, 'vm-kernels', version)
    os.makedirs(kdir)
    for f in files:
        with open(os.path.join(kdir, f), 'wb') as fh:
            fh.write(b'kernel')


class Daemon:
    """qubesd on @base_dir, its socket in a private temp dir; @args are
    further command-line options. Without a hypervisor (--offline) unless
    @offline is False (the VM runtime tests give it --libvirt-uri)."""

    def __init__(self, binary, base_dir, sockdir=None, args=(), offline=True,
                 wrapper=()):
        self.binary = binary
        self.wrapper = list(wrapper)  # e.g. ip netns exec NS
        self.args = list(args)
        if offline and '--offline' not in self.args:
            self.args.insert(0, '--offline')
        self.base_dir = base_dir
        self.sockdir = sockdir or tempfile.mkdtemp(prefix='qubesd-sock-')
        self.sock = os.path.join(self.sockdir, 'qubesd.sock')
        self.proc = None
        self.log = os.path.join(self.sockdir, 'qubesd.log')

    def start(self):
        env = dict(os.environ)
        env['G_DEBUG'] = 'fatal-criticals'
        self.logf = open(self.log, 'ab')
        self.proc = subprocess.Popen(
            self.wrapper +
            [self.binary, '--base-dir', self.base_dir, '--socket', self.sock]
            + self.args,
            stdout=self.logf, stderr=subprocess.STDOUT, env=env)
        for _ in range(500):
            if self.proc.poll() is not None:
                raise RuntimeError('qubesd exited: ' + self.read_log())
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.sock)
                s.close()
                return self
            except OSError:
                time.sleep(0.01)
        raise RuntimeError('qubesd did not come up: ' + self.read_log())

    def stop(self, check=True):
        """SIGTERM; the daemon saves and exits 0 with nothing reported by
        the sanitizers."""
        if not self.proc:
            return
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self.proc = None
        self.logf.close()
        log = self.read_log()
        if check:
            if rc != 0:
                raise AssertionError('qubesd exited %d: %s' % (rc, log))
            for bad in ('AddressSanitizer', 'LeakSanitizer', 'runtime error',
                        'CRITICAL'):
                if bad in log:
                    raise AssertionError('qubesd log has %s: %s' % (bad, log))

    def cleanup(self):
        subprocess.run(['rm', '-rf', self.sockdir])

    def kill(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self.logf.close()

    def read_log(self):
        try:
            with open(self.log, 'rb') as f:
                return f.read().decode(errors='replace')
        except OSError:
            return ''

    def socket_path(self, which='admin'):
        """The path of qubesd's admin, internal or misc socket."""
        if which == 'admin':
            return self.sock
        return os.path.join(self.sockdir, 'qubesd.%s.sock' % which)

    def raw(self, data, shutdown=True, internal=False, timeout=60,
            which='admin'):
        """The bytes answered to @data on the admin socket (@internal or
        @which 'internal': the internal one; @which 'misc': the misc one),
        waiting at most @timeout seconds for each part (None: as long as
        it takes)."""
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        s.connect(self.socket_path('internal' if internal else which))
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if shutdown:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        out = b''
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
        except ConnectionResetError:
            pass
        s.close()
        return out

    def stream(self, method, dest, until, timeout=30):
        """The bytes of a streaming call (admin.Events, admin.vm.Stats),
        read until @until(bytes so far) or the end of the stream."""
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        s.connect(self.sock)
        s.sendall(('%s+ dom0 name %s\0' % (method, dest)).encode())
        s.shutdown(socket.SHUT_WR)
        buf = b''
        try:
            while not until(buf):
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        finally:
            s.close()
        return buf

    def call(self, method, dest='dom0', arg='', payload=b'', src='dom0',
             timeout=60, which='admin'):
        if isinstance(payload, str):
            payload = payload.encode()
        # The header exactly as the qubesadmin client (QubesLocal) writes
        # it: '+' even with no argument.
        return parse(self.raw(('%s+%s %s name %s' % (method, arg, src, dest))
                              .encode() + b'\0' + payload, timeout=timeout,
                              which=which))

    def ok(self, method, dest='dom0', arg='', payload=b'', timeout=60):
        r = self.call(method, dest, arg, payload, timeout=timeout)
        if r[0] != 'ok':
            raise AssertionError('%s+%s on %s: %r' % (method, arg, dest, r))
        return r[1]


def in_parallel(n, func):
    """Runs func(0) .. func(n - 1) on n threads at once; fails with every
    exception they raised."""
    errors = []

    def run(i):
        try:
            func(i)
        except Exception as e:  # collected for the calling thread
            errors.append('%d: %r' % (i, e))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def run_threads(funcs):
    """Starts a thread for each callable of @funcs at once and waits for
    all."""
    threads = [threading.Thread(target=f) for f in funcs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def parse(out):
    """('ok', text) | ('exc', type, message) | ('drop',) | ('events', ...)"""
    if out == b'':
        return ('drop',)
    if out.startswith(b'0\0'):
        return ('ok', out[2:].decode())
    if out.startswith(b'2\0'):
        parts = out[2:].split(b'\0')
        return ('exc', parts[0].decode(), parts[2].decode())
    return ('other', out)


def parse_events(buf):
    """Splits a stream of events into (subject, event, {k: v}) tuples;
    returns them and what is left (an event not yet whole)."""
    events = []
    while buf.startswith(b'1\0'):
        fields = []
        pos = 2
        # subject, event, then key/value pairs, ended by an empty field
        while True:
            end = buf.find(b'\0', pos)
            if end < 0:
                return events, buf
            fields.append(buf[pos:end].decode())
            pos = end + 1
            if len(fields) >= 2 and (len(fields) % 2 == 0) and \
                    buf[pos:pos + 1] == b'\0':
                pos += 1
                break
        subject, event = fields[0], fields[1]
        kw = dict(zip(fields[2::2], fields[3::2]))
        events.append((subject, event, kw))
        buf = buf[pos:]
    return events, buf


def run_tests(tests):
    """Runs (name, func) pairs, printing TAP."""
    print('1..%d' % len(tests))
    failed = 0
    for i, (name, func) in enumerate(tests, 1):
        t0 = time.monotonic()
        try:
            func()
            print('ok %d - %s' % (i, name))
        except Skip as e:
            print('ok %d - %s # SKIP %s' % (i, name, e))
        except Exception:  # report and go on
            failed += 1
            print('not ok %d - %s' % (i, name))
            for line in traceback.format_exc().splitlines():
                print('# ' + line)
        # each case's time, so that the slow ones can be found in the log
        print('# %s took %.1f s' % (name, time.monotonic() - t0))
        sys.stdout.flush()
    return 1 if failed else 0


def main(setup, teardown, tests):
    """Sets up, runs @tests (name, func) and then @teardown as a last test
    (the daemon must exit cleanly); skips all where the machine cannot."""
    if os.geteuid() != 0 and not in_ci():
        print('1..0 # SKIP needs root for loop devices')
        return 0
    try:
        setup()
    except Skip as e:
        teardown()
        print('1..0 # SKIP %s' % e)
        return 0
    except Exception:
        teardown()
        raise
    return run_tests(tests + [('daemon exits cleanly', teardown)])


def teardown_state(state):
    """Stops the daemon in state['d'] (which must exit cleanly) and removes
    its folder, then unmounts state['fs']."""
    d = state.get('d')
    if d:
        d.stop()
        d.cleanup()
    fs = state.get('fs')
    if fs:
        fs.close()


def run_file(namespace, setup, state, after=None):
    """main() over the test_* functions of a test file's globals; the
    teardown is teardown_state(@state), then @after() if given."""
    tests = [(n[5:], f) for n, f in namespace.items()
             if n.startswith('test_') and callable(f)]
    only = os.environ.get('QUBES_TESTS')  # a developer's NAME,NAME subset
    if only:
        tests = [t for t in tests if t[0] in only.split(',')]

    def teardown():
        try:
            teardown_state(state)
        finally:
            if after:
                after()
    return main(setup, teardown, tests)
