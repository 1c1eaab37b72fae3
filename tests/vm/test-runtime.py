#!/usr/bin/python3
"""The VM runtime with real guests: qubesd drives QEMU (TCG) through a
private libvirtd, on a pool on a loop-mounted btrfs.

    test-runtime.py PATH/TO/qubesd CACHE_DIR [TOOLS_DIR]

CACHE_DIR keeps the guest kernel and libvirt's capabilities between runs.
Under CI=true a missing piece (libvirtd, QEMU, the kernel package) fails.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
import tty

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'daemon'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qubesd_harness import Daemon, LoopFS, Skip, in_ci  # noqa: E402
from qubesd_harness import parse_events  # noqa: E402
from qubesd_harness import run_file  # noqa: E402
import vmenv  # noqa: E402

QUBESD = os.path.abspath(sys.argv[1])
CACHE = os.path.abspath(sys.argv[2])
TOOLS = os.path.abspath(sys.argv[3]) if len(sys.argv) > 3 else None
BOOT_TIMEOUT = 90  # TCG boots in 5 to 12 s; a loaded machine takes longer
state = {}


def setup():
    try:
        if not os.access(QUBESD, os.X_OK):
            raise RuntimeError('no qubesd at %s' % QUBESD)
        version, kdir = vmenv.guest_kernel(CACHE)
        fs = LoopFS('btrfs', '4G')
        state['fs'] = fs
        # libvirtd's mount namespace sees what is mounted before it starts
        lv = vmenv.private_libvirtd(CACHE, keep=[fs.mnt])
        state['lv'] = lv
        work = state['work'] = lv.work
    except RuntimeError as e:
        if in_ci():
            raise
        raise Skip(str(e))
    base = os.path.join(fs.mnt, 'qubes')
    os.makedirs(base)
    vmenv.install_kernel(base, version, kdir)
    state['logs'] = os.path.join(work, 'logs')
    # qubesd makes the qubes' bridges where libvirtd's taps are: in its
    # network namespace
    d = Daemon(QUBESD, base, offline=False,
               args=['--libvirt-uri', lv.uri, '--domain-type', 'qemu',
                     '--log-dir', state['logs'],
                     '--qmemman-avail-mem-file',
                     os.path.join(work, 'qmemman-avail-mem'),
                     '--autostart-marker',
                     os.path.join(work, 'autostart-done'),
                     '--suspend-list',
                     os.path.join(work, 'previously-paused.list')],
               wrapper=lv.enter())
    state['d'] = d.start()
    state['base'] = base
    d.ok('admin.property.Set', arg='default_kernel', payload=version)
    d.ok('admin.vm.Create.TemplateVM', arg='', payload='name=tpl label=black')
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=work label=red')
    for vm in ('tpl', 'work'):
        d.ok('admin.vm.property.Set', vm, 'memory', '256')
        d.ok('admin.vm.property.Set', vm, 'maxmem', '320')
        d.ok('admin.vm.property.Set', vm, 'netvm', '')


def after():
    lv = state.get('lv')
    if lv:
        lv.stop()
    if state.get('work'):
        vmenv.run(['rm', '-rf', state['work']])


def console_log(vm):
    p = os.path.join(state['logs'], 'guest-%s.log' % vm)
    try:
        with open(p, errors='replace') as f:
            return f.read()
    except FileNotFoundError:
        return ''


def wait_log(vm, marker, start=0, timeout=BOOT_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = console_log(vm)
        if marker in text[start:]:
            return text
        time.sleep(0.2)
    raise AssertionError('%s: no %r in %d s; console:\n%s\nqubesd:\n%s' % (
        vm, marker, timeout, console_log(vm)[-3000:],
        state['d'].read_log()[-3000:]))


def wait_state(vm, want, timeout=60):
    d = state['d']
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = d.ok('admin.vm.CurrentState', vm)
        if 'power_state=%s' % want in st:
            return st
        time.sleep(0.2)
    raise AssertionError('%s not %s: %s' % (vm, want, st))


class Console:
    """The guest's serial console: the pty that admin.vm.Console gives,
    as master's. QEMU notices a client on its pty within a second and
    reads nothing before, so the pty stays open while a command runs."""

    def __init__(self, vm):
        self.vm = vm
        pty = state['d'].ok('admin.vm.Console', vm)
        assert pty.startswith('/dev/pts/'), pty
        self.fd = os.open(pty, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        time.sleep(1.5)

    def send(self, command):
        os.write(self.fd, (command + '\n').encode())

    def close(self):
        os.close(self.fd)


def console_send(vm, command):
    c = Console(vm)
    try:
        c.send(command)
        time.sleep(1)
    finally:
        c.close()


def console_run(vm, command, marker):
    """Runs @command on the guest and waits for @marker after it on the
    console log."""
    c = Console(vm)
    try:
        start = len(console_log(vm))
        c.send(command)
        return wait_log(vm, marker, start, timeout=60)
    finally:
        c.close()


def tool(name, *args, rc=0):
    """Runs a qvm-* tool against the daemon; returns (stdout, stderr)."""
    if not TOOLS:
        raise Skip('no tools folder given')
    env = dict(os.environ, QUBESD_SOCKET=state['d'].sock)
    r = subprocess.run([os.path.join(TOOLS, name)] + list(args),
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == rc, (name, args, r.returncode, r.stdout,
                                r.stderr)
    return r.stdout, r.stderr


def halt(vm='work'):
    """Each test starts from a halted qube, whatever the last one left."""
    d = state['d']
    if 'power_state=Halted' not in d.ok('admin.vm.CurrentState', vm):
        d.call('admin.vm.Kill', vm)
        wait_state(vm, 'Halted')


def read_at(path, offset, n):
    with open(path, 'rb') as f:
        f.seek(offset)
        return f.read(n)


def test_start_write_stop_commits_private_and_drops_root():
    d = state['d']
    halt()
    base = state['base']
    assert 'power_state=Halted' in d.ok('admin.vm.CurrentState', 'work')
    d.ok('admin.vm.Start', 'work')
    st = d.ok('admin.vm.CurrentState', 'work')
    assert 'power_state=Running' in st, st
    fields = dict(f.split('=') for f in st.split())
    assert int(fields['mem']) > 0 and \
        int(fields['mem_static_max']) == 320 * 1024, st
    assert d.ok('admin.vm.List', 'work').startswith(
        'work class=AppVM state=Running')
    text = wait_log('work', 'QUBES-READY')
    for name in ('root', 'private', 'volatile', 'kernel'):
        assert 'QUBES-DISK vd' in text and (' %s\n' % name) in \
            text.replace('\r', ''), (name, text[-2000:])
    console_run('work',
                'echo guest-wrote-private | dd of=$(disk private) bs=512 '
                'seek=8 conv=fsync 2>/dev/null && echo WROTE-PRIVATE',
                'WROTE-PRIVATE')
    console_run('work',
                'echo guest-wrote-root | dd of=$(disk root) bs=512 '
                'seek=8 conv=fsync 2>/dev/null && echo WROTE-ROOT',
                'WROTE-ROOT')
    # running: the guest's fsync reached the running image already
    d.ok('admin.vm.Shutdown', 'work', 'wait')
    assert 'power_state=Halted' in d.ok('admin.vm.CurrentState', 'work')
    private = os.path.join(base, 'appvms', 'work', 'private.img')
    assert read_at(private, 4096, 19) == b'guest-wrote-private'
    root = os.path.join(base, 'vm-templates', 'tpl', 'root.img')
    assert read_at(root, 4096, 16) != b'guest-wrote-root'
    snaps = d.ok('admin.vm.volume.ListSnapshots', 'work', 'private')
    assert len(snaps.split()) == 1, snaps
    # nothing of the run is left beside the committed images
    left = sorted(os.listdir(os.path.join(base, 'appvms', 'work')))
    assert not [f for f in left if 'dirty' in f], left


def test_refusals_as_master():
    d = state['d']
    halt()
    assert d.call('admin.vm.Shutdown', 'work') == (
        'exc', 'QubesVMNotStartedError', "Domain is powered off: 'work'")
    assert d.call('admin.vm.Kill', 'work') == (
        'exc', 'QubesVMNotStartedError', "Domain is powered off: 'work'")
    assert d.call('admin.vm.Pause', 'work') == (
        'exc', 'QubesVMNotRunningError',
        "Domain not running (either powered off or paused): 'work'")
    assert d.call('admin.vm.Unpause', 'work') == (
        'exc', 'QubesVMNotPausedError', "Domain is not paused: 'work'")
    assert d.call('admin.vm.Shutdown', 'work', 'now')[0:2] == (
        'exc', 'ProtocolError')
    assert d.call('admin.vm.Start', 'work', 'x')[0:2] == (
        'exc', 'ProtocolError')
    # a pvh qube without a kernel does not start, with the seed's message
    d.ok('admin.vm.property.Set', 'work', 'kernel', '')
    try:
        assert d.call('admin.vm.Start', 'work') == (
            'exc', 'QubesException', 'virt_mode PVH require kernel to be set')
    finally:
        d.ok('admin.vm.property.Reset', 'work', 'kernel')
    assert 'power_state=Halted' in d.ok('admin.vm.CurrentState', 'work')


def test_kernel_without_modules_img():
    """A kernel folder with vmlinuz and initramfs but no modules.img (as
    master accepts it, issue 29): the qube starts and boots, and its
    domain has no modules disk."""
    d = state['d']
    halt()
    version = prop('work', 'kernel')
    kernels = os.path.join(state['base'], 'vm-kernels')
    bare = version + '-nomodules'
    os.makedirs(os.path.join(kernels, bare))
    for f in ('vmlinuz', 'initramfs'):
        shutil.copy(os.path.join(kernels, version, f),
                    os.path.join(kernels, bare, f))
    d.ok('admin.vm.property.Set', 'work', 'kernel', bare)
    try:
        start_ready('work')
        xml = state['lv'].virsh('dumpxml', 'work').stdout
        assert '/%s/vmlinuz' % bare in xml, xml
        assert '/%s/initramfs' % bare in xml, xml
        assert 'modules.img' not in xml, xml
        halt()
    finally:
        halt()
        d.ok('admin.vm.property.Reset', 'work', 'kernel')
        shutil.rmtree(os.path.join(kernels, bare))


def test_pause_unpause_kill():
    d = state['d']
    halt()
    d.ok('admin.vm.Start', 'work')
    wait_log('work', 'QUBES-READY', len(console_log('work')))
    d.ok('admin.vm.Pause', 'work')
    assert 'power_state=Paused' in d.ok('admin.vm.CurrentState', 'work')
    assert d.call('admin.vm.Console', 'work')[1] == 'QubesVMNotRunningError'
    d.ok('admin.vm.Unpause', 'work')
    assert 'power_state=Running' in d.ok('admin.vm.CurrentState', 'work')
    # a start of a running qube does nothing, as the reference's
    d.ok('admin.vm.Start', 'work')
    # master's test_501: a running qube is not removed, nothing of it goes
    assert d.call('admin.vm.Remove', 'work') == (
        'exc', 'QubesVMNotHaltedError', "Domain is not powered off: 'work'")
    assert 'work class=AppVM state=Running' in d.ok('admin.vm.List', 'work')
    assert os.path.isdir(os.path.join(state['base'], 'appvms', 'work'))
    d.ok('admin.vm.Kill', 'work')
    assert 'power_state=Halted' in d.ok('admin.vm.CurrentState', 'work')
    assert d.call('admin.vm.Kill', 'work')[1] == 'QubesVMNotStartedError'


def test_tools():
    """qvm-start, qvm-check, qvm-pause, qvm-unpause, qvm-shutdown,
    qvm-kill as processes, with the Qubes client's messages and codes
    (its loggers' "qvm-check: " lines, parser.print_error's "Error: ")."""
    halt()
    assert tool('qvm-check', '--running', 'work', rc=1)[1] == \
        'qvm-check: None of qubes: running\n'
    assert tool('qvm-check', 'work', 'nosuch', rc=1)[1] == \
        'qvm-check: work: exists\nqvm-check: nosuch: non-existent!\n'
    mark = len(console_log('work'))
    tool('qvm-start', 'work')
    assert tool('qvm-check', '--running', 'work')[1] == \
        'qvm-check: work: running\n'
    assert tool('qvm-check', '--running', 'work', 'tpl', rc=3)[1] == \
        'qvm-check: work: running\n'
    assert tool('qvm-start', 'work', rc=1)[1] == \
        'Error: Starting qube failed: work: Domain is already running\n'
    tool('qvm-start', '--skip-if-running', 'work')
    wait_log('work', 'QUBES-READY', mark)
    tool('qvm-pause', 'work')
    assert tool('qvm-check', '--paused', 'work')[1] == \
        'qvm-check: work: paused\n'
    tool('qvm-unpause', 'work')
    assert tool('qvm-unpause', 'work', rc=1)[1] == \
        "Error: Failed to unpause/resume: work: Domain is not paused: " \
        "'work'\n"
    tool('qvm-shutdown', '--wait', 'work')
    assert 'power_state=Halted' in state['d'].ok('admin.vm.CurrentState',
                                                 'work')
    tool('qvm-shutdown', 'work')  # halted: nothing to do, as Qubes'
    tool('qvm-kill', 'work')
    assert tool('qvm-start', 'nosuch', rc=2)[1].endswith(
        "qvm-start: error: no such domain: 'nosuch'\n")
    # a guest that ignores the request: its shutdown_timeout passes, the
    # client tries once more, then kills it, saying so
    mark = len(console_log('work'))
    state['d'].ok('admin.vm.property.Set', 'work', 'shutdown_timeout', '3')
    try:
        tool('qvm-start', 'work')
        wait_log('work', 'QUBES-READY', mark)
        console_run('work', 'kill $(pidof acpid) && echo ACPID-GONE',
                    'ACPID-GONE')
        t0 = time.monotonic()
        err = tool('qvm-shutdown', '--wait', 'work')[1]
        assert time.monotonic() - t0 < 60
        assert err == ('Error: Retrying shutdown of qubes that timed out: '
                       'work\nError: Killing timed out qubes: work\n'), err
        assert 'power_state=Halted' in state['d'].ok(
            'admin.vm.CurrentState', 'work')
    finally:
        state['d'].ok('admin.vm.property.Reset', 'work', 'shutdown_timeout')


def test_guest_poweroff_stops_storage():
    """A guest that powers itself off is stopped as any other: the
    storage is stopped and the events fire."""
    d = state['d']
    halt()
    d.ok('admin.vm.Start', 'work')
    wait_log('work', 'QUBES-READY', len(console_log('work')))
    console_send('work', 'sync; poweroff -f')
    wait_state('work', 'Halted')
    left = sorted(os.listdir(os.path.join(state['base'], 'appvms', 'work')))
    assert not [f for f in left if 'dirty' in f], left


def test_restart_of_qubesd_adopts_running_qube():
    d = state['d']
    halt()
    d.ok('admin.vm.Start', 'work')
    wait_log('work', 'QUBES-READY', len(console_log('work')))
    d.stop()
    d.start()
    st = wait_state('work', 'Running', timeout=10)
    assert 'power_state=Running' in st
    # the running image was left alone: the guest still writes to it
    console_run('work',
                'echo after-restart | dd of=$(disk private) bs=512 seek=16 '
                'conv=fsync 2>/dev/null && echo WROTE-AGAIN',
                'WROTE-AGAIN')
    d.ok('admin.vm.Shutdown', 'work', 'wait')
    private = os.path.join(state['base'], 'appvms', 'work', 'private.img')
    assert read_at(private, 8192, 13) == b'after-restart'


class Events:
    """An admin.Events subscription to one qube, read by a thread."""

    def __init__(self, vm):
        self.events = []
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(120)
        self.sock.connect(state['d'].sock)
        self.sock.sendall(('admin.Events dom0 name %s\0' % vm).encode())
        self.sock.shutdown(socket.SHUT_WR)
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.ready.wait(30)

    def _read(self):
        buf = b''
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
                buf += chunk
                got, buf = parse_events(buf)
                for e in got:
                    if e[1] == 'connection-established':
                        self.ready.set()
                    self.events.append(e)
        except OSError:
            return

    def names(self):
        return [e[1] for e in self.events]

    def wait_for(self, name, timeout=60):
        deadline = time.monotonic() + timeout
        while name not in self.names():
            assert time.monotonic() < deadline, (name, self.names())
            time.sleep(0.1)

    def close(self):
        self.sock.close()


def in_order(names, want):
    """@want is a subsequence of @names."""
    it = iter(names)
    return all(w in it for w in want)


def test_events_in_the_reference_order():
    d = state['d']
    halt()
    ev = Events('work')
    try:
        mark = len(console_log('work'))
        d.ok('admin.vm.Start', 'work')
        wait_log('work', 'QUBES-READY', mark)
        d.ok('admin.vm.Kill', 'work')
        ev.wait_for('domain-shutdown')
        names = ev.names()
        assert in_order(names, [
            'domain-pre-start', 'property-reset:xid',
            'property-reset:start_time', 'domain-spawn', 'domain-start',
            'domain-stopped', 'property-reset:xid',
            'property-reset:start_time', 'domain-shutdown']), names
        assert 'domain-start-failed' not in names, names
        kw = dict((e[1], e[2]) for e in ev.events)
        assert kw['domain-pre-start'].get('start_guid') == 'True', kw
    finally:
        ev.close()


def test_failed_start_rolls_back():
    """libvirt refuses the domain: domain-start-failed with the cause,
    the answer names it, and the storage started for it is stopped
    (nothing of the attempt left beside the images; as in the reference,
    the stop commits the unchanged private image as a revision)."""
    d = state['d']
    halt()
    base = state['base']
    before = sorted(os.listdir(os.path.join(base, 'appvms', 'work')))
    d.ok('admin.vm.property.Set', 'work', 'vcpus', '4096')
    ev = Events('work')
    try:
        r = d.call('admin.vm.Start', 'work')
        assert r[0] == 'exc' and r[1] == 'QubesException', r
        assert r[2].startswith('Start failed: '), r
        ev.wait_for('domain-start-failed')
        kw = [e[2] for e in ev.events if e[1] == 'domain-start-failed'][0]
        assert kw['reason'] == r[2], (kw, r)
        assert 'domain-spawn' not in ev.names(), ev.names()
    finally:
        ev.close()
        d.ok('admin.vm.property.Reset', 'work', 'vcpus')
    assert 'power_state=Halted' in d.ok('admin.vm.CurrentState', 'work')
    after = sorted(os.listdir(os.path.join(base, 'appvms', 'work')))

    def images(names):
        return [n for n in names if '@' not in n]
    assert images(after) == images(before), (before, after)
    assert not [f for f in after if 'dirty' in f], after
    # and it starts once the cause is gone
    mark = len(console_log('work'))
    d.ok('admin.vm.Start', 'work')
    wait_log('work', 'QUBES-READY', mark)
    d.ok('admin.vm.Kill', 'work')


def fetch(vm, gw, netvm, before=''):
    """Has @vm read the TCP service of its netvm @netvm at @gw (after the
    shell command @before): a connect timeout, nothing of the console
    taken as input, and a few tries (an attempt made while the link was
    being plugged back once hung past the test's minute under load:
    doc/reliability.md). It returns once the command has ended, not when
    the answer shows: a netvm killed between its answer and its FIN left
    the client's nc waiting for ever for a peer that was gone (its FIN
    already acknowledged, FIN_WAIT_2 has no timer), and the next command
    queued behind it (doc/reliability.md). A failure shows the netvm's
    console too."""
    tag = 'FETCH-%s' % time.monotonic_ns()
    mark = len(console_log(vm))
    command = (before + 'for i in 1 2 3 4 5; do nc -w 10 %s 7 </dev/null '
               '&& break; sleep 2; done; echo %s-DONE' % (gw, tag))
    try:
        console_run(vm, command, tag + '-DONE')
        out = console_log(vm)[mark:]
        assert 'hello-from-netvm' in out, '%s: no answer:\n%s' % (
            vm, out[-1500:])
    except AssertionError as e:
        raise AssertionError('%s\n%s:\n%s' % (e, netvm,
                                               console_log(netvm)[-1500:]))


def in_netns(*cmd):
    return subprocess.run(state['lv'].enter() +
                          list(cmd), capture_output=True, text=True)


def test_network_between_qubes():
    """A client and its netvm on QEMU: the client's own bridge, the
    netvm's hot-plugged NIC on it, the addresses on the kernel command
    line; the client reaches the netvm; its stop unplugs the link and
    removes the bridge; a netvm restarted under a running client
    connects it again."""
    d = state['d']
    halt()
    if 'net class=' not in d.ok('admin.vm.List', 'dom0'):
        d.ok('admin.vm.Create.AppVM', 'dom0', 'tpl', 'name=net label=red')
        d.ok('admin.vm.property.Set', 'net', 'provides_network', 'True')
        d.ok('admin.vm.property.Set', 'net', 'netvm', '')
        d.ok('admin.vm.property.Set', 'net', 'memory', '256')
        d.ok('admin.vm.property.Set', 'net', 'maxmem', '320')
    d.ok('admin.vm.property.Set', 'work', 'netvm', 'net')
    gw = d.ok('admin.vm.property.Get', 'work', 'visible_gateway').split()[-1]
    ip = d.ok('admin.vm.property.Get', 'work', 'visible_ip').split()[-1]
    qid = d.ok('admin.vm.property.Get', 'work', 'qid').split()[-1]
    try:
        wmark, nmark = len(console_log('work')), len(console_log('net'))
        d.ok('admin.vm.Start', 'work')  # starts net first
        assert 'power_state=Running' in d.ok('admin.vm.CurrentState', 'net')
        wait_log('net', 'QUBES-NETVM %s' % gw, nmark)
        text = wait_log('work', 'QUBES-NET eth0 %s via %s' % (ip, gw), wmark)
        assert ' ip=%s::%s:255.255.255.255:work:eth0:off:' % (ip, gw) in \
            text[wmark:], text[wmark:][-1500:]
        wait_log('net', 'QUBES-LINK eth0 %s' % ip, nmark)
        assert in_netns('ip', 'link', 'show', 'qbr' + qid).returncode == 0
        fetch('work', gw, 'net')
        # master's pre-shutdown refusals, nothing stopped: a netvm with a
        # running client, an audio and a GUI qube with a running user
        r = d.call('admin.vm.Shutdown', 'net')
        assert r == ('exc', 'QubesVMInUseError',
                     'There are other VMs connected to this VM: work'), r
        d.ok('admin.vm.property.Set', 'net', 'audiovm', 'work')
        r = d.call('admin.vm.Shutdown', 'work')
        assert r == ('exc', 'QubesVMInUseError',
                     'There are running VMs using this VM as AudioVM: net'), r
        d.ok('admin.vm.property.Reset', 'net', 'audiovm')
        d.ok('admin.vm.property.Set', 'net', 'guivm', 'work')
        r = d.call('admin.vm.Shutdown', 'work')
        assert r == ('exc', 'QubesVMError',
                     'There are running VMs using this VM as GuiVM: net'), r
        d.ok('admin.vm.property.Reset', 'net', 'guivm')
        for vm in ('net', 'work'):
            assert 'power_state=Running' in d.ok('admin.vm.CurrentState', vm)
        # the netvm restarted under the running client connects it again
        # (a forced shutdown passes the refusal)
        d.ok('admin.vm.Shutdown', 'net', 'force+wait')
        nmark = len(console_log('net'))
        d.ok('admin.vm.Start', 'net')
        wait_log('net', 'QUBES-LINK eth0 %s' % ip, nmark)
        fetch('work', gw, 'net')
        # the client's stop unplugs its link from the netvm
        d.ok('admin.vm.Shutdown', 'work', 'wait')
        wait_log('net', 'QUBES-UNLINK eth0', nmark)
        deadline = time.monotonic() + 30
        while in_netns('ip', 'link', 'show', 'qbr' + qid).returncode == 0:
            assert time.monotonic() < deadline, 'bridge left'
            time.sleep(0.2)
    finally:
        halt('work')
        halt('net')
        d.ok('admin.vm.property.Set', 'work', 'netvm', '')


def reach(vm, host, port, marker):
    """Whether @vm reaches TCP @port of @host (whose answer holds
    @marker): True, or False after a 3 s connect timeout (the firewall
    drops what it refuses)."""
    tag = 'REACH-%s-%s' % (port, time.monotonic_ns())
    mark = len(console_log(vm))
    console_run(vm, 'nc -w 3 %s %s </dev/null || echo %s-REFUSED; '
                'echo %s-DONE' % (host, port, tag, tag), tag + '-DONE')
    out = console_log(vm)[mark:]
    if tag + '-REFUSED' in out:
        return False
    assert marker in out, out[-1500:]
    return True


def link_state(qid):
    """What the host has of a client's link and firewall (diagnostics)."""
    out = []
    for cmd in (['nft', 'list', 'table', 'bridge', 'qubes-firewall'],
                ['ip', '-br', 'link'], ['bridge', 'link']):
        r = in_netns(*cmd)
        out.append('$ %s\n%s%s' % (' '.join(cmd), r.stdout, r.stderr))
    return '\n'.join(out)


