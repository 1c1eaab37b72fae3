#!/usr/bin/python3
"""qubesd's autostart over libvirt's test driver (no guest runs: what is
checked is when and whether qubesd starts the qubes whose autostart is
True, by its log).

    test-autostart.py PATH/TO/qubesd

- On Xen, autostart waits until qmemmand's state (its status socket,
  played here by this test) shows dom0's memory use, then starts.
- Without qmemmand, it does not wait.
- Once per boot: with the marker there, nothing is started; with
  --no-autostart neither, and no marker is written.
"""
import json
import os
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qubesd_harness import run_file  # noqa: E402
from qubesd_harness import Daemon, LoopFS, make_kernel  # noqa: E402

QUBESD = os.path.abspath(sys.argv[1])
state = {}


class FakeQmemmanStatus:
    """qmemmand's status socket: dom0 unreported until report()."""

    def __init__(self, path):
        self.path = path
        self.used = None
        self.asked = 0
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(8)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.recv(64)
                self.asked += 1
                st = {'hypervisor': 'xen', 'domains': [
                    {'id': '0', 'mem_used': self.used},
                    {'id': '3', 'mem_used': 300 << 20}]}
                c.sendall(json.dumps(st).encode() +
                          b'\n')

    def report(self):
        self.used = 1 << 30

    def close(self):
        self.sock.close()


def setup():
    fs = LoopFS('xfs')
    state['fs'] = fs
    base = os.path.join(fs.mnt, 'qubes')
    make_kernel(base, '6.1.0')
    state['tmp'] = tempfile.mkdtemp(prefix='qubes-autostart-')
    state['marker'] = os.path.join(state['tmp'], 'run', 'autostart-done')
    state['status'] = os.path.join(state['tmp'], 'qmemman-status.sock')
    d = Daemon(QUBESD, base, offline=False,
               args=['--libvirt-uri', 'test:///default', '--domain-type',
                     'xen', '--qmemman-socket',
                     os.path.join(state['tmp'], 'no-qmemman.sock'),
                     '--qmemman-status-socket', state['status'],
                     '--autostart-marker', state['marker']])
    state['d'] = d.start()
    d.ok('admin.vm.Create.TemplateVM', payload='name=tpl label=black')
    for vm in ('work', 'net'):
        d.ok('admin.vm.Create.AppVM', arg='tpl',
             payload='name=%s label=red' % vm)
    d.ok('admin.vm.property.Set', 'work', 'autostart', 'True')
    d.ok('admin.vm.property.Set', 'net', 'autostart', 'True')


def after():
    import shutil
    shutil.rmtree(state.get('tmp', '/nonexistent'), ignore_errors=True)


def restart(extra=()):
    """qubesd again; returns where its log of this run begins."""
    d = state['d']
    d.stop()
    args = list(d.args)
    d.args += list(extra)
    mark = len(d.read_log())
    d.start()
    d.args[:] = args
    return mark


def log_since(mark):
    return state['d'].read_log()[mark:]


def wait_log(mark, text, timeout=30):
    deadline = time.monotonic() + timeout
    while text not in log_since(mark):
        assert time.monotonic() < deadline, (text, log_since(mark))
        time.sleep(0.1)


def test_xen_waits_for_dom0_report():
    fake = FakeQmemmanStatus(state['status'])
    try:
        if os.path.exists(state['marker']):
            os.unlink(state['marker'])
        mark = restart()
        deadline = time.monotonic() + 10
        while fake.asked < 3:
            assert time.monotonic() < deadline, log_since(mark)
            time.sleep(0.1)
        # asked again and again, nothing started while dom0 is unreported
        assert 'Starting ' not in log_since(mark), log_since(mark)
        assert not os.path.exists(state['marker'])
        fake.report()
        wait_log(mark, 'dom0 reported its memory use to qmemmand')
        # in qid order, each tried (the test driver has no kernel for
        # them: the failure is logged and the next goes on)
        wait_log(mark, 'net: autostart')
        log = log_since(mark)
        assert log.index('dom0 reported') < log.index('Starting work') < \
            log.index('Starting net'), log
        assert 'work: autostart' in log, log
        deadline = time.monotonic() + 10
        while not os.path.exists(state['marker']):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        fake.close()
        os.unlink(state['status'])


def test_no_qmemmand_no_wait():
    os.unlink(state['marker'])
    mark = restart()
    wait_log(mark, 'net: autostart')
    assert 'not waiting for dom0' in log_since(mark), log_since(mark)


def test_once_per_boot():
    assert os.path.exists(state['marker'])
    mark = restart()
    time.sleep(3)
    assert 'Starting ' not in log_since(mark), log_since(mark)


def test_no_autostart():
    os.unlink(state['marker'])
    mark = restart(['--no-autostart'])
    time.sleep(3)
    assert 'Starting ' not in log_since(mark), log_since(mark)
    assert not os.path.exists(state['marker'])
    restart()  # the next test's daemon as setup made it


if __name__ == '__main__':
    sys.exit(run_file(globals(), setup, state, after))
