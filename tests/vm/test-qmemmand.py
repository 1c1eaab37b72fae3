#!/usr/bin/python3
"""qmemmand against a private libvirtd (QEMU): its socket protocol, and
balancing real guests.

    test-qmemmand.py PATH/TO/qmemmand CACHE_DIR BUILD_SRC_DIR

The reference's protocol: "N\\n" (bytes) answered OK or FAIL, master's
"ID:BYTES ..." form, the reservation held until the client leaves (a
second client waits), one request per connection, garbage answered
INVALID_ARG and never a crash. Then real guests: balanced as they come,
a request taken from their balloons, a third guest's start taking memory
that the others get back at its stop, a guest whose balloon does not
move marked no_progress (cleared once it moves and asks for more), a
guest that never reports left alone, qmemmand restarted under running
guests, and the state as qvm-memory shows it and as a qmemman-sim case.
"""
import json
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
BIN = os.path.abspath(sys.argv[3])
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
    state['status'] = os.path.join(work, 'qmemman-status.sock')
    state['avail'] = os.path.join(work, 'qmemman-avail-mem')
    state['inhibit'] = os.path.join(work, 'do-not-membalance')
    state['log'] = open(os.path.join(work, 'qmemmand.log'), 'a+')
    start_qmemmand()


def start_qmemmand():
    """A host of 1200 MiB for the domains (none running at first: all of
    it free)."""
    lv = state['lv']
    state['proc'] = subprocess.Popen(
        [QMEMMAND, '--config', os.path.join(state['work'], 'none.conf'),
         '--socket', state['sock'], '--status-socket', state['status'],
         '--avail-mem-file', state['avail'],
         '--inhibit-file', state['inhibit'], '--libvirt-uri', lv.uri,
         '--total-mem', '1200MiB', '--host-reserve', '0'],
        stdout=state['log'], stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not (os.path.exists(state['sock']) and
               os.path.exists(state['status'])):
        assert state['proc'].poll() is None, read_log()
        assert time.monotonic() < deadline, read_log()
        time.sleep(0.1)


def after():
    p = state.get('proc')
    try:
        if p:
            p.terminate()
            # a clean exit (under ASan: nothing leaked, no error)
            assert p.wait(30) == 0, read_log()
    finally:
        # the guests and libvirtd go whatever the exit was
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
    # master's per-domain form: malformed pairs are garbage; a domain
    # qmemmand does not know is refused
    for bad in (b'work:x\n', b'work:1:2\n', b'work:5 7\n', b'w:\xff\n'):
        assert ask(bad) == b'INVALID_ARG\n', (bad, read_log())
    assert ask(b'work:104857600\n') == b'FAIL\n'
    # a client that leaves without a word, or in the middle of a line:
    # what came is the request (one read, as the reference's recv)
    connect().close()
    s = connect()
    s.sendall(b'%d' % MiB)
    assert s.recv(64) == b'OK\n'
    s.close()
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
    %(balloon)s
  </devices>
</domain>
"""
BALLOON = ("<memballoon model='virtio' autodeflate='on'>"
           "<stats period='1'/></memballoon>")


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


def create_guest(name, balloon=BALLOON):
    version, kdir = vmenv.guest_kernel(CACHE)
    log = os.path.join(state['work'], '%s.log' % name)
    path = os.path.join(state['work'], '%s.xml' % name)
    with open(path, 'w') as f:
        f.write(GUEST_XML % dict(name=name, kdir=kdir, log=log,
                                 balloon=balloon))
    r = state['lv'].virsh('create', path)
    assert r.returncode == 0, r.stderr


def wait_booted(name):
    log = os.path.join(state['work'], '%s.log' % name)
    wait_until(lambda: os.path.exists(log) and
               'QUBES-READY' in open(log, errors='replace').read(),
               name + ' boots')


def start_guests():
    for name in ('g1', 'g2'):
        create_guest(name)
    for name in ('g1', 'g2'):
        wait_booted(name)


def status(what=b'state'):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(state['status'])
    s.sendall(what + b'\n')
    data = b''
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def dom_state(name):
    for d in json.loads(status())['domains']:
        if d['id'] == name:
            return d
    return None


def console(name, line):
    """A command for the guest's shell on its serial console."""
    r = state['lv'].virsh('ttyconsole', name)
    assert r.returncode == 0, r.stderr
    with open(r.stdout.strip(), 'w') as tty:
        tty.write(line + '\n')


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


def test_state_shown_and_replayable():
    """qvm-memory shows each guest's figures and the last decision; the
    state as a qmemman-sim case replays through the same algorithm; the
    available-memory file follows each balance."""
    r = subprocess.run([os.path.join(BIN, 'qvm-memory'), '--status-socket',
                        state['status']], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()
            if line.split() and line.split()[0] in ('g1', 'g2')}
    assert set(rows) == {'g1', 'g2'}, r.stdout
    # ACTUAL CURRENT USED PREF TARGET MAX, in MiB
    for name, row in rows.items():
        assert row[6] == '512', r.stdout
        # actual = max(current, target); it used something and prefers
        # at least vm-min-mem (200 MiB)
        assert int(row[2]) <= int(row[1]) <= 512, r.stdout
        assert 0 < int(row[3]) < 512 and int(row[4]) >= 200, r.stdout
    assert 'last decision: ' in r.stdout and 'because ' in r.stdout, r.stdout
    assert 'mode enough' in r.stdout or 'mode low' in r.stdout, r.stdout
    assert 'last request: ' in r.stdout, r.stdout
    case = subprocess.run([os.path.join(BIN, 'qvm-memory'), '--case',
                           '--status-socket', state['status']],
                          capture_output=True, text=True, check=True).stdout
    c = json.loads(case)
    assert c['op'] == 'balance' and c['id'].startswith('qmemmand-'), case
    # in qmemmand's order of discovery (the reference's dict), which is
    # libvirt's listing order: either may come first
    assert sorted(d['id'] for d in c['domains']) == ['g1', 'g2'], case
    out = subprocess.run([os.path.join(BIN, 'qmemman-sim')], input=case,
                         capture_output=True, text=True, check=True).stdout
    decision = json.loads(out)
    assert decision['op'] == 'balance', out
    assert decision['decision']['xenfree'] == c['free'] - sum(
        max(0, d['last_target'] - d['mem_current']) for d in c['domains'])
    with open(state['avail']) as f:
        int(f.read())
    assert oct(os.stat(state['avail']).st_mode & 0o777) == '0o644'


def test_per_domain_request():
    """master's ID:BYTES form on a real guest: g1's balloon goes down to
    what was asked (within the reference's 1.1 margin)."""
    s, answer = ask(b'g1:%d\n' % (300 * MiB), keep=True)
    try:
        assert answer == b'OK\n', read_log()
        assert balloon('g1') <= 1.1 * 300 * 1024, balloon('g1')
        assert dom_state('g1')['last_target'] == 300 * MiB
    finally:
        s.close()


def test_third_guest_takes_and_gives_back():
    """As qubesd starts a qube: its memory asked first and held until
    the domain exists. The others' balloons give it; once it runs it is
    balanced with them; when it stops, they grow back."""
    wait_until(lambda: balloon('g1') + balloon('g2') > 1000 * 1024,
               'balanced again')
    want = 400 * MiB + 4 * MiB + 1572864  # memory + qubesd's overheads
    s, answer = ask(b'%d\n' % want, keep=True)
    try:
        try:
            assert answer == b'OK\n', read_log()
            # the host (1200 MiB for domains) has it free, plus the
            # reference's 25 MiB minimum
            given = balloon('g1') + balloon('g2')
            assert given * 1024 <= 1200 * MiB - want - 25 * MiB + 16 * MiB, \
                given
            create_guest('g3')
        finally:
            s.close()
        wait_booted('g3')
        wait_until(lambda: 'domain g3 appeared' in read_log(), 'g3 seen')
        wait_until(lambda: dom_state('g3')['last_target'], 'g3 balanced')
        total = balloon('g1') + balloon('g2') + balloon('g3')
        assert total <= 1200 * 1024 + 16 * 1024, total
        during = balloon('g1') + balloon('g2')
    finally:
        state['lv'].virsh('destroy', 'g3')
    wait_until(lambda: 'domain g3 went' in read_log(), 'g3 gone')
    wait_until(lambda: balloon('g1') + balloon('g2') > during + 200 * 1024,
               'the others grown back')


def test_stuck_guest_marked_then_cleared():
    """A guest whose balloon does not move (paused) gets no_progress
    during a request that needs it; once it runs and asks for more, the
    flag goes."""
    wait_until(lambda: balloon('g1') + balloon('g2') > 1000 * 1024,
               'balanced again')
    assert state['lv'].virsh('suspend', 'g1').returncode == 0
    try:
        s, answer = ask(b'%d\n' % (500 * MiB), keep=True)
        try:
            assert answer in (b'OK\n', b'FAIL\n'), answer
            assert dom_state('g1')['no_progress'], read_log()
            assert not dom_state('g2')['no_progress'], read_log()
            assert 'domain g1 stuck at' in read_log()
        finally:
            s.close()
        r = subprocess.run([os.path.join(BIN, 'qvm-memory'),
                            '--status-socket', state['status']],
                           capture_output=True, text=True, check=True)
        assert 'no_progress' in r.stdout and 'did not give memory back' in \
            r.stdout, r.stdout
    finally:
        assert state['lv'].virsh('resume', 'g1').returncode == 0
    # it runs again and needs more memory (60 MB held by its shell)
    console('g1', "x=$(head -c 60000000 /dev/zero | tr '\\0' a); echo HELD")
    wait_until(lambda: not dom_state('g1')['no_progress'], 'flag cleared')


def test_unreported_guest_left_alone():
    """A guest without balloon statistics never takes part; the others
    are still balanced around the memory it holds."""
    create_guest('g4', "<memballoon model='none'/>")
    try:
        wait_booted('g4')
        time.sleep(5)
        assert 'domain g4 appeared' not in read_log()
        assert dom_state('g4') is None
        assert ask(b'%d\n' % (50 * MiB)) == b'OK\n'
    finally:
        state['lv'].virsh('destroy', 'g4')


def test_restart_under_running_guests():
    """qmemmand restarted while guests run: it finds them again and
    balances and serves as before."""
    state['proc'].terminate()
    assert state['proc'].wait(30) == 0, read_log()
    log = read_log()
    seen = log.count('domain g1 appeared')
    start_qmemmand()
    wait_until(lambda: read_log().count('domain g1 appeared') > seen and
               read_log().count('domain g2 appeared') > seen, 'found again')
    assert ask(b'%d\n' % (100 * MiB)) == b'OK\n', read_log()
    wait_until(lambda: dom_state('g1') and dom_state('g1')['last_target'],
               'balanced after the restart')


if __name__ == '__main__':
    sys.exit(run_file(globals(), setup, state, after))