def blocked(vm, host, port, marker, qid):
    """@vm cannot reach @port of @host; else the host's state in the
    failure, and a trace of the packets of a second try."""
    if not reach(vm, host, port, marker):
        return
    diag = link_state(qid)
    # counters at the entry of every chain, then a second try
    ins = [in_netns('nft', 'insert', 'rule', 'bridge', 'qubes-firewall', c,
                    'counter') for c in ('forward', 'input', 'qube-' + qid)]
    again = reach(vm, host, port, marker)
    counted = in_netns('nft', 'list', 'table', 'bridge', 'qubes-firewall')
    ls = in_netns('ip', '-s', 'link')
    raise AssertionError('%s reached %s:%s (again: %s)\n%s\ncounted (%s):\n'
                         '%s\n%s\nqubesd:\n%s' % (vm, host, port, again, diag,
                                                   [i.returncode for i in ins],
                                                   counted.stdout, ls.stdout,
                                           state['d'].read_log()[-2000:]))


def nft_chain(qid):
    r = in_netns('nft', 'list', 'chain', 'bridge', 'qubes-firewall',
                 'qube-' + qid)
    return r.stdout if r.returncode == 0 else None


def test_firewall_on_the_link():
    """The client's rules, enforced on the host on its link (nftables)
    before its netvm sees a packet: what is allowed is reachable, what
    is not is not; a change applies at once to the running qube; an
    expired rule goes (firewall.xml rewritten, firewall-changed) and
    with it what it blocked; DNS targets are the qube's DNS servers;
    the chain goes when the qube stops."""
    d = state['d']
    for vm in ('work', 'net'):
        if '%s class=' % vm in d.ok('admin.vm.List', 'dom0'):
            halt(vm)
    make_qube('net', provides_network=True)
    d.ok('admin.vm.property.Set', 'work', 'netvm', 'net')
    gw = prop('work', 'visible_gateway')
    ip = prop('work', 'visible_ip')
    qid = prop('work', 'qid')
    dns = d.ok('admin.vm.property.Get', 'work', 'dns')
    assert dns.endswith(' 10.139.1.1 10.139.1.2'), dns
    d.ok('admin.vm.firewall.Set', 'work', '',
         ('action=accept dst4=%s proto=tcp dstports=7\n'
          'action=drop\n' % gw).encode())
    try:
        nmark = len(console_log('net'))
        start_ready('work')
        wait_link('net', ip, nmark)
        chain = nft_chain(qid)
        assert chain and 'tcp dport 7 accept' in chain, chain
        assert reach('work', gw, 7, 'hello-from-netvm')
        blocked('work', gw, 8, 'hello-8-from-netvm', qid)
        # a change applies at once
        d.ok('admin.vm.firewall.Set', 'work', '',
             ('action=accept dst4=%s proto=tcp dstports=8\n'
              'action=drop\n' % gw).encode())
        assert reach('work', gw, 8, 'hello-8-from-netvm')
        blocked('work', gw, 7, 'hello-from-netvm', qid)
        # qubesd restarted (SIGKILL, and a chain left for a qube that no
        # longer runs): the table is made anew with the running qube's
        # chain, the stale one gone, the rules kept throughout
        assert in_netns('nft', 'add chain bridge qubes-firewall '
                        'qube-999').returncode == 0
        d.kill()
        assert 'tcp dport 8 accept' in nft_chain(qid)
        d.start()
        wait_state('work', 'Running', timeout=10)
        deadline = time.monotonic() + 30
        while nft_chain('999') is not None:
            assert time.monotonic() < deadline, nft_chain('999')
            time.sleep(0.2)
        assert 'tcp dport 8 accept' in nft_chain(qid)
        assert reach('work', gw, 8, 'hello-8-from-netvm')
        blocked('work', gw, 7, 'hello-from-netvm', qid)
        # specialtarget=dns: the qube's DNS servers, port 53
        d.ok('admin.vm.firewall.Set', 'work', '',
             b'action=accept specialtarget=dns\naction=drop\n')
        assert reach('work', '10.139.1.1', 53, 'hello-dns-from-netvm')
        blocked('work', gw, 7, 'hello-from-netvm', qid)
        # an expiring rule: blocks until it expires, then goes
        ev = Events('work')
        try:
            expire = int(time.time()) + 15
            d.ok('admin.vm.firewall.Set', 'work', '',
                 ('action=drop proto=tcp dstports=7 expire=%d\n'
                  'action=accept\n' % expire).encode())
            blocked('work', gw, 7, 'hello-from-netvm', qid)
            assert 'expire=%d' % expire in d.ok('admin.vm.firewall.Get',
                                                 'work')
            seen = len([e for e in ev.events
                        if e[1] == 'firewall-changed'])
            deadline = time.monotonic() + 60
            while len([e for e in ev.events
                       if e[1] == 'firewall-changed']) <= seen:
                assert time.monotonic() < deadline, ev.events
                time.sleep(0.2)
        finally:
            ev.close()
        assert time.time() > expire
        assert d.ok('admin.vm.firewall.Get', 'work') == 'action=accept\n'
        with open(os.path.join(state['base'], 'appvms', 'work',
                               'firewall.xml')) as f:
            assert 'expire' not in f.read()
        assert reach('work', gw, 7, 'hello-from-netvm')
        # the chain goes with the qube
        d.ok('admin.vm.Shutdown', 'work', 'wait')
        deadline = time.monotonic() + 30
        while nft_chain(qid) is not None:
            assert time.monotonic() < deadline, nft_chain(qid)
            time.sleep(0.2)
    finally:
        halt('work')
        halt('net')
        d.ok('admin.vm.firewall.Set', 'work', '', b'action=accept\n')
        d.ok('admin.vm.property.Set', 'work', 'netvm', '')


