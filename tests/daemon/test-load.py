#!/usr/bin/python3
"""A bounded stress run of qubesd: many clients with mixed Admin API calls
on overlapping qubes and volumes for a fixed time, on a loop-mounted XFS.

    test-load.py PATH/TO/qubesd [SECONDS]     (default QUBES_LOAD_SECONDS or 20)

Checked: no call waits more than 30 s for its answer (a watchdog fails the
run: a deadlock), every answer is a success or a Qubes exception (never a
dropped connection), qubesd's open descriptors and resident memory do not
grow between the first and the last part of the run, and afterwards
qubes.xml loads in a fresh qubesd with the state the API showed.
"""
import os
import random
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qubesd_harness import run_file  # noqa: E402
from qubesd_harness import Daemon, LoopFS  # noqa: E402

QUBESD = os.path.abspath(sys.argv[1])
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else \
    float(os.environ.get('QUBES_LOAD_SECONDS', '20'))
CLIENTS = 24
WATCHDOG = 30.0
QUBES = ['load%d' % i for i in range(6)]
state = {}


def setup():
    # Under ASan, freed memory waits in a quarantine of up to 256 MiB,
    # which would read as growth: keep it small.
    if 'ASAN_OPTIONS' in os.environ:
        os.environ['ASAN_OPTIONS'] += (':quarantine_size_mb=8'
                                       ':thread_local_quarantine_size_kb=64')
    fs = LoopFS('xfs', size='4G')
    state['fs'] = fs
    base = os.path.join(fs.mnt, 'qubes')
    d = Daemon(QUBESD, base).start()
    state['d'] = d
    d.ok('admin.vm.Create.TemplateVM', payload='name=tpl label=black')
    for n in QUBES:
        d.ok('admin.vm.Create.AppVM', arg='tpl',
             payload='name=%s label=green' % n)
    return d


def proc_figures(pid):
    fds = len(os.listdir('/proc/%d/fd' % pid))
    with open('/proc/%d/status' % pid) as f:
        rss = next(int(line.split()[1]) for line in f
                   if line.startswith('VmRSS:'))
    return fds, rss


def one_call(d, rnd):
    """A random call on a random qube; returns the parsed answer."""
    vm = rnd.choice(QUBES)
    kind = rnd.randrange(12)
    if kind == 0:
        return d.call('admin.vm.List')
    if kind == 1:
        return d.call('admin.vm.property.Get', vm,
                      rnd.choice(['memory', 'netvm', 'label', 'kernel']))
    if kind == 2:
        return d.call('admin.vm.property.Set', vm, 'memory',
                      str(rnd.randrange(300, 4000)))
    if kind == 3:
        return d.call('admin.vm.feature.Set', vm, 'f%d' % rnd.randrange(8),
                      str(rnd.randrange(100)))
    if kind == 4:
        return d.call('admin.vm.feature.Remove', vm,
                      'f%d' % rnd.randrange(8))
    if kind == 5:
        return d.call('admin.vm.tag.Set', vm, 't%d' % rnd.randrange(8))
    if kind == 6:
        return d.call('admin.vm.tag.Remove', vm, 't%d' % rnd.randrange(8))
    if kind == 7:
        return d.call('admin.vm.volume.Info', vm,
                      rnd.choice(['root', 'private', 'volatile']))
    if kind == 8:
        return d.call('admin.vm.volume.ListSnapshots', vm, 'private')
    if kind == 9:
        return d.call('admin.vm.volume.Set.revisions_to_keep', vm, 'private',
                      str(rnd.randrange(1, 4)))
    if kind == 10:
        return d.call('admin.vm.volume.Resize', vm, 'private',
                      str((2048 + rnd.randrange(4)) * 1024 * 1024))
    return d.call('admin.vm.property.GetAll', vm)


def test_load():
    d = state['d']
    pid = d.proc.pid
    stop = time.monotonic() + SECONDS
    errors = []
    counts = {'ok': 0, 'exc': 0}
    busy = {}  # thread index -> start of its current call
    lock = threading.Lock()

    def client(i):
        rnd = random.Random(i)
        while time.monotonic() < stop and not errors:
            with lock:
                busy[i] = time.monotonic()
            try:
                r = one_call(d, rnd)
            except Exception as e:  # reported by the main thread
                errors.append('client %d: %r' % (i, e))
                return
            with lock:
                del busy[i]
                if r[0] in counts:
                    counts[r[0]] += 1
                else:
                    errors.append('client %d: answer %r' % (i, r))
                    return

    idle_fds = proc_figures(pid)[0]
    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(CLIENTS)]
    for t in threads:
        t.start()
    time.sleep(min(3.0, SECONDS / 4))
    first = proc_figures(pid)
    samples = []
    while any(t.is_alive() for t in threads):
        time.sleep(0.5)
        now = time.monotonic()
        with lock:
            stuck = [(i, now - s) for i, s in busy.items()
                     if now - s > WATCHDOG]
        if stuck:
            raise AssertionError('watchdog: calls waiting %r s (deadlock?)'
                                 % stuck)
        if d.proc.poll() is not None:
            raise AssertionError('qubesd died: ' + d.read_log()[-2000:])
        samples.append(proc_figures(pid))
    assert not errors, errors[:5]
    last = proc_figures(pid)
    total = counts['ok'] + counts['exc']
    print('# %d calls in %.0f s from %d clients (%d exceptions); '
          'fds %d idle, %d busy, %d after; RSS %d -> %d KiB'
          % (total, SECONDS, CLIENTS, counts['exc'], idle_fds, first[0], last[0],
             first[1], last[1]))
    assert total > 100, counts
    # Connections are all closed now: the descriptors are back.
    assert last[0] <= idle_fds, (idle_fds, last)
    # No growth beyond allocator noise once warmed up.
    assert last[1] <= first[1] * 1.5 + 8192, (first, last)
    # qubes.xml: a fresh daemon loads it and shows what the API showed.
    before = {n: (d.ok('admin.vm.property.GetAll', n),
                  d.ok('admin.vm.feature.List', n),
                  d.ok('admin.vm.tag.List', n)) for n in QUBES}
    d.stop()
    d.start()
    after = {n: (d.ok('admin.vm.property.GetAll', n),
                 d.ok('admin.vm.feature.List', n),
                 d.ok('admin.vm.tag.List', n)) for n in QUBES}
    assert before == after


def test_connection_flood():
    """Many connections at once, half of them never finishing their
    request: qubesd keeps answering the others."""
    d = state['d']
    idle = []
    try:
        for _ in range(200):
            s = socket.socket(socket.AF_UNIX)
            s.connect(d.sock)
            s.sendall(b'admin.vm.List+ dom0 name')  # no NUL, no EOF
            idle.append(s)
        t0 = time.monotonic()
        for _ in range(50):
            assert d.ok('admin.vm.List').startswith('dom0 class=AdminVM')
        assert time.monotonic() - t0 < WATCHDOG
    finally:
        for s in idle:
            s.close()


if __name__ == '__main__':
    sys.exit(run_file(globals(), setup, state))
