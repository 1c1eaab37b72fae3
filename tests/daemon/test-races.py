#!/usr/bin/python3
"""Races through qubesd's socket: every writer method of a qube, in
threads, against admin.vm.Remove of that qube; every pool method and a
creation in the pool against admin.pool.Remove of that pool. Run in CI
under both builds (the ASan+UBSan one reports a use after free or a
leak as a failure of the last test), and for 10 minutes by
scripts/long-tests.

    test-races.py PATH/TO/qubesd [--seconds N]   (default 30; CI: 20)

What must hold, every round:
- the daemon answers every call (an answer or a Qubes exception; never
  a dropped connection) and keeps running;
- a removed qube leaves no folder; a new qube of its name starts with
  no notes and the default firewall;
- a removed pool is named by no qube's volume; a pool a qube uses is
  never removed;
- after all rounds, a restarted qubesd loads what was saved.
"""
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qubesd_harness import run_file  # noqa: E402
from qubesd_harness import Daemon, LoopFS, parse  # noqa: E402
from qubesd_harness import run_threads  # noqa: E402

QUBESD = os.path.abspath(sys.argv[1])
SECONDS = float(sys.argv[sys.argv.index('--seconds') + 1]) \
    if '--seconds' in sys.argv else 30.0
state = {'rounds': 0, 'calls': 0}
lock = threading.Lock()

# (method, argument, payload) on the qube under removal: each writer
# method of admin.vm.* once at least.
VM_WRITERS = [
    ('admin.vm.property.Set', 'label', b'green'),
    ('admin.vm.property.Set', 'memory', b'500'),
    ('admin.vm.property.Set', 'netvm', b''),
    ('admin.vm.property.Set', 'include_in_backups', b'False'),
    ('admin.vm.property.Reset', 'memory', b''),
    ('admin.vm.feature.Set', 'f1', b'v'),
    ('admin.vm.feature.Remove', 'f1', b''),
    ('admin.vm.tag.Set', 't1', b''),
    ('admin.vm.tag.Remove', 't1', b''),
    ('admin.vm.firewall.Set', '', b'action=drop\n'),
    ('admin.vm.firewall.Reload', '', b''),
    ('admin.vm.notes.Set', '', b'old notes'),
    ('admin.vm.volume.Resize', 'private', b'3221225472'),
    ('admin.vm.volume.Set.revisions_to_keep', 'private', b'3'),
    ('admin.vm.volume.Set.rw', 'volatile', b'True'),
    ('admin.vm.volume.Revert', 'private', b'1'),
    ('admin.vm.volume.Clear', 'private', b''),
    ('admin.vm.volume.CloneFrom', 'private', b''),
    ('admin.vm.device.block.Assign', 'dom0+loop7', b"mode='required'"),
    ('admin.vm.device.block.Set.assignment', 'dom0+loop7', b'auto-attach'),
    ('admin.vm.device.block.Unassign', 'dom0+loop7', b''),
    ('admin.vm.device.denied.Add', '', b'u******'),
    ('admin.vm.device.denied.Remove', '', b'all'),
    ('admin.vm.Start', '', b''),
    ('admin.vm.Kill', '', b''),
    ('admin.vm.volume.Info', 'private', b''),
    ('admin.vm.volume.ListSnapshots', 'private', b''),
    ('admin.vm.firewall.Get', '', b''),
    ('admin.vm.notes.Get', '', b''),
]
# on the pool under removal
POOL_WRITERS = [
    ('admin.pool.Set.revisions_to_keep', b'2'),
    ('admin.pool.Set.ephemeral_volatile', b'True'),
    ('admin.pool.Info', b''),
    ('admin.pool.UsageDetails', b''),
    ('admin.pool.volume.List', b''),
]


def setup():
    fs = LoopFS('xfs', size='4G')
    state['fs'] = fs
    base = os.path.join(fs.mnt, 'qubes')
    state['base'] = base
    os.makedirs(os.path.join(fs.mnt, 'pools'))
    d = Daemon(QUBESD, base).start()
    state['d'] = d
    d.ok('admin.vm.Create.TemplateVM', payload='name=tpl label=black')
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=other label=red')


def D():
    return state['d']


def answered(r, what):
    assert r[0] in ('ok', 'exc'), (what, r)
    with lock:
        state['calls'] += 1


def internal_import(d, vm):
    """internal.vm.volume.ImportBegin and End on @vm's private volume,
    as the import programs drive them (on the internal socket)."""
    head = ' dom0 name %s\0' % vm
    r = parse(d.raw(('internal.vm.volume.ImportBegin+private' + head)
                    .encode() + b'1048576', internal=True))
    answered(r, 'ImportBegin')
    if r[0] == 'ok':
        answered(parse(d.raw(('internal.vm.volume.ImportEnd+private' + head)
                             .encode() + b'fail\nraced', internal=True)),
                 'ImportEnd')