def make_loop(content, size='8M'):
    """A host loop device over a file holding @content at its start."""
    img = os.path.join(state['work'], 'dev-%d.img' % time.monotonic_ns())
    subprocess.run(['truncate', '-s', size, img], check=True)
    with open(img, 'r+b') as f:
        f.write(content)
    loop = subprocess.run(['losetup', '-f', '--show', img],
                          capture_output=True, text=True,
                          check=True).stdout.strip()
    return loop, img


def guest_reads(vm, port, n, marker):
    """What @vm reads at the start of the disk whose serial is @port."""
    tag = 'READ-%d' % time.monotonic_ns()
    mark = len(console_log(vm))
    console_run(vm, 'd=$(disk %s); [ -n "$d" ] && echo %s-$(dd if=$d bs=%d '
                'count=1 2>/dev/null) || echo %s-NONE' % (port, tag, n, tag),
                tag + '-')
    out = console_log(vm)[mark:]
    return marker in out.split(tag + '-', 1)[1][:200]


def guest_has_disk(vm, port):
    tag = 'HAS-%d' % time.monotonic_ns()
    mark = len(console_log(vm))
    console_run(vm, '[ -n "$(disk %s)" ] && echo %s-YES || echo %s-NO'
                % (port, tag, tag), tag + '-')
    return (tag + '-YES') in console_log(vm)[mark:]


