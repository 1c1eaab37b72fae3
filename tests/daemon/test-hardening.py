#!/usr/bin/python3
"""The seven defects of issue 26, each as it was found, through qubesd's
socket: none may crash, hang or lock out the daemon, and no qube may
inherit another's data.

    test-hardening.py PATH/TO/qubesd

1. a device argument naming an unknown backend, or not parsing, in
   Unassign, Detach and Set.assignment (from dom0 and from a qube);
2. Set.assignment with an empty payload;
3. admin.pool.Info and UsageDetails racing admin.pool.Remove;
4. a FIFO planted as a halted qube's private-dirty.img, then Resize,
   volume.Info and vm.Remove;
5. a file from outside the pool hard-linked in as private-dirty.img,
   then Resize;
6. preload-dispvm-max 100000 (over libvirt's test driver, so that
   preloads are really made, on disk and in qubes.xml; the test driver
   cannot start a domain paused, so each start then fails and the qube
   goes): answered at once, other calls answered within a second
   throughout, no more made than fit in memory, SIGTERM obeyed at once,
   and a restart that loads;
7. firewall.Set and notes.Set racing vm.Remove, then a new qube of the
   same name; and a folder that a crash left behind (no qube in
   qubes.xml names it) set aside at start, not adopted.

The daemon runs under whatever build meson tests (plain, ASan+UBSan):
a sanitizer report fails the last test (a clean exit).
"""
import os
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qubesd_harness import run_file  # noqa: E402
from qubesd_harness import Daemon, LoopFS, make_kernel  # noqa: E402
from qubesd_harness import run_threads  # noqa: E402

QUBESD = os.path.abspath(sys.argv[1])
state = {}

FW_DROP = b'action=drop\n'


def setup():
    fs = LoopFS('xfs')
    state['fs'] = fs
    base = os.path.join(fs.mnt, 'qubes')
    state['base'] = base
    make_kernel(base, '6.1.0', files=('vmlinuz', 'initramfs', 'modules.img'))
    state['tmp'] = tempfile.mkdtemp(prefix='qubes-hardening-')
    # no qmemmand: preloads are capped by the host's memory (test 6)
    state['avail'] = os.path.join(state['tmp'], 'no-qmemman-avail-mem')
    # libvirt's test driver: the runtime (and so preloading) runs, no
    # guest does
    d = Daemon(QUBESD, base, offline=False, args=[
        '--libvirt-uri', 'test:///default', '--no-autostart',
        '--qmemman-socket', os.path.join(state['tmp'], 'no-qmemman.sock'),
        '--qmemman-avail-mem-file', state['avail']])
    state['d'] = d.start()
    d.ok('admin.vm.Create.TemplateVM', payload='name=tpl label=black')
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=work label=blue')


def after():
    import shutil
    shutil.rmtree(state.get('tmp', '/nonexistent'), ignore_errors=True)


def D():
    return state['d']


def alive():
    """The daemon still runs and answers."""
    assert D().proc.poll() is None, D().read_log()[-3000:]
    D().ok('admin.vm.List')


def exc(r, name=None):
    assert r[0] == 'exc', r
    if name:
        assert r[1] == name, r
    return r


def qube_dir(name, prefix='appvms'):
    return os.path.join(state['base'], prefix, name)


# ---- 1, 2: device arguments and payloads ----

def test_device_unknown_backend_refused():
    for cls in ('block', 'pci'):
        for src in ('dom0', 'work'):
            for method in ('Unassign', 'Detach', 'Set.assignment'):
                for arg in ('nosuchvm+sda', 'nosuchvm+sda+x', 'garbage',
                            '+', 'a+', '+b'):
                    payload = b'' if method != 'Set.assignment' \
                        else b'required'
                    r = D().call('admin.vm.device.%s.%s' % (cls, method),
                                 'work', arg, payload, src=src)
                    assert r[0] in ('exc', 'drop'), (method, arg, r)
    r = D().call('admin.vm.device.block.Unassign', 'work', 'nosuchvm+sda')
    exc(r, 'QubesVMNotFoundError')
    alive()


def test_device_empty_payload_refused():
    for cls in ('block', 'pci'):
        for dest in ('dom0', 'work'):
            r = D().call('admin.vm.device.%s.Set.assignment' % cls, dest,
                         'dom0+sda')
            exc(r)
            r = D().call('admin.vm.device.%s.Assign' % cls, dest, 'dom0+sda')
            exc(r)
            r = D().call('admin.vm.device.%s.Attach' % cls, dest, 'dom0+sda')
            exc(r)
    alive()


# ---- 3: a worker's pool outlives its removal ----

