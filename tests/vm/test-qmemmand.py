#!/usr/bin/python3
"""qmemmand against a private libvirtd (QEMU): its socket protocol.

    test-qmemmand.py PATH/TO/qmemmand CACHE_DIR

The reference's protocol: "N\\n" (bytes) answered OK or FAIL, the
reservation held until the client leaves (a second client waits), one
request per connection, garbage answered INVALID_ARG and never a crash.
"""
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'daemon'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qubesd_harness import Skip, in_ci, run_file  # noqa: E402
import vmenv  # noqa: E402

QMEMMAND = os.path.abspath(sys.argv[1])
CACHE = os.path.abspath(sys.argv[2])
MiB = 1024 * 1024
state = {}


def setup():
    try:
        lv = vmenv.private_libvirtd(CACHE, prefix='qm')
        state['lv'] = lv
        work = state['work'] = lv.work
    except RuntimeError as e:
        if in_ci():
            raise
        raise Skip(str(e))
    state['sock'] = os.path.join(work, 'qmemman.sock')
    state['log'] = open(os.path.join(work, 'qmemmand.log'), 'w+')
    # a host of 1200 MiB for the domains, none running: all of it free
    state['proc'] = subprocess.Popen(
        [QMEMMAND, '--config', os.path.join(work, 'none.conf'),
         '--socket', state['sock'], '--libvirt-uri', lv.uri,
         '--total-mem', '1200MiB', '--host-reserve', '0'],
        stdout=state['log'], stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not os.path.exists(state['sock']):
        assert state['proc'].poll() is None, read_log()
        assert time.monotonic() < deadline, read_log()
        time.sleep(0.1)


def after():
    p = state.get('proc')
    if p:
        p.terminate()
        p.wait(10)
    if state.get('lv'):
        state['lv'].stop()
    if state.get('work'):
        vmenv.run(['rm', '-rf', state['work']])


def read_log():
    state['log'].seek(0)
    return state['log'].read()[-3000:]


def connect():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(state['sock'])
    return s


def ask(data, keep=False):
    s = connect()
    s.sendall(data)
    answer = s.recv(64)
    if keep:
        return s, answer
    s.close()
    return answer


def test_requests():
    assert ask(b'%d\n' % (100 * MiB)) == b'OK\n', read_log()
    assert ask(b'%d\n' % (2048 * MiB)) == b'FAIL\n', read_log()
    assert ask(b'  %d  \r\n' % MiB) == b'OK\n'


def test_garbage_answered():
    for bad in (b'abc\n', b'-5\n', b'1e9\n', b'\xff\xfe\n', b'12 34\n'):
        assert ask(bad) == b'INVALID_ARG\n', (bad, read_log())
    # master's per-domain form: not served here yet, refused
    assert ask(b'work:104857600\n') == b'FAIL\n'
    assert state['proc'].poll() is None, read_log()


def test_reservation_held_until_the_client_leaves():
    first, answer = ask(b'%d\n' % (10 * MiB), keep=True)
    assert answer == b'OK\n'
    got = []

    def second():
        got.append((ask(b'%d\n' % (10 * MiB)), time.monotonic()))
    t = threading.Thread(target=second)
    t.start()
    time.sleep(1.5)
    assert not got, 'the second client was served during the reservation'
    left = time.monotonic()
    first.close()
    t.join(30)
    assert got and got[0][0] == b'OK\n', got
    assert got[0][1] >= left
    assert 'client disconnected, resuming membalance' in read_log()


def test_one_request_per_connection():
    s = connect()
    s.sendall(b'%d\n' % MiB)
    assert s.recv(64) == b'OK\n'
    s.sendall(b'%d\n' % MiB)
    # the second request closes the connection, releasing the lock
    assert s.recv(64) == b''
    s.close()
    assert ask(b'%d\n' % MiB) == b'OK\n'
    assert 'Second request over qmemman.sock?' in read_log()


GUEST_XML = """<domain type='qemu'>
  <name>%(name)s</name>
  <memory unit='MiB'>512</memory>
  <currentMemory unit='MiB'>400</currentMemory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%(kdir)s/vmlinuz</kernel><initrd>%(kdir)s/initramfs</initrd>
    <cmdline>console=ttyS0</cmdline></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <serial type='pty'><log file='%(log)s'/><target port='0'/></serial>
    <memballoon model='virtio' autodeflate='on'><stats period='1'/></memballoon>
  </devices>
</domain>
"""


def balloon(name):
    """The guest's balloon size (KiB, libvirt's 'actual')."""
    r = state['lv'].virsh('dommemstat', name)
    for line in r.stdout.splitlines():
        k, _, v = line.partition(' ')
        if k == 'actual':
            return int(v)
    return None


def wait_until(cond, what, timeout=90):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, (what, read_log())
        time.sleep(0.5)


def start_guests():
    version, kdir = vmenv.guest_kernel(CACHE)
    for name in ('g1', 'g2'):
        log = os.path.join(state['work'], '%s.log' % name)
        path = os.path.join(state['work'], '%s.xml' % name)
        with open(path, 'w') as f:
            f.write(GUEST_XML % dict(name=name, kdir=kdir, log=log))
        r = state['lv'].virsh('create', path)
        assert r.returncode == 0, r.stderr
    for name in ('g1', 'g2'):
        log = os.path.join(state['work'], '%s.log' % name)
        wait_until(lambda: os.path.exists(log) and
                   'QUBES-READY' in open(log, errors='replace').read(),
                   name + ' boots')


def test_balancing_real_guests():
    """Two guests (512 MiB maximum, 400 at start) on a host of 1200 MiB
    for them: qmemmand sees them appear and balances (they use little, so
    they share what is free); a request takes memory from both (their
    balloons shrink), stays held while the client is connected, and
    after it leaves, they grow back."""
    start_guests()
    wait_until(lambda: 'domain g2 appeared' in read_log(), 'g2 seen')
    # they report their use, then a balance gives them the free memory
    wait_until(lambda: balloon('g1') != 400 * 1024 and
               balloon('g2') != 400 * 1024, 'first balance')
    b1, b2 = balloon('g1'), balloon('g2')
    before = b1 + b2
    s, answer = ask(b'%d\n' % (300 * MiB), keep=True)
    try:
        assert answer == b'OK\n', read_log()
        d1, d2 = balloon('g1'), balloon('g2')
        during = d1 + d2
        # the host has the request free, and both donors gave
        assert during <= 1200 * 1024 - 300 * 1024, (b1, b2, d1, d2)
        assert d1 < b1 - 16 * 1024 and d2 < b2 - 16 * 1024, (b1, b2, d1, d2,
                                                              read_log())
        time.sleep(3)  # held: no balance gives it back meanwhile
        assert balloon('g1') + balloon('g2') <= during + 16 * 1024
    finally:
        s.close()
    wait_until(lambda: balloon('g1') + balloon('g2') > during + 100 * 1024,
               'grown back after the client left')
    assert 'stat: dom ' in read_log()


if __name__ == '__main__':
    sys.exit(run_file(globals(), setup, state, after))