def test_block_devices_of_dom0():
    """dom0's block devices given to a running qube: a loop device
    hot-plugged (the guest finds it by its serial and reads the file's
    data), listed as attached, refused twice and to a second qube,
    detached (the guest sees it go); read-only refused to writes; a
    required assignment attached at start, kept across a restart of
    qubesd, not detachable; a required device gone fails the start with
    the cause and nothing left running."""
    d = state['d']
    halt()
    make_qube('work2')
    halt('work2')
    loop, img = make_loop(b'hello-from-dom0-disk')
    port = os.path.basename(loop)
    dev = 'dom0+' + port
    try:
        start_ready('work')
        avail = d.ok('admin.vm.device.block.Available', 'dom0', port)
        assert avail.startswith('%s:%s ' % (port, img)), avail
        d.ok('admin.vm.device.block.Attach', 'work', dev,
             b"_read-only='yes'")
        att = d.ok('admin.vm.device.block.Attached', 'work')
        assert att.startswith('dom0+%s:%s ' % (port, img)), att
        assert "mode='manual' frontend_domain='work' _read-only='yes' " \
            "_frontend-dev='vdi'" in att, att
        # an attached device shows its attachment where it is exposed
        assert "attachment='work'" in \
            d.ok('admin.vm.device.block.Available', 'dom0', port)
        deadline = time.monotonic() + 60
        while not guest_has_disk('work', port):
            assert time.monotonic() < deadline, console_log('work')[-2000:]
            time.sleep(1)
        assert guest_reads('work', port, 20, 'hello-from-dom0-disk')
        # read-only: the guest cannot write to it
        tag = 'RO-%d' % time.monotonic_ns()
        console_run('work', 'echo x | dd of=$(disk %s) conv=fsync 2>/dev/null'
                    ' && echo %s-WROTE || echo %s-REFUSED' % (port, tag, tag),
                    tag + '-')
        assert tag + '-REFUSED' in console_log('work'), \
            console_log('work')[-500:]
        assert d.call('admin.vm.device.block.Attach', 'work', dev, b'')[1] \
            == 'DeviceAlreadyAttached'
        start_ready('work2')
        r = d.call('admin.vm.device.block.Attach', 'work2', dev, b'')
        assert r[:2] == ('exc', 'DeviceAlreadyAttached'), r
        # master's words (the device as PORT:DEVICE_ID), a KeyError's repr
        assert r[2].startswith("'device %s:" % dev.replace('+', ':')) and \
            r[2].endswith(" of class block already attached to work'"), r
        halt('work2')
        # detached: gone from the guest
        d.ok('admin.vm.device.block.Detach', 'work', dev)
        assert d.ok('admin.vm.device.block.Attached', 'work') == ''
        deadline = time.monotonic() + 60
        while guest_has_disk('work', port):
            assert time.monotonic() < deadline, console_log('work')[-2000:]
            time.sleep(1)
        # required: attached at start, kept across qubesd's restart
        halt()
        d.ok('admin.vm.device.block.Assign', 'work', dev, b"mode='required'")
        start_ready('work')
        assert d.ok('admin.vm.device.block.Attached', 'work').startswith(
            'dom0+%s:' % port)
        assert guest_reads('work', port, 20, 'hello-from-dom0-disk')
        # master's refusal: a required device stays while the qube runs
        r = d.call('admin.vm.device.block.Detach', 'work', dev)
        assert r == ('exc', 'QubesVMNotHaltedError',
                     'Can not detach a required device from a non halted '
                     'qube. You need to unassign device first.'), r
        d.kill()
        d.start()
        wait_state('work', 'Running', timeout=10)
        att = d.ok('admin.vm.device.block.Attached', 'work')
        assert att.startswith('dom0+%s:' % port), att
        # the required device gone: the start fails saying so
        halt()
        subprocess.run(['losetup', '-d', loop], check=True)
        r = d.call('admin.vm.Start', 'work')
        assert r[0] == 'exc' and ('Block device dom0:%s:* not available: '
                                  'no such device' % port) in r[2], r
        assert 'power_state=Halted' in d.ok('admin.vm.CurrentState', 'work')
        d.ok('admin.vm.device.block.Unassign', 'work', dev)
        start_ready('work')
    finally:
        halt('work')
        halt('work2')
        d.call('admin.vm.device.block.Unassign', 'work', dev)
        subprocess.run(['losetup', '-d', loop], capture_output=True)


def qarg_any_port(device_id):
    """dom0's device @device_id on any port, as a qrexec argument (the
    client's encoding: ':' as '+', other bytes qrexec refuses as '_')."""
    enc = ''.join('+' if c == ':' else c if c.isalnum() or c in '._-+'
                  else '_' for c in device_id)
    return 'dom0+_+' + enc