def test_pool_usage_racing_remove():
    d = D()
    for trial in range(15):
        path = os.path.join(state['fs'].mnt, 'pool%d' % trial)
        name = 'p%d' % trial
        d.ok('admin.pool.Add', arg='file-reflink',
             payload='name=%s\ndir_path=%s\n' % (name, path))
        results = []

        def usage(i):
            m = 'admin.pool.UsageDetails' if i % 2 else 'admin.pool.Info'
            results.append(d.call(m, arg=name))

        def remove():
            results.append(d.call('admin.pool.Remove', arg=name))
        run_threads([lambda i=i: usage(i) for i in range(4)] + [remove])
        for r in results:
            assert r[0] in ('ok', 'exc'), r
        assert name not in d.ok('admin.pool.List').split()
    alive()


# ---- 4, 5: images that are not lone regular files ----

def dirty_image(vm):
    return os.path.join(qube_dir(vm), 'private-dirty.img')


def test_fifo_image_does_not_hang():
    d = D()
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=fifo label=red')
    os.mkfifo(dirty_image('fifo'))
    t0 = time.monotonic()
    r = d.call('admin.vm.volume.Resize', 'fifo', 'private',
               str(4 << 30).encode())
    exc(r, 'StoragePoolException')
    assert 'private-dirty.img' in r[2], r
    assert 'not a regular file' in r[2], r
    d.ok('admin.vm.volume.Info', 'fifo', 'private')
    assert time.monotonic() - t0 < 10
    os.unlink(dirty_image('fifo'))
    d.ok('admin.vm.Remove', 'fifo')
    # nor a FIFO as the kernel's default options, read on the main thread
    opts = os.path.join(state['base'], 'vm-kernels', '6.1.0',
                        'default-kernelopts-nopci.txt')
    os.mkfifo(opts)
    try:
        t0 = time.monotonic()
        r = d.call('admin.vm.property.Get', 'work', 'kernelopts')
        assert r[0] == 'ok', r
        assert time.monotonic() - t0 < 5
    finally:
        os.unlink(opts)
    alive()


def test_hardlinked_image_not_grown():
    d = D()
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=hlink label=red')
    outside = os.path.join(state['fs'].mnt, 'outside-file')
    with open(outside, 'wb') as f:
        f.write(b'123456789')
    os.link(outside, dirty_image('hlink'))
    r = d.call('admin.vm.volume.Resize', 'hlink', 'private',
               str(3 << 30).encode())
    exc(r, 'StoragePoolException')
    assert 'more than one link' in r[2], r
    assert os.path.getsize(outside) == 9
    os.unlink(dirty_image('hlink'))
    d.ok('admin.vm.Remove', 'hlink')
    alive()


# ---- 6: a large preload-dispvm-max ----

def listed(vm):
    r = D().call('admin.vm.feature.Get', vm, 'preload-dispvm')
    return r[1].split() if r[0] == 'ok' else []


def timed(method, dest='dom0', arg='', payload=b''):
    t0 = time.monotonic()
    r = D().call(method, dest, arg, payload)
    return time.monotonic() - t0, r


def test_large_preload_max_keeps_qubesd_answering():
    d = D()
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=dvm label=red')
    d.ok('admin.vm.property.Set', 'dvm', 'template_for_dispvms', b'True')
    # a memory of a quarter of the host's: 3 or 4 fit
    with open('/proc/meminfo') as f:
        host_kib = int(f.readline().split()[1])
    mib = host_kib // 1024 // 4 + 1
    cap = (host_kib * 1024) // (mib << 20)
    d.ok('admin.vm.property.Set', 'dvm', 'maxmem', str(mib).encode())
    d.ok('admin.vm.property.Set', 'dvm', 'memory', str(mib).encode())
    for f in ('qrexec', 'supported-rpc.qubes.WaitForRunningSystem'):
        d.ok('admin.vm.feature.Set', 'tpl', f, b'1')
    d.ok('admin.vm.feature.Set', 'dvm', 'preload-dispvm-delay', b'0')
    # master's check: digits, however many
    exc(d.call('admin.vm.feature.Set', 'dvm', 'preload-dispvm-max', b'-1'),
        'QubesValueError')
    mark = len(d.read_log())
    took, r = timed('admin.vm.feature.Set', 'dvm', 'preload-dispvm-max',
                    b'100000')
    assert r[0] == 'ok', r
    assert took < 1.0, took

    def made():
        return d.read_log()[mark:].count('marking preloaded qube')

    def settled():
        return d.read_log()[mark:].count('removed (auto_cleanup)')
    # answered throughout the filling; no more made than fit in memory
    deadline = time.monotonic() + 120
    worst = 0.0
    while time.monotonic() < deadline and settled() < cap:
        took, r = timed('admin.vm.List')
        assert r[0] == 'ok', r
        worst = max(worst, took)
        time.sleep(0.05)
    assert worst < 1.0, worst
    time.sleep(2)
    log = d.read_log()[mark:]
    assert made() == cap, (cap, log)
    assert "not preloading '%d' disposable(s) due to insufficient " \
        "memory" % (100000 - cap) in log, log
    # every qube folder under appvms is one qubes.xml names
    names = set(l.split()[0] for l in d.ok('admin.vm.List').splitlines())
    for n in os.listdir(os.path.join(state['base'], 'appvms')):
        if not n.startswith('.'):
            assert n in names, (n, names)
    # 99999999999999999999 is digits too: accepted, capped alike
    took, r = timed('admin.vm.feature.Set', 'dvm', 'preload-dispvm-max',
                    b'99999999999999999999')
    assert r[0] == 'ok' and took < 1.0, (r, took)
    # SIGTERM is obeyed at once, and the restarted qubesd loads
    t0 = time.monotonic()
    d.stop()
    assert time.monotonic() - t0 < 10
    d.start()
    alive()
    assert len(listed('dvm')) <= cap
    d.ok('admin.vm.feature.Remove', 'dvm', 'preload-dispvm-max')
    deadline = time.monotonic() + 60
    while listed('dvm') and time.monotonic() < deadline:
        time.sleep(0.1)
    assert listed('dvm') == []


