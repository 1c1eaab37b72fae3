#!/usr/bin/python3
"""A disposable on request: made and booted, or preloaded.

    bench/dispvm.py QUBESD CACHE_DIR [CYCLES]

A disposable template (256 MiB, the test guest of tests/vm/vmenv.py) on
a loop-mounted btrfs pool under a private libvirtd (QEMU; TCG here).
CYCLES times (default 5) each, measured from the request:

- fresh: admin.vm.CreateDisposable (the DispVM made on disk), then
  admin.vm.Start (it runs), then its guest ready (QUBES-READY on its
  console);
- preloaded (preload-dispvm-max 1, preload-dispvm-delay 0): once the
  preloaded one is paused, admin.vm.CreateDisposable (it is handed out,
  running), then its guest ready (it finishes its boot: there is no
  qrexec here to wait for before pausing it).

Each DispVM is killed after (it removes itself). Prints the medians (ms)
and the ratios fresh/preloaded.
"""
import os
import sys
import time

from benchvm import ms, qubesd_on_libvirt

TIMEOUT = 180


def wait(pred, what):
    deadline = time.monotonic() + TIMEOUT
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            sys.exit('timed out waiting for %s' % what)
        time.sleep(0.05)


def main():
    qubesd = os.path.abspath(sys.argv[1])
    cache = os.path.abspath(sys.argv[2])
    cycles = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    with qubesd_on_libvirt(qubesd, cache) as (d, lv, fs, logs):
        d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=dvm label=red')
        for k, v in (('memory', '256'), ('maxmem', '256'), ('netvm', ''),
                     ('template_for_dispvms', 'True')):
            d.ok('admin.vm.property.Set', 'dvm', k, v)
        for f in ('qrexec', 'supported-rpc.qubes.WaitForRunningSystem'):
            d.ok('admin.vm.feature.Set', 'dvm', f, '1')
        d.ok('admin.vm.feature.Set', 'dvm', 'preload-dispvm-delay', '0')

        def ready(name):
            path = os.path.join(logs, 'guest-%s.log' % name)
            try:
                with open(path, 'rb') as f:
                    return b'QUBES-READY' in f.read()
            except FileNotFoundError:
                return False

        def gone(name):
            d.ok('admin.vm.Kill', name)
            wait(lambda: '%s class=' % name not in
                 d.ok('admin.vm.List', 'dom0'), name + ' gone')

        fresh = {'create': [], 'running': [], 'ready': []}
        for _ in range(cycles + 1):  # the first warms up
            t0 = time.perf_counter()
            name = d.ok('admin.vm.CreateDisposable', 'dvm')
            t1 = time.perf_counter()
            d.ok('admin.vm.Start', name)
            t2 = time.perf_counter()
            wait(lambda: ready(name), name + ' ready')
            t3 = time.perf_counter()
            gone(name)
            fresh['create'].append(t1 - t0)
            fresh['running'].append(t2 - t0)
            fresh['ready'].append(t3 - t0)

        def listed():
            r = d.call('admin.vm.feature.Get', 'dvm', 'preload-dispvm')
            return r[1] if r[0] == 'ok' and r[1] else None

        def completed(name):
            r = d.call('admin.vm.feature.Get', name,
                       'preload-dispvm-completed')
            return r == ('ok', '1')

        pre = {'running': [], 'ready': []}
        d.ok('admin.vm.feature.Set', 'dvm', 'preload-dispvm-max', '1')
        for _ in range(cycles + 1):
            name = wait(listed, 'a preloaded DispVM')
            wait(lambda: completed(name), name + ' paused')
            t0 = time.perf_counter()
            got = d.ok('admin.vm.CreateDisposable', 'dvm')
            t1 = time.perf_counter()
            assert got == name, (got, name)
            wait(lambda: ready(name), name + ' ready')
            t2 = time.perf_counter()
            wait(lambda: listed() not in (None, name), 'the next preload')
            gone(name)
            pre['running'].append(t1 - t0)
            pre['ready'].append(t2 - t0)
        d.ok('admin.vm.feature.Set', 'dvm', 'preload-dispvm-max', '0')
        for v in list(fresh.values()) + list(pre.values()):
            del v[0]
        print('cycles=%d (medians from the request, ms)' % cycles)
        print('%-30s %10s %10s' % ('', 'running', 'guest ready'))
        print('%-30s %10.1f %10.1f' % ('fresh (Create, Start)',
                                       ms(fresh['running']),
                                       ms(fresh['ready'])))
        print('%-30s %10.1f %10.1f' % ('preloaded (Create)',
                                       ms(pre['running']), ms(pre['ready'])))
        print('fresh_create_ms=%.1f running_ratio=%.1f ready_ratio=%.2f' % (
            ms(fresh['create']), ms(fresh['running']) / ms(pre['running']),
            ms(fresh['ready']) / ms(pre['ready'])))


if __name__ == '__main__':
    main()