def test_block_device_appearing():
    """A dom0 block device that appears while its qube runs (the
    reference's device_list_change): assigned auto-attach by its
    identity (any port), it is hot-plugged into the running qube at once
    (the guest reads its data); one assigned
    ask-to-attach is left alone, logged, as there is no device agent
    here to ask the user."""
    d = state['d']
    made, imgs = [], []

    def plug_assigned(content, mode):
        """A file assigned to work by its identity (any port) in @mode,
        then set up as a loop device: its path, its port, and where the
        log stood before."""
        loop, img = make_loop(content)
        subprocess.run(['losetup', '-d', loop], check=True)
        imgs.append(img)
        d.ok('admin.vm.device.block.Assign', 'work', 'dom0+_',
             ("device_id='%s' port_id='*' devclass='block' "
              "backend_domain='dom0' mode='%s' frontend_domain='work'"
              % (img, mode)).encode())
        mark = len(d.read_log())
        made.append(subprocess.run(['losetup', '-f', '--show', img],
                                   capture_output=True, text=True,
                                   check=True).stdout.strip())
        return img, os.path.basename(made[-1]), mark

    try:
        start_ready('work')
        img, port, mark = plug_assigned(b'hello-appearing-disk', 'auto-attach')
        deadline = time.monotonic() + 30
        while not d.ok('admin.vm.device.block.Attached', 'work').startswith(
                'dom0+%s:%s ' % (port, img)):
            assert time.monotonic() < deadline, d.read_log()[mark:]
            time.sleep(0.5)
        assert 'work: attaching block device dom0:%s:%s, which appeared' % (
            port, img) in d.read_log()[mark:], d.read_log()[mark:]
        deadline = time.monotonic() + 60
        while not guest_has_disk('work', port):
            assert time.monotonic() < deadline, console_log('work')[-2000:]
            time.sleep(1)
        assert guest_reads('work', port, 20, 'hello-appearing-disk')
        d.ok('admin.vm.device.block.Detach', 'work', 'dom0+' + port)
        d.ok('admin.vm.device.block.Unassign', 'work', qarg_any_port(img))
        # ask-to-attach: nobody to ask, left alone
        img2, port2, mark = plug_assigned(b'ask-first', 'ask-to-attach')
        deadline = time.monotonic() + 30
        while 'is ask-to-attach: not attached' not in d.read_log()[mark:]:
            assert time.monotonic() < deadline, d.read_log()[mark:]
            time.sleep(0.5)
        assert 'work: block device dom0:%s:%s is ask-to-attach' % (
            port2, img2) in d.read_log()[mark:], d.read_log()[mark:]
        assert d.ok('admin.vm.device.block.Attached', 'work') == ''
        d.ok('admin.vm.device.block.Unassign', 'work', qarg_any_port(img2))
    finally:
        for m in made:
            d.call('admin.vm.device.block.Detach', 'work',
                   'dom0+' + os.path.basename(m))
            subprocess.run(['losetup', '-d', m], capture_output=True)
        for i in imgs:
            d.call('admin.vm.device.block.Unassign', 'work', qarg_any_port(i))
        halt('work')


def test_pci_assignment_without_iommu():
    """A PCI device assigned as required: the qube is hvm by default now,
    and on this host without an IOMMU its start fails with the cause,
    nothing left running; unassigned, it starts."""
    d = state['d']
    halt()
    pcis = sorted(os.listdir('/sys/bus/pci/devices'))
    dom_, bus, rest = pcis[0].split(':')
    port = '%s_%s' % (bus, rest) if dom_ == '0000' else \
        '%s_%s_%s' % (dom_, bus, rest)
    assert not os.listdir('/sys/kernel/iommu_groups'), 'this host has one'
    d.ok('admin.vm.device.pci.Assign', 'work', 'dom0+' + port,
         b"mode='required'")
    try:
        assert d.ok('admin.vm.property.Get', 'work', 'virt_mode') == \
            'default=True type=str hvm'
        r = d.call('admin.vm.Start', 'work')
        assert r[0] == 'exc' and 'this host has no IOMMU' in r[2] and \
            ('PCI device dom0:%s:* not available' % port) in r[2], r
        assert 'power_state=Halted' in d.ok('admin.vm.CurrentState', 'work')
    finally:
        d.ok('admin.vm.device.pci.Unassign', 'work', 'dom0+' + port)
    start_ready('work')
    halt()


def pci_without_driver():
    """A PCI device of this host that no host driver holds (the host
    bridge): the one the hot-plug test offers, so that even a libvirt
    that took it from its driver could not take one the host needs. Its
    sysfs address and port."""
    for name in sorted(os.listdir('/sys/bus/pci/devices')):
        if not os.path.exists('/sys/bus/pci/devices/%s/driver' % name):
            dom_, bus, rest = name.split(':')
            return name, ('%s_%s' % (bus, rest) if dom_ == '0000' else
                          '%s_%s_%s' % (dom_, bus, rest))
    raise AssertionError('no PCI device without a driver on this host')


def pci_host_state(sbdf):
    """What the host says of @sbdf's binding: its driver and the driver
    VFIO would be forced to."""
    base = '/sys/bus/pci/devices/' + sbdf
    drv = os.path.join(base, 'driver')
    with open(os.path.join(base, 'driver_override')) as f:
        override = f.read()
    return (os.readlink(drv) if os.path.exists(drv) else None, override)


def test_pci_hot_plug_without_iommu():
    """admin.vm.device.pci.Attach to a running qube goes to libvirt as a
    managed hostdev (ext/pci.py's hot-plug); on this host without an
    IOMMU libvirt refuses it, and the refusal leaves nothing behind: the
    error names the device, the qube and the cause, no device-attach
    event, nothing in Attached or in the domain's XML, the device still
    with its host binding, the guest still answering. Detach of a device
    that is not there and Attach to a halted qube get master's
    refusals."""
    d = state['d']
    sbdf, port = pci_without_driver()
    dev = 'dom0+' + port
    assert not os.listdir('/sys/kernel/iommu_groups'), 'this host has one'
    halt()
    r = d.call('admin.vm.device.pci.Attach', 'work', dev, b'')
    assert r == ('exc', 'QubesVMNotRunningError',
                 'VM not running, cannot attach device, do you mean '
                 '`assign`?'), r
    start_ready('work')
    # pvh (the default without PCI devices) cannot take one: master's words
    r = d.call('admin.vm.device.pci.Attach', 'work', dev, b'')
    assert r == ('exc', 'QubesException',
                 "Can't attach PCI device to VM in pvh mode"), r
    halt()
    d.ok('admin.vm.property.Set', 'work', 'virt_mode', 'hvm')
    start_ready('work')
    ev = Events('work')
    try:
        before = pci_host_state(sbdf)
        for payload in (b'', b"_no-strict-reset='True' _permissive='yes'"):
            r = d.call('admin.vm.device.pci.Attach', 'work', dev, payload)
            assert r[:2] == ('exc', 'QubesException'), r
            assert r[2].startswith(
                "Failed to attach PCI device dom0:%s to 'work': " % port), r
            assert r[2].endswith('(this host has no IOMMU: '
                                 '/sys/kernel/iommu_groups is empty)'), r
        assert d.ok('admin.vm.device.pci.Attached', 'work') == ''
        assert 'attachment=' not in d.ok('admin.vm.device.pci.Available',
                                         'dom0', port)
        assert '<hostdev' not in state['lv'].virsh('dumpxml', 'work').stdout
        assert pci_host_state(sbdf) == before
        assert 'device-pre-attach:pci' in ev.names(), ev.names()
        assert 'device-attach:pci' not in ev.names(), ev.names()
        r = d.call('admin.vm.device.pci.Detach', 'work', dev)
        assert r == ('exc', 'DeviceNotAssigned',
                     "'pci device %s not attached to work'" % port), r
        assert 'power_state=Running' in d.ok('admin.vm.CurrentState', 'work')
        tag = 'PCI-%d' % time.monotonic_ns()
        console_run('work', 'echo %s-ALIVE' % tag, tag + '-ALIVE')
    finally:
        ev.close()
        halt('work')
        d.ok('admin.vm.property.Reset', 'work', 'virt_mode')


def test_libvirtd_restart_reconnects():
    """libvirtd restarted under a running qube: qubesd reconnects, still
    sees it running, and stops it as usual."""
    d = state['d']
    halt()
    mark = len(console_log('work'))
    d.ok('admin.vm.Start', 'work')
    wait_log('work', 'QUBES-READY', mark)
    before = d.read_log().count(': connected to ')
    state['lv'].restart_daemon()
    deadline = time.monotonic() + 60
    while d.read_log().count(': connected to ') <= before:
        assert time.monotonic() < deadline, d.read_log()[-3000:]
        time.sleep(0.3)
    assert 'power_state=Running' in d.ok('admin.vm.CurrentState', 'work')
    d.ok('admin.vm.Shutdown', 'work', 'wait')
    assert 'power_state=Halted' in d.ok('admin.vm.CurrentState', 'work')


def make_qube(name, netvm='', provides_network=False, template='tpl'):
    """An AppVM of 256 MiB (made once per run)."""
    d = state['d']
    if '%s class=' % name not in d.ok('admin.vm.List', 'dom0'):
        d.ok('admin.vm.Create.AppVM', 'dom0', template,
             'name=%s label=red' % name)
        if provides_network:
            d.ok('admin.vm.property.Set', name, 'provides_network', 'True')
        d.ok('admin.vm.property.Set', name, 'memory', '256')
        d.ok('admin.vm.property.Set', name, 'maxmem', '320')
    d.ok('admin.vm.property.Set', name, 'netvm', netvm)