# ---- 7: a removed qube's files ----

def test_firewall_and_notes_racing_remove_not_inherited():
    d = D()
    for trial in range(20):
        name = 'race%d' % (trial % 3)
        d.ok('admin.vm.Create.AppVM', arg='tpl',
             payload='name=%s label=red' % name)
        results = {}

        def writer(i):
            out = []
            for _ in range(4):
                if i % 2:
                    out.append(d.call('admin.vm.firewall.Set', name, '',
                                      FW_DROP))
                else:
                    out.append(d.call('admin.vm.notes.Set', name, '',
                                      b'old notes'))
            results[i] = out

        def remover():
            time.sleep(0.002 * (trial % 5))
            results['rm'] = d.call('admin.vm.Remove', name)
        run_threads([lambda i=i: writer(i) for i in range(6)] + [remover])
        assert results['rm'][0] == 'ok', results
        for i in range(6):
            for r in results[i]:
                assert r[0] == 'ok' or r[1] in ('QubesVMNotFoundError',
                                                'QubesException'), results
        assert not os.path.exists(qube_dir(name)), os.listdir(qube_dir(name))
        d.ok('admin.vm.Create.AppVM', arg='tpl',
             payload='name=%s label=red' % name)
        assert d.ok('admin.vm.firewall.Get', name) == 'action=accept\n'
        assert d.ok('admin.vm.notes.Get', name) == ''
        d.ok('admin.vm.Remove', name)
    alive()


def test_folder_left_by_a_crash_set_aside():
    d = D()
    ghost = qube_dir('ghost')
    os.makedirs(ghost)
    with open(os.path.join(ghost, 'notes.txt'), 'w') as f:
        f.write('not yours')
    with open(os.path.join(ghost, 'firewall.xml'), 'w') as f:
        f.write('garbage')
    d.stop()
    mark = len(d.read_log())
    d.start()
    assert not os.path.exists(ghost)
    aside = os.path.join(state['base'], 'appvms', '.orphaned')
    kept = [n for n in os.listdir(aside) if n.startswith('ghost@')]
    assert len(kept) == 1, os.listdir(aside)
    with open(os.path.join(aside, kept[0], 'notes.txt')) as f:
        assert f.read() == 'not yours'
    log = d.read_log()[mark:]
    assert 'ghost: no qube of that name in qubes.xml' in log, log
    # the named qubes keep their folders
    assert os.path.isdir(qube_dir('work'))
    assert os.path.isdir(qube_dir('tpl', 'vm-templates'))
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=ghost label=red')
    assert d.ok('admin.vm.notes.Get', 'ghost') == ''
    assert d.ok('admin.vm.firewall.Get', 'ghost') == 'action=accept\n'
    d.ok('admin.vm.Remove', 'ghost')


def test_sigkill_during_create_leaves_nothing_adopted():
    d = D()
    # a creation killed before its save: files made, qubes.xml without it
    t = threading.Thread(target=lambda: d.call(
        'admin.vm.Create.AppVM', 'dom0', 'tpl', b'name=killed label=red'))
    t.start()
    deadline = time.monotonic() + 10
    while not os.path.exists(qube_dir('killed')) and \
            time.monotonic() < deadline:
        time.sleep(0.001)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    d.proc = None
    d.logf.close()
    t.join()
    d.start()
    names = [l.split()[0] for l in d.ok('admin.vm.List').splitlines()]
    if 'killed' in names:       # the save won the race: a whole qube
        d.ok('admin.vm.volume.Info', 'killed', 'private')
        d.ok('admin.vm.Remove', 'killed')
    else:
        assert not os.path.exists(qube_dir('killed'))
    alive()


if __name__ == '__main__':
    sys.exit(run_file(globals(), setup, state, after))