def vm_round(n):
    d = D()
    name = 'race%d' % (n % 4)
    d.ok('admin.vm.Create.AppVM', arg='tpl',
         payload='name=%s label=red' % name)
    stop = threading.Event()
    errors = []
    rng = random.Random(n)

    def writer(i):
        try:
            k = 0
            while not stop.is_set() and k < 40:
                m, arg, payload = VM_WRITERS[(i * 7 + k) % len(VM_WRITERS)]
                r = d.call(m, name, arg, payload)
                answered(r, m)
                if m == 'admin.vm.volume.CloneFrom' and r[0] == 'ok':
                    # the token outlives the qube: CloneTo after Remove
                    answered(d.call('admin.vm.volume.CloneTo', 'other',
                                    'private', r[1].encode()), 'CloneTo')
                if k % 9 == 0:
                    internal_import(d, name)
                k += 1
        except Exception as e:  # reported by the main thread
            errors.append(repr(e))

    def remover():
        time.sleep(rng.random() * 0.03)
        for _ in range(200):
            r = d.call('admin.vm.Remove', name)
            answered(r, 'Remove')
            if r[0] == 'ok':
                break
            time.sleep(0.01)   # in use meanwhile (a clone): again
        stop.set()
    run_threads([lambda i=i: writer(i) for i in range(6)] + [remover])
    assert not errors, errors
    names = [l.split()[0] for l in d.ok('admin.vm.List').splitlines()]
    assert name not in names, names
    folder = os.path.join(state['base'], 'appvms', name)
    assert not os.path.exists(folder), os.listdir(folder)
    # a new qube of the name inherits nothing
    if n % 5 == 0:
        d.ok('admin.vm.Create.AppVM', arg='tpl',
             payload='name=%s label=red' % name)
        assert d.ok('admin.vm.notes.Get', name) == ''
        assert d.ok('admin.vm.firewall.Get', name) == 'action=accept\n'
        d.ok('admin.vm.Remove', name)


def pool_round(n):
    d = D()
    pool = 'rp%d' % n
    path = os.path.join(state['fs'].mnt, 'pools', pool)
    d.ok('admin.pool.Add', arg='file-reflink',
         payload='name=%s\ndir_path=%s\n' % (pool, path))
    vm = 'inpool%d' % (n % 3)
    errors = []
    results = {}

    def user(i):
        try:
            for k in range(10):
                m, payload = POOL_WRITERS[(i + k) % len(POOL_WRITERS)]
                answered(d.call(m, 'dom0', pool, payload), m)
        except Exception as e:
            errors.append(repr(e))

    def creator():
        r = d.call('admin.vm.CreateInPool.AppVM', 'dom0', 'tpl',
                   ('name=%s label=red pool=%s' % (vm, pool)).encode())
        answered(r, 'CreateInPool')
        results['create'] = r

    def remover():
        time.sleep(random.random() * 0.02)
        r = d.call('admin.pool.Remove', 'dom0', pool)
        answered(r, 'pool.Remove')
        results['remove'] = r
    run_threads([lambda i=i: user(i) for i in range(4)] +
                [creator, remover])
    assert not errors, errors
    pools = d.ok('admin.pool.List').split()
    names = [l.split()[0] for l in d.ok('admin.vm.List').splitlines()]
    created = vm in names
    if created:
        info = d.ok('admin.vm.volume.Info', vm, 'private')
        assert 'pool=%s\n' % pool in info, info
        assert pool in pools, (pool, pools, results)
        d.ok('admin.vm.Remove', vm)
    if pool in pools:
        assert results['remove'][0] == 'exc', results
        d.ok('admin.pool.Remove', arg=pool)
    assert pool not in d.ok('admin.pool.List').split()


def test_writers_racing_removals():
    deadline = time.monotonic() + SECONDS
    n = 0
    while time.monotonic() < deadline:
        vm_round(n)
        pool_round(n)
        n += 1
        assert D().proc.poll() is None, D().read_log()[-3000:]
    state['rounds'] = n
    print('# %d rounds, %d calls in %.0f s' % (n, state['calls'], SECONDS))
    assert n > 0


def test_restart_loads_what_was_saved():
    d = D()
    before = d.ok('admin.vm.List')
    pools = d.ok('admin.pool.List')
    d.stop()
    d.start()
    assert d.ok('admin.vm.List') == before
    assert d.ok('admin.pool.List') == pools
    # nothing was left behind to set aside
    assert 'no qube of that name in qubes.xml' not in d.read_log()


if __name__ == '__main__':
    sys.exit(run_file(globals(), setup, state))