def wait_link(netvm, client_ip, start):
    """Waits for the netvm's guest to see the link of @client_ip."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    pat = re.compile(r'QUBES-LINK eth[0-9]+ %s\r?\n' % re.escape(client_ip))
    while not pat.search(console_log(netvm)[start:]):
        assert time.monotonic() < deadline, console_log(netvm)[-2000:]
        time.sleep(0.2)


def prop(vm, name):
    return state['d'].ok('admin.vm.property.Get', vm, name).split()[-1]


def start_ready(vm):
    mark = len(console_log(vm))
    state['d'].ok('admin.vm.Start', vm)
    return wait_log(vm, 'QUBES-READY', mark)


def test_isolation_and_a_failed_link():
    """Two clients of one netvm: each reaches the netvm, not the other
    (their links are separate bridges; the netvm forwards nothing). A
    client whose link cannot be plugged (its bridge gone) is logged when
    the netvm starts, and the netvm runs and serves the other client."""
    d = state['d']
    for vm in ('work', 'work2', 'net'):
        if '%s class=' % vm in d.ok('admin.vm.List', 'dom0'):
            halt(vm)
    make_qube('net', provides_network=True)
    make_qube('work2', netvm='net')
    d.ok('admin.vm.property.Set', 'work', 'netvm', 'net')
    gw = prop('work', 'visible_gateway')
    ip1, ip2 = prop('work', 'visible_ip'), prop('work2', 'visible_ip')
    try:
        nmark = len(console_log('net'))
        start_ready('work')
        start_ready('work2')
        wait_link('net', ip1, nmark)
        wait_link('net', ip2, nmark)
        fetch('work2', gw, 'net')
        # work2 to work, on its own link: the netvm answers ARP for it
        # (proxy_arp) but forwards nothing, the host bridges nothing
        mark = len(console_log('work2'))
        console_run('work2', 'ip route add %s dev eth0; ping -c 2 -W 2 %s '
                    '>/dev/null 2>&1 && echo REACHED-OTHER || '
                    'echo ISOLATED-FROM-OTHER' % (ip1, ip1), '-OTHER')
        tail = console_log('work2')[mark:]
        assert 'ISOLATED-FROM-OTHER' in tail, tail
        assert 'REACHED-OTHER' not in tail, tail
        # the netvm restarts; work2's link cannot be plugged
        d.ok('admin.vm.Kill', 'net')
        qid2 = prop('work2', 'qid')
        assert in_netns('ip', 'link', 'del', 'qbr' + qid2).returncode == 0
        nmark = len(console_log('net'))
        log_mark = len(d.read_log())
        d.ok('admin.vm.Start', 'net')
        wait_link('net', ip1, nmark)
        failed = 'work2: plugging its link into its netvm net: failed: '
        deadline = time.monotonic() + 60
        while failed not in d.read_log()[log_mark:]:
            assert time.monotonic() < deadline, d.read_log()[log_mark:]
            time.sleep(0.3)
        assert 'power_state=Running' in d.ok('admin.vm.CurrentState', 'net')
        fetch('work', gw, 'net')
    finally:
        for vm in ('work', 'work2', 'net'):
            halt(vm)
        d.ok('admin.vm.property.Set', 'work', 'netvm', '')


def test_netvm_change_on_a_running_qube():
    """net.py: the new netvm of a running qube must run; once set, the
    qube's link leaves the old netvm for the new one."""
    d = state['d']
    for vm in ('work', 'net', 'net2'):
        if '%s class=' % vm in d.ok('admin.vm.List', 'dom0'):
            halt(vm)
    make_qube('net', provides_network=True)
    make_qube('net2', provides_network=True)
    d.ok('admin.vm.property.Set', 'work', 'netvm', 'net')
    ip = prop('work', 'visible_ip')
    ev = Events('net2')
    try:
        nmark = len(console_log('net'))
        start_ready('work')
        wait_log('net', 'QUBES-LINK eth0 %s' % ip, nmark)
        assert d.call('admin.vm.property.Set', 'work', 'netvm', 'net2') == (
            'exc', 'QubesVMNotStartedError',
            "Cannot dynamically attach to stopped NetVM: 'net2'")
        assert prop('work', 'netvm') == 'net'
        n2mark = len(console_log('net2'))
        start_ready('net2')
        d.ok('admin.vm.property.Set', 'work', 'netvm', 'net2')
        gw2 = prop('work', 'visible_gateway')
        wait_log('net2', 'QUBES-LINK eth0 %s' % ip, n2mark)
        wait_log('net', 'QUBES-UNLINK eth0', nmark)
        ev.wait_for('net-domain-connect')
        kw = [e[2] for e in ev.events if e[1] == 'net-domain-connect'][0]
        assert kw == {'vm': 'work'}, kw
        # the guest learns its new gateway as Qubes' agent would
        fetch('work', gw2, 'net2',
              before='ip route replace default via %s dev eth0; '
              'ip route add %s dev eth0; ' % (gw2, gw2))
        # back to the default (none here): unplugged from net2
        n2mark = len(console_log('net2'))
        d.ok('admin.vm.property.Reset', 'work', 'netvm')
        wait_log('net2', 'QUBES-UNLINK eth0', n2mark)
    finally:
        ev.close()
        for vm in ('work', 'net', 'net2'):
            halt(vm)
        d.ok('admin.vm.property.Set', 'work', 'netvm', '')


def test_disposable_removes_itself():
    """admin.vm.CreateDisposable: a DispVM of a disposable template runs,
    and once it stopped it is gone, its files too."""
    d = state['d']
    make_qube('dvm')
    d.ok('admin.vm.property.Set', 'dvm', 'template_for_dispvms', 'True')
    name = d.ok('admin.vm.CreateDisposable', 'dvm')
    assert name.startswith('disp'), name
    folder = os.path.join(state['base'], 'appvms', name)
    assert os.path.isdir(folder)
    start_ready(name)
    console_run(name, 'echo in-disp | dd of=$(disk private) bs=512 seek=8 '
                'conv=fsync 2>/dev/null && echo WROTE-DISP', 'WROTE-DISP')
    d.ok('admin.vm.Shutdown', name, 'wait')
    assert '%s class=' % name not in d.ok('admin.vm.List', 'dom0')
    deadline = time.monotonic() + 60
    while os.path.exists(folder):
        assert time.monotonic() < deadline, os.listdir(folder)
        time.sleep(0.2)
    # a restarted qubesd loads what the removal saved
    d.stop()
    d.start()
    assert '%s class=' % name not in d.ok('admin.vm.List', 'dom0')


def wait_until(pred, what, timeout=BOOT_TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        assert time.monotonic() < deadline, what()
        time.sleep(0.2)


def test_preloaded_disposables():
    """preload-dispvm-max keeps that many DispVMs started and paused,
    listed in the template's preload-dispvm and internal, as far as the
    memory qmemmand reports available, less dom0's
    preload-dispvm-threshold, has room for;
    admin.vm.CreateDisposable hands out the first one, running, and the
    list is filled again; the disposable template's template cannot
    change while the handed-out one runs; a qubesd restart keeps a
    completed one and removes one whose preload was interrupted; a new
    template, or the disposable template run and stopped (its private
    volume newer), replaces what is preloaded; the maximum lowered to 0
    removes what is preloaded."""
    d = state['d']
    make_qube('pdvm')
    if 'tpl2 class=' not in d.ok('admin.vm.List', 'dom0'):
        d.ok('admin.vm.Create.TemplateVM', arg='',
             payload='name=tpl2 label=black')
    avail = os.path.join(state['work'], 'qmemman-avail-mem')
    d.ok('admin.vm.property.Set', 'pdvm', 'template_for_dispvms', 'True')
    for f in ('qrexec', 'supported-rpc.qubes.WaitForRunningSystem'):
        d.ok('admin.vm.feature.Set', 'pdvm', f, '1')
    d.ok('admin.vm.feature.Set', 'pdvm', 'preload-dispvm-delay', '0')

    def listed():
        r = d.call('admin.vm.feature.Get', 'pdvm', 'preload-dispvm')
        return r[1] if r[0] == 'ok' and r[1] else None

    def qubes():
        return d.ok('admin.vm.List', 'dom0')

    def replaced(old):
        """The qube listed once @old no longer is."""
        return wait_until(lambda: listed() not in (None, old) and listed(),
                          qubes)

    def feature(vm, name):
        r = d.call('admin.vm.feature.Get', vm, name)
        return r[1] if r[0] == 'ok' else None

    ev = Events('pdvm')
    name = second = third = fourth = fifth = None
    try:
        # room for one qube of 256 MiB, but not once 100 MiB are kept
        with open(avail, 'w') as f:
            f.write('%d\n' % (300 << 20))
        d.ok('admin.vm.feature.Set', 'dom0', 'preload-dispvm-threshold',
             '100')
        d.ok('admin.vm.feature.Set', 'pdvm', 'preload-dispvm-max', '1')
        ev.wait_for('domain-preload-dispvm-start')
        wait_until(lambda: "not preloading '1' disposable(s) due to "
                   "insufficient memory" in d.read_log(),
                   lambda: d.read_log()[-2000:], timeout=30)
        assert listed() is None, listed()
        d.ok('admin.vm.feature.Remove', 'dom0', 'preload-dispvm-threshold')
        d.ok('admin.vm.CreateDisposable', 'pdvm', 'preload')
        first = wait_until(listed, qubes)
        wait_state(first, 'Paused', timeout=BOOT_TIMEOUT)
        wait_until(lambda: feature(first, 'preload-dispvm-completed') == '1',
                   lambda: feature(first, 'preload-dispvm-completed'))
        assert feature(first, 'preload-dispvm-in-progress') == ''
        assert feature(first, 'internal') == '1'
        assert prop(first, 'is_preload') == 'True'
        assert prop(first, 'auto_cleanup') == 'True'
        # handed out: the paused one, running at once
        t0 = time.monotonic()
        name = d.ok('admin.vm.CreateDisposable', 'pdvm')
        took = time.monotonic() - t0
        assert name == first, (name, first)
        print('# preloaded DispVM handed out in %.2f s' % took)
        assert 'power_state=Running' in d.ok('admin.vm.CurrentState', name)
        assert prop(name, 'is_preload') == 'False'
        assert feature(name, 'internal') is None
        assert feature(name, 'preload-dispvm-in-progress') is None
        tags = d.ok('admin.vm.tag.List', name).split()
        assert 'created-by-dom0' in tags and 'disp-created-by-dom0' in tags
        wait_log(name, 'QUBES-READY', 0)
        console_run(name, 'echo PRELOADED-$((40+2))', 'PRELOADED-42')
        assert d.call('admin.vm.property.Set', 'pdvm', 'template',
                      'tpl2') == (
            'exc', 'QubesVMInUseError',
            'Cannot change template while there are running disposables '
            'based on this disposable template')
        ev.wait_for('domain-preload-dispvm-used')
        used = [e for e in ev.events
                if e[1] == 'domain-preload-dispvm-used'][0]
        assert used[2].get('dispvm') == name, used
        # filled again with a new one
        second = replaced(first)
        wait_state(second, 'Paused', timeout=BOOT_TIMEOUT)
        ev.close()
        # a qubesd restart keeps the completed, paused one listed
        d.stop()
        d.start()
        time.sleep(3)
        assert listed() == second, listed()
        assert 'power_state=Paused' in d.ok('admin.vm.CurrentState', second)
        # one whose preload (or hand-out) was interrupted by a qubesd that
        # died goes when qubesd starts, and another is preloaded
        d.ok('admin.vm.feature.Set', second, 'preload-dispvm-in-progress',
             '1')
        d.stop()
        d.start()
        wait_until(lambda: '%s class=' % second not in qubes(), qubes)
        third = replaced(second)
        wait_state(third, 'Paused', timeout=BOOT_TIMEOUT)
        # the handed-out one is an ordinary DispVM: gone once stopped
        d.ok('admin.vm.Kill', name)
        wait_until(lambda: '%s class=' % name not in qubes(), qubes)
        # a new template: the preloaded one, made from the old, goes and
        # another comes
        d.ok('admin.vm.property.Set', 'pdvm', 'template', 'tpl2')
        wait_until(lambda: '%s class=' % third not in qubes(), qubes)
        fourth = replaced(third)
        wait_state(fourth, 'Paused', timeout=BOOT_TIMEOUT)
        # the disposable template ran: its private volume, committed when
        # it stopped, is newer than the preloaded one's, which goes
        d.ok('admin.vm.Start', 'pdvm')
        halt('pdvm')
        wait_until(lambda: '%s class=' % fourth not in qubes(), qubes)
        fifth = replaced(fourth)
        wait_state(fifth, 'Paused', timeout=BOOT_TIMEOUT)
        # the maximum lowered: the preloaded one goes
        d.ok('admin.vm.feature.Set', 'pdvm', 'preload-dispvm-max', '0')
        wait_until(lambda: '%s class=' % fifth not in qubes(), qubes)
        assert listed() is None, listed()
    finally:
        ev.close()
        if os.path.exists(avail):
            os.unlink(avail)
        d.call('admin.vm.feature.Remove', 'dom0', 'preload-dispvm-threshold')
        d.call('admin.vm.feature.Set', 'pdvm', 'preload-dispvm-max', '0')
        for vm in (name, second, third, fourth, fifth):
            if vm and '%s class=' % vm in qubes():
                d.call('admin.vm.Kill', vm)

        def dispvms():
            out = []
            for line in qubes().splitlines():
                q = line.split()[0]
                r = d.call('admin.vm.property.Get', q, 'template')
                if 'class=DispVM' in line and r[0] == 'ok' and \
                        r[1].split()[-1] == 'pdvm':
                    out.append(q)
            return out
        wait_until(lambda: not dispvms(),
                   lambda: (dispvms(), d.read_log()[-2000:]), timeout=60)


def test_pause_suspend_and_stats():
    """Pause/Unpause and Suspend/Resume keep the guest; admin.vm.Stats
    streams the running qube's vm-stats."""
    d = state['d']
    halt()
    d.ok('admin.property.Set', 'dom0', 'stats_interval', '1')
    try:
        start_ready('work')
        d.ok('admin.vm.Suspend', 'work')
        st = d.ok('admin.vm.CurrentState', 'work')
        assert 'power_state=Running' not in st, st
        d.ok('admin.vm.Resume', 'work')
        assert 'power_state=Running' in d.ok('admin.vm.CurrentState', 'work')
        console_run('work', 'echo STILL-HERE', 'STILL-HERE')
        def stats_in(buf):
            return [e for e in parse_events(buf)[0] if e[1] == 'vm-stats']
        buf = d.stream('admin.vm.Stats', 'work',
                       lambda b: len(stats_in(b)) >= 3, timeout=60)
        stats = stats_in(buf)
        assert len(stats) >= 3, buf
        assert all(e[0] == 'work' for e in stats), stats
        assert int(stats[-1][2]['memory_kb']) > 100 * 1024, stats
        assert int(stats[-1][2]['cpu_time']) > 0, stats
        assert int(stats[-1][2]['cpu_time']) >= int(stats[0][2]['cpu_time'])
    finally:
        d.ok('admin.property.Reset', 'dom0', 'stats_interval')
        halt()


def test_host_suspend_and_resume():
    """internal.SuspendPre (the host about to sleep) suspends the running
    qube and SuspendPost resumes it, its guest going on; a qube the user
    had paused before is listed and stays paused after the resume."""
    d = state['d']
    paused_list = os.path.join(state['work'], 'previously-paused.list')
    halt()
    start_ready('work')

    def internal(method):
        r = d.call(method, 'dom0', which='internal')
        assert r == ('ok', ''), (method, r)

    internal('internal.SuspendPre')
    st = d.ok('admin.vm.CurrentState', 'work')
    assert 'power_state=Running' not in st, st
    with open(paused_list) as f:
        assert f.read() == ''
    internal('internal.SuspendPost')
    assert not os.path.exists(paused_list)
    assert 'power_state=Running' in d.ok('admin.vm.CurrentState', 'work')
    console_run('work', 'echo AFTER-RESUME', 'AFTER-RESUME')
    # paused by the user: listed, left paused
    d.ok('admin.vm.Pause', 'work')
    internal('internal.SuspendPre')
    with open(paused_list) as f:
        assert f.read() == 'work'
    internal('internal.SuspendPost')
    assert 'power_state=Paused' in d.ok('admin.vm.CurrentState', 'work')
    d.ok('admin.vm.Unpause', 'work')
    console_run('work', 'echo STILL-HERE', 'STILL-HERE')
    halt()


def allocated(path):
    return os.stat(path).st_blocks * 512


def running_image(vm, volume):
    folder = os.path.join(state['base'], 'appvms', vm)
    names = [n for n in os.listdir(folder)
             if n.startswith(volume) and 'dirty' in n]
    assert len(names) == 1, os.listdir(folder)
    return os.path.join(folder, names[0])


def test_discard_in_the_guest_frees_image_space():
    """The seed's online discard: blkdiscard in the guest punches holes
    in the running image (discard='unmap')."""
    d = state['d']
    halt()
    start_ready('work')
    try:
        console_run('work', 'dd if=/dev/urandom of=$(disk private) bs=1M '
                    'seek=64 count=32 conv=fsync 2>/dev/null && '
                    'echo FILLED', 'FILLED')
        img = running_image('work', 'private')
        full = allocated(img)
        console_run('work', 'blkdiscard -o %d -l %d $(disk private) && '
                    'sync && echo DISCARDED' % (64 << 20, 32 << 20),
                    'DISCARDED')
        deadline = time.monotonic() + 30
        while allocated(img) > full - (24 << 20):
            assert time.monotonic() < deadline, (full, allocated(img))
            time.sleep(0.3)
    finally:
        halt()


def qemu_pid(vm):
    r = subprocess.run(['pgrep', '-f', 'guest=%s,' % vm],
                       capture_output=True, text=True)
    pids = r.stdout.split()
    assert len(pids) == 1, (vm, r.stdout)
    return int(pids[0])


def test_qemu_killed_is_a_shutdown():
    """kill -9 of a qube's QEMU: domain-shutdown, storage stopped, the
    qube Halted, and it starts again."""
    d = state['d']
    halt()
    start_ready('work')
    ev = Events('work')
    try:
        os.kill(qemu_pid('work'), signal.SIGKILL)
        ev.wait_for('domain-shutdown')
        assert in_order(ev.names(), ['domain-stopped', 'domain-shutdown'])
        assert 'power_state=Halted' in d.ok('admin.vm.CurrentState', 'work')
        left = os.listdir(os.path.join(state['base'], 'appvms', 'work'))
        assert not [f for f in left if 'dirty' in f], left
    finally:
        ev.close()
    start_ready('work')
    halt()


def test_volatile_empty_and_revert():
    """volatile is empty at each start; a revert of private brings back
    the data of an earlier run at the next start."""
    d = state['d']
    halt()
    start_ready('work')
    console_run('work', 'echo generation-one | dd of=$(disk private) '
                'bs=512 seek=32 conv=fsync 2>/dev/null; echo scratch | '
                'dd of=$(disk volatile) bs=512 seek=32 conv=fsync '
                '2>/dev/null && echo WROTE-1', 'WROTE-1')
    d.ok('admin.vm.Shutdown', 'work', 'wait')
    start_ready('work')
    out = console_run('work', 'echo VOL-$(dd if=$(disk volatile) bs=512 '
                      'skip=32 count=1 2>/dev/null | tr -d "\\000" | '
                      'head -c 7)-END', '-END')
    assert 'VOL--END' in out.replace('\r', ''), out[-500:]
    console_run('work', 'echo generation-two | dd of=$(disk private) '
                'bs=512 seek=32 conv=fsync 2>/dev/null && echo WROTE-2',
                'WROTE-2')
    d.ok('admin.vm.Shutdown', 'work', 'wait')
    private = os.path.join(state['base'], 'appvms', 'work', 'private.img')
    assert read_at(private, 32 * 512, 14) == b'generation-two'
    snaps = d.ok('admin.vm.volume.ListSnapshots', 'work', 'private').split()
    d.ok('admin.vm.volume.Revert', 'work', 'private', snaps[-1])
    assert read_at(private, 32 * 512, 14) == b'generation-one'
    out = start_ready('work')
    text = console_run('work', 'echo GOT-$(dd if=$(disk private) bs=512 '
                       'skip=32 count=1 2>/dev/null | head -c 14)-END',
                       '-END')
    assert 'GOT-generation-one-END' in text.replace('\r', ''), text[-500:]
    halt()


def test_qubesd_killed_with_two_qubes_running():
    """SIGKILL of qubesd while two qubes run; the new qubesd adopts both,
    their writes land, and they stop cleanly."""
    d = state['d']
    halt()
    make_qube('work2')
    halt('work2')
    start_ready('work')
    start_ready('work2')
    d.kill()
    d.start()
    for vm in ('work', 'work2'):
        wait_state(vm, 'Running', timeout=10)
        console_run(vm, 'echo after-kill-%s | dd of=$(disk private) bs=512 '
                    'seek=48 conv=fsync 2>/dev/null && echo WROTE-K' % vm,
                    'WROTE-K')
    for vm in ('work', 'work2'):
        d.ok('admin.vm.Shutdown', vm, 'wait')
        private = os.path.join(state['base'], 'appvms', vm, 'private.img')
        want = ('after-kill-%s' % vm).encode()
        assert read_at(private, 48 * 512, len(want)) == want


def test_start_fails_when_the_pool_is_full():
    """A qube whose root snapshot must be copied (ext4: no reflinks) into
    a full pool: the start fails naming the pool, nothing runs, nothing
    of the attempt is left, and the template is unharmed."""
    d = state['d']
    small = LoopFS('ext4', '160M')
    try:
        d.ok('admin.pool.Add', arg='file-reflink', payload=(
            'name=small\ndir_path=%s\nsetup_check=no\n'
            % os.path.join(small.mnt, 'pool')))
        d.ok('admin.vm.CreateInPool.TemplateVM', 'dom0', '',
             'name=fulltpl label=black pool=small')
        root = os.path.join(small.mnt, 'pool', 'vm-templates', 'fulltpl',
                            'root.img')
        with open(root, 'r+b') as f:  # data the snapshot must copy
            for i in range(100):
                f.write(os.urandom(1 << 20))
            os.fsync(f.fileno())
        d.ok('admin.vm.CreateInPool.AppVM', 'dom0', 'fulltpl',
             'name=fullvm label=red pool=small')
        d.ok('admin.vm.property.Set', 'fullvm', 'netvm', '')
        before = sorted(os.listdir(os.path.join(small.mnt, 'pool',
                                                'appvms', 'fullvm')))
        r = d.call('admin.vm.Start', 'fullvm')
        assert r[0] == 'exc', r
        assert 'small' in r[2] or 'No space' in r[2], r
        assert 'power_state=Halted' in d.ok('admin.vm.CurrentState',
                                            'fullvm')
        after = sorted(os.listdir(os.path.join(small.mnt, 'pool',
                                               'appvms', 'fullvm')))
        # (the stop of what started commits the unchanged private image
        # as a revision, as the reference's)
        assert [n for n in after if '@' not in n] == before, (before, after)
        with open(root, 'rb') as f:
            f.seek(99 << 20)
            assert len(f.read(1 << 20)) == 1 << 20
    finally:
        for vm in ('fullvm', 'fulltpl'):
            d.call('admin.vm.Remove', vm)
        d.call('admin.pool.Remove', 'dom0', 'small')
        small.close()


def test_start_fails_when_the_netvm_fails():
    """The netvm is started first; when it cannot start, the client's
    start fails with the cause and nothing runs."""
    d = state['d']
    halt()
    make_qube('badnet', provides_network=True)
    halt('badnet')
    d.ok('admin.vm.property.Set', 'badnet', 'vcpus', '4096')
    d.ok('admin.vm.property.Set', 'work', 'netvm', 'badnet')
    try:
        r = d.call('admin.vm.Start', 'work')
        assert r[0] == 'exc' and r[2].startswith('Start failed: '), r
        for vm in ('work', 'badnet'):
            assert 'power_state=Halted' in d.ok('admin.vm.CurrentState', vm)
        left = os.listdir(os.path.join(state['base'], 'appvms', 'work'))
        assert not [f for f in left if 'dirty' in f], left
    finally:
        d.ok('admin.vm.property.Set', 'work', 'netvm', '')
        d.ok('admin.vm.property.Reset', 'badnet', 'vcpus')


def test_memory_asked_of_qmemmand():
    """qubesd asks qmemmand for a qube's memory before it is created (the
    reference's amount), holds the reservation until the domain exists;
    a FAIL is master's QubesMemoryError and nothing of the start stays.
    Without qmemmand (the default socket is absent here) qubes start, as
    every other test shows."""
    d = state['d']
    for vm in ('work', 'work2'):
        if '%s class=' % vm in d.ok('admin.vm.List', 'dom0'):
            halt(vm)
    make_qube('work2')
    qmemmand = os.path.join(os.path.dirname(QUBESD), 'qmemmand')
    sock = os.path.join(state['work'], 'qmemman.sock')
    log = open(os.path.join(state['work'], 'qmemmand.log'), 'w+')
    # 400 MiB for all domains: one qube of 256 MiB fits, two do not
    qm = subprocess.Popen([qmemmand, '--config', '/nonexistent',
                           '--socket', sock, '--status-socket',
                           sock + '.status', '--avail-mem-file',
                           sock + '.avail', '--inhibit-file', '',
                           '--libvirt-uri',
                           state['lv'].uri, '--total-mem', '400MiB',
                           '--host-reserve', '0'],
                          stdout=log, stderr=subprocess.STDOUT)
    args = list(d.args)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(sock):
            assert time.monotonic() < deadline and qm.poll() is None
            time.sleep(0.1)
        d.stop()
        d.args += ['--qmemman-socket', sock]
        d.start()
        start_ready('work')
        vcpus = int(prop('work', 'vcpus'))
        want = (256 + 4) * 1024 * 1024 + vcpus * 1572864
        log.seek(0)
        assert 'request %d: OK' % want in log.read(), want
        base = os.path.join(state['base'], 'appvms', 'work2')
        before = sorted(n for n in os.listdir(base) if '@' not in n)
        assert d.call('admin.vm.Start', 'work2') == (
            'exc', 'QubesMemoryError',
            "Not enough memory to start domain 'work2'")
        assert 'power_state=Halted' in d.ok('admin.vm.CurrentState', 'work2')
        after = sorted(n for n in os.listdir(base) if '@' not in n)
        assert after == before, (before, after)
        # once work is gone, there is room
        halt('work')
        start_ready('work2')
        halt('work2')
    finally:
        qm.terminate()
        qm.wait(10)
        d.stop()
        d.args[:] = args
        d.start()


def test_autostart_once_per_boot():
    """The first qubesd of a boot (no marker in /run) starts the qubes
    whose autostart is True once it knows which qubes run, logs it, and
    writes the marker; a later qubesd of the same boot starts nothing."""
    d = state['d']
    halt('work')
    marker = os.path.join(state['work'], 'autostart-done')
    d.ok('admin.vm.property.Set', 'work', 'autostart', 'True')
    try:
        d.stop()
        if os.path.exists(marker):
            os.unlink(marker)
        mark = len(d.read_log())
        d.start()
        wait_state('work', 'Running')
        deadline = time.monotonic() + 60
        while 'work: autostarted' not in d.read_log()[mark:]:
            assert time.monotonic() < deadline, d.read_log()[mark:]
            time.sleep(0.2)
        while not os.path.exists(marker):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        halt('work')
        d.stop()
        mark = len(d.read_log())
        d.start()
        time.sleep(5)
        assert 'power_state=Halted' in d.ok('admin.vm.CurrentState', 'work')
        assert 'autostarted' not in d.read_log()[mark:]
    finally:
        d.ok('admin.vm.property.Set', 'work', 'autostart', 'False')


if __name__ == '__main__':
    sys.exit(run_file(globals(), setup, state, after))
