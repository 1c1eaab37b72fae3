#!/usr/bin/python3
"""admin.backup.Execute, Info and Cancel through qubesd's socket.

    test-backup.py PATH/TO/qubesd [--no-verify]

Profiles are written to a folder given with --backup-dir; backups go to
a folder on the test's filesystem and are read back with the Qubes
restore's own pipeline of tools (backup_check.py: tar, scrypt dec, the
filter, tarfile), never with qubesd's reader. Checked: Info's table as
master prints it, the profile's errors in master's words, what a backup
holds (qubes.xml with its backup-* features, each volume's data with its
holes, firewall.xml, notes.txt, dom0's home), each compression choice,
backup_timestamp, backup-progress events, Cancel, a second Execute of a
running profile, the refusals that need qrexec, a full disk, and that
nothing is ever left under the final name or as a temporary.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qubesd_harness import run_file  # noqa: E402
from qubesd_harness import Daemon, LoopFS, parse_events  # noqa: E402
from backup_check import Backup  # noqa: E402

QUBESD = os.path.abspath(sys.argv[1])
# --no-verify (the ASan build): the backups are not read back with the
# scrypt tool (minutes of key derivations that test the tools, not qubesd)
VERIFY = '--no-verify' not in sys.argv[2:]
state = {}
PASS = 'test pass phrase'


def setup():
    fs = LoopFS('xfs', size='3G')
    state['fs'] = fs
    base = os.path.join(fs.mnt, 'qubes')
    state['base'] = base
    state['profiles'] = tempfile.mkdtemp(prefix='qubes-backup-profiles-')
    state['dest'] = os.path.join(fs.mnt, 'backups')
    os.mkdir(state['dest'])
    home = os.path.join(fs.mnt, 'home', 'user')
    os.makedirs(os.path.join(home, 'Documents'))
    with open(os.path.join(home, 'Documents', 'letter.txt'), 'w') as f:
        f.write('Dear Qubes,\n')
    os.symlink('Documents/letter.txt', os.path.join(home, 'link'))
    state['home'] = home
    d = Daemon(QUBESD, base, args=['--backup-dir', state['profiles'],
                                   '--dom0-home', home])
    state['d'] = d.start()
    d.ok('admin.vm.Create.TemplateVM', payload='name=test-template '
         'label=black')
    d.ok('admin.vm.Create.AppVM', arg='test-template',
         payload='name=test-vm1 label=red')


def after():
    import shutil
    shutil.rmtree(state.get('profiles', '/nonexistent'), ignore_errors=True)


def D():
    return state['d']


def profile(name, text):
    with open(os.path.join(state['profiles'], name + '.conf'), 'w') as f:
        f.write(text)


def exc(r, name, message=None):
    assert r[0] == 'exc' and r[1] == name, r
    if message is not None:
        assert r[2] == message, r
    return r


def dest_files():
    return sorted(os.listdir(state['dest']))


def clear_dest():
    for n in os.listdir(state['dest']):
        os.unlink(os.path.join(state['dest'], n))


def private_img(name):
    return os.path.join(state['base'], 'appvms', name, 'private.img')


# ---- Info ----

# master's test_600, byte for byte: its qubes are empty, so are ours
INFO_600 = (
    "------------------+--------------+--------------+\n"
    "               VM |         type |         size |\n"
    "------------------+--------------+--------------+\n"
    "         test-vm1 |           VM |            0 |\n"
    "------------------+--------------+--------------+\n"
    "      Total size: |                           0 |\n"
    "------------------+--------------+--------------+\n"
    "VMs not selected for backup:\n"
    " - dom0\n"
    " - test-template\n"
)


def test_info_as_master_test_600():
    profile('testprofile', 'include:\n - test-vm1\ndestination_vm: test-vm1\n'
            'destination_path: /var/tmp\npassphrase_text: test\n')
    assert D().ok('admin.backup.Info', arg='testprofile') == INFO_600


def test_info_default_selection_types_and_sizes():
    d = D()
    d.ok('admin.vm.Create.StandaloneVM', payload='name=alone label=green')
    d.ok('admin.vm.property.Set', 'alone', 'include_in_backups', b'False')
    with open(private_img('test-vm1'), 'r+b') as f:
        f.seek(1 << 20)
        f.write(os.urandom(3 << 20))
    profile('all', 'include: null\ndestination_vm: dom0\n'
            'destination_path: /tmp\npassphrase_text: x\n')
    out = d.ok('admin.backup.Info', arg='all')
    lines = out.splitlines()
    # name order, dom0 last as the User home
    rows = [line for line in lines if line.endswith('|')
            and not line.startswith('-')][1:-1]
    names = [r.split('|')[0].strip() for r in rows]
    assert names == ['test-template', 'test-vm1', 'dom0'], out
    assert rows[0].split('|')[1].strip() == 'Template VM', out
    assert rows[1].split('|')[1].strip() == 'VM', out
    assert rows[1].split('|')[2].strip() == '3.0 MiB', out
    assert rows[2].split('|')[1].strip() == 'User home', out
    assert 'VMs not selected for backup:\n - alone\n' in out, out
    # @tag: and @type:, exclude, and the old $ spelling
    d.ok('admin.vm.tag.Set', 'alone', 'keep')
    profile('tags', 'include:\n - $tag:keep\n - "@type:TemplateVM"\n'
            'exclude: [test-template]\ndestination_vm: dom0\n'
            'destination_path: /tmp\npassphrase_text: x\n')
    out = d.ok('admin.backup.Info', arg='tags')
    assert re.search(r'^ +alone \| +VM \+ Sys \|', out, re.M), out
    assert 'test-template\n' in out.split('not selected')[1], out
    d.ok('admin.vm.Remove', 'alone')


def test_info_rows_in_the_order_of_masters_set():
    """master's include list becomes a Python set of qubes (hash: the
    qid), iterated in its table's order: the rows come in that order"""
    import random
    d = D()
    rnd = random.Random(7)
    names = ['q%03d' % n for n in rnd.sample(range(1000), 24)]
    for n in names:
        d.ok('admin.vm.Create.AppVM', arg='test-template',
             payload='name=%s label=red' % n)
    qid = {}
    for n in names:
        qid[n] = int(d.ok('admin.vm.property.Get', n, 'qid').split()[-1])

    class Q:
        def __init__(self, name):
            self.name = name

        def __hash__(self):
            return qid[self.name]
    # inserted as master's generator goes: app.domains in name order
    pick = sorted(rnd.sample(names, 16))
    expect = [q.name for q in set(Q(n) for n in pick)]
    profile('order', 'include: [%s]\ndestination_vm: dom0\n'
            'destination_path: /tmp\npassphrase_text: x\n' % ', '.join(pick))
    out = d.ok('admin.backup.Info', arg='order')
    rows = [line.split('|')[0].strip() for line in out.splitlines()
            if line.endswith('|') and not line.startswith('-')][1:-1]
    assert rows == expect, (rows, expect)
    for n in names:
        d.ok('admin.vm.Remove', n)


def test_profile_errors_in_masters_words():
    d = D()
    r = d.call('admin.backup.Info', arg='nosuch')
    exc(r, 'QubesBackupProfileNotFoundError',
        'Backup profile does not exist: nosuch')
    for missing, text in (
            ('destination_path', 'include:\n - test-vm1\n'
             'destination_vm: test-vm1\npassphrase_text: test\n'),
            ('destination_vm', 'include:\n - test-vm1\n'
             'destination_path: /home/user\npassphrase_text: test\n'),
            ('include', 'destination_vm: dom0\ndestination_path: /x\n')):
        profile('bad', text)
        for m in ('admin.backup.Info', 'admin.backup.Execute'):
            exc(d.call(m, arg='bad'), 'QubesException',
                "Invalid backup profile - missing '%s'" % missing)
    profile('bad', 'include: null\ndestination_vm: nosuchvm\n'
            'destination_path: /x\npassphrase_text: t\n')
    exc(d.call('admin.backup.Info', arg='bad'), 'QubesException',
        'Invalid destination_vm specified in backup profile')
    profile('bad', 'include: null\ndestination_vm: dom0\n'
            'destination_path: /x\n')
    exc(d.call('admin.backup.Execute', arg='bad'), 'QubesException',
        'Invalid backup profile - you need to specify passphrase_text or '
        'passphrase_vm')
    profile('bad', 'include: [\ndestination_vm: dom0\n')
    exc(d.call('admin.backup.Info', arg='bad'), 'QubesException')
    r = d.call('admin.backup.Info', arg='a/b')
    exc(r, 'ProtocolError')
    exc(d.call('admin.backup.Cancel', arg='testprofile'), 'QubesException',
        'Backup operation not running')
    # only on dom0, with an argument, no payload
    assert d.call('admin.backup.Info', 'test-vm1', 'testprofile')[0] == 'exc'
    assert d.call('admin.backup.Info')[0] == 'exc'


def test_qrexec_destinations_refused_before_writing():
    d = D()
    profile('tovm', 'include: [test-vm1]\ndestination_vm: test-vm1\n'
            'destination_path: /home/user\npassphrase_text: test\n')
    r = exc(d.call('admin.backup.Execute', arg='tovm'), 'QubesException')
    assert 'qrexec' in r[2] and 'test-vm1' in r[2], r
    profile('pvm', 'include: [test-vm1]\ndestination_vm: dom0\n'
            'destination_path: %s\npassphrase_vm: test-vm1\n' % state['dest'])
    r = exc(d.call('admin.backup.Execute', arg='pvm'), 'QubesException')
    assert 'qrexec' in r[2], r
    profile('pvm2', 'include: [test-vm1]\ndestination_vm: dom0\n'
            'destination_path: %s\npassphrase_vm: nosuch\n' % state['dest'])
    exc(d.call('admin.backup.Execute', arg='pvm2'), 'QubesException',
        'Invalid backup profile - invalid passphrase_vm')
    assert dest_files() == []


# ---- Execute ----

def run_backup(name, compression='true', include='[test-vm1]'):
    profile(name, 'include: %s\ndestination_vm: dom0\n'
            'destination_path: %s\npassphrase_text: %s\ncompression: %s\n'
            % (include, state['dest'], PASS, compression))
    clear_dest()
    D().ok('admin.backup.Execute', arg=name)
    files = dest_files()
    assert len(files) == 1 and re.match(
        r'^qubes-\d{4}-\d\d-\d\dT\d{6}$', files[0]), files
    return os.path.join(state['dest'], files[0])


def test_backup_holds_the_qube_and_reads_with_qubes_tools():
    d = D()
    d.ok('admin.vm.notes.Set', 'test-vm1', payload=b'my notes\n')
    d.ok('admin.vm.firewall.Set', 'test-vm1',
         payload=b'action=accept dsthost=10.0.0.1\naction=drop\n')
    # master drops every preload-dispvm* feature but -max from the copy
    d.ok('admin.vm.feature.Set', 'test-vm1', 'preload-dispvm-test', b'x')
    d.ok('admin.vm.feature.Set', 'test-vm1', 'qrexec', b'1')
    d.ok('admin.vm.feature.Set', 'test-vm1',
         'supported-rpc.qubes.WaitForRunningSystem', b'1')
    d.ok('admin.vm.feature.Set', 'test-vm1', 'preload-dispvm-max', b'0')
    with open(private_img('test-vm1'), 'r+b') as f:
        f.seek(1 << 30)
        f.write(os.urandom(1 << 20))
    # master's test_612 warns (and backup_do refuses) only for a running
    # qube that keeps no revision: a halted one is backed up as any
    d.ok('admin.vm.volume.Set.revisions_to_keep', 'test-vm1', 'private',
         b'-1')
    profile('rk', 'include:\n - test-vm1\ndestination_vm: dom0\n'
            'destination_path: %s\npassphrase_text: test\n' % state['dest'])
    assert '<--' not in d.ok('admin.backup.Info', arg='rk')
    before = int(time.time())
    path = run_backup('vm1')
    d.ok('admin.vm.volume.Set.revisions_to_keep', 'test-vm1', 'private',
         b'1')
    if not VERIFY:
        return
    b = Backup(path, PASS)
    assert b.header_text == ('version=4\nencrypted=True\ncompressed=True\n'
                             'compression-filter=gzip\nhmac-algorithm=scrypt\n'
                             'backup-id=%s\n' % b.header['backup-id']), \
        b.header_text
    assert re.match(r'^\d{8}T\d{6}-\d+$', b.header['backup-id'])
    assert b.order == ['qubes.xml', 'vm2/private.img', 'vm2/firewall.xml',
                       'vm2/notes.txt'], b.order
    assert b.same_sparse('vm2/private.img', private_img('test-vm1'))
    assert b.member_bytes('vm2/notes.txt') == b'my notes\n'
    fw = b.member_bytes('vm2/firewall.xml').decode()
    assert '10.0.0.1' in fw, fw
    xml = b.member_bytes('qubes.xml').decode()
    vm1 = xml[xml.index('<property name="name">test-vm1'):]
    vm1 = xml[xml.rindex('<domain', 0, xml.index(
        '<property name="name">test-vm1')):]
    vm1 = vm1[:vm1.index('</domain>')]
    assert '<feature name="backup-content">1</feature>' in vm1, vm1
    assert '<feature name="backup-path">vm2/</feature>' in vm1, vm1
    assert re.search(r'<feature name="backup-size">\d+</feature>', vm1), vm1
    assert 'name="preload-dispvm-test"' not in vm1, vm1
    assert 'name="preload-dispvm-max"' in vm1, vm1
    tpl = xml[xml.rindex('<domain', 0, xml.index(
        '<property name="name">test-template')):]
    tpl = tpl[:tpl.index('</domain>')]
    assert '<feature name="backup-content"></feature>' in tpl or \
        '<feature name="backup-content"/>' in tpl, tpl
    # backup_timestamp set on the qube, saved
    ts = d.ok('admin.vm.property.Get', 'test-vm1', 'backup_timestamp')
    assert int(ts.split()[-1]) >= before, ts
    d.ok('admin.vm.feature.Remove', 'test-vm1', 'preload-dispvm-test')
    d.ok('admin.vm.feature.Remove', 'test-vm1', 'preload-dispvm-max')


def test_compression_choices():
    # (uncompressed: qvm_backup_makes_a_backup)
    for compression, want in (('xz', 'compression-filter=xz'),):
        path = run_backup('c', compression)
        if not VERIFY:
            continue
        b = Backup(path, PASS)
        assert want in b.header_text, (compression, b.header_text)
        assert b.same_sparse('vm2/private.img', private_img('test-vm1'))
    profile('c', 'include: [test-vm1]\ndestination_vm: dom0\n'
            'destination_path: %s\npassphrase_text: x\n'
            'compression: "sh -c evil"\n' % state['dest'])
    clear_dest()
    exc(D().call('admin.backup.Execute', arg='c'), 'QubesException')
    assert dest_files() == []


def test_dom0_home_and_empty_qube():
    d = D()
    d.ok('admin.vm.Create.AppVM', arg='test-template',
         payload='name=plain label=red')
    path = run_backup('home', include='[dom0, plain]')
    if not VERIFY:
        d.ok('admin.vm.Remove', 'plain')
        return
    b = Backup(path, PASS)
    assert b.order == ['qubes.xml', 'vm3/private.img', 'dom0-home/user'], \
        b.order
    t = b.files['dom0-home/user']
    names = sorted(m.name.rstrip('/') for m in t.getmembers())
    assert names == ['dom0-home/user', 'dom0-home/user/Documents',
                     'dom0-home/user/Documents/letter.txt',
                     'dom0-home/user/link'], names
    assert t.getmember('dom0-home/user/link').issym()
    assert t.getmember('dom0-home/user/link').linkname == \
        'Documents/letter.txt'
    assert t.extractfile('dom0-home/user/Documents/letter.txt').read() == \
        b'Dear Qubes,\n'
    xml = b.member_bytes('qubes.xml').decode()
    assert '<feature name="backup-path">dom0-home/user</feature>' in xml
    d.ok('admin.vm.Remove', 'plain')


def test_progress_events_and_already_running():
    d = D()
    with open(private_img('test-vm1'), 'r+b') as f:
        f.seek(0)
        f.write(os.urandom(64 << 20))
    profile('big', 'include: [test-vm1]\ndestination_vm: dom0\n'
            'destination_path: %s\npassphrase_text: x\n' % state['dest'])
    clear_dest()
    events = []
    result = {}

    def execute():
        result['r'] = d.call('admin.backup.Execute', arg='big')

    def watch():
        # every event until the backup answered
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(0.2)
        s.connect(d.sock)
        s.sendall(b'admin.Events+ dom0 name dom0\0')
        s.shutdown(socket.SHUT_WR)
        buf = b''
        deadline = time.monotonic() + 120
        while 'r' not in result and time.monotonic() < deadline:
            try:
                buf += s.recv(65536)
            except socket.timeout:
                pass
        s.close()
        events.extend(parse_events(buf)[0])
    w = threading.Thread(target=watch)
    w.start()
    time.sleep(0.3)
    t = threading.Thread(target=execute)
    t.start()
    time.sleep(0.5)
    exc(d.call('admin.backup.Execute', arg='big'),
        'BackupAlreadyRunningError', 'Backup already running')
    t.join()
    w.join()
    assert result['r'] == ('ok', ''), result
    prog = [float(kw['progress']) for s, e, kw in events
            if e == 'backup-progress' and kw.get('backup_profile') == 'big']
    assert prog, events[-5:]
    assert prog == sorted(prog) and 0 < prog[0] and prog[-1] <= 100, prog


def test_cancel_within_a_second_leaves_nothing():
    d = D()
    profile('slow', 'include: [test-vm1]\ndestination_vm: dom0\n'
            'destination_path: %s\npassphrase_text: x\ncompression: xz\n'
            % state['dest'])
    clear_dest()
    result = {}

    def execute():
        result['r'] = d.call('admin.backup.Execute', arg='slow')
        result['t'] = time.monotonic()
    t = threading.Thread(target=execute)
    t.start()
    time.sleep(1.5)
    assert 'r' not in result, result
    start = time.monotonic()
    assert d.call('admin.backup.Cancel', arg='slow') == ('ok', '')
    t.join()
    exc(result['r'], 'BackupCancelledError', 'Backup cancelled')
    assert result['t'] - start < 1.5, result['t'] - start
    assert dest_files() == [], dest_files()
    exc(d.call('admin.backup.Cancel', arg='slow'), 'QubesException')
    # and the profile runs again
    profile('slow', 'include: [test-vm1]\ndestination_vm: dom0\n'
            'destination_path: %s\npassphrase_text: x\ncompression: no\n'
            % state['dest'])
    d.ok('admin.backup.Execute', arg='slow')
    assert len(dest_files()) == 1
    # answered: no longer running, at once
    exc(d.call('admin.backup.Cancel', arg='slow'), 'QubesException',
        'Backup operation not running')


def test_full_disk_fails_and_leaves_nothing():
    small = LoopFS('ext4', size='48M')
    try:
        profile('full', 'include: [test-vm1]\ndestination_vm: dom0\n'
                'destination_path: %s/out.bin\npassphrase_text: x\n'
                'compression: false\n' % small.mnt)
        r = exc(D().call('admin.backup.Execute', arg='full'),
                'QubesException')
        assert 'No space left on device' in r[2], r
        left = [n for n in os.listdir(small.mnt) if n != 'lost+found']
        assert left == [], left
        profile('nodir', 'include: [test-vm1]\ndestination_vm: dom0\n'
                'destination_path: /nonexistent/dir/x\npassphrase_text: x\n')
        exc(D().call('admin.backup.Execute', arg='nodir'), 'QubesException',
            'ERROR: the backup directory for /nonexistent/dir/x does not '
            'exists')
    finally:
        small.close()


# ---- qvm-backup, as a process ----

def qvm_backup(args, stdin=b'', **kw):
    env = dict(os.environ, QUBESD_SOCKET=D().sock,
               QUBES_BACKUP_PROFILE_DIR=state['profiles'])
    tool = os.path.join(os.path.dirname(QUBESD), 'qvm-backup')
    return subprocess.run([tool] + args, input=stdin, capture_output=True,
                          env=env, timeout=300, **kw)


def profiles():
    return sorted(os.listdir(state['profiles']))


def test_qvm_backup_makes_a_backup():
    before = profiles()
    pw = os.path.join(state['profiles'], '..', 'qvm-backup-pw')
    with open(pw, 'w') as f:
        f.write(PASS + '\n')
    with open(private_img('test-vm1'), 'r+b') as f:
        f.seek(8 << 20)
        f.write(os.urandom(8 << 20))
    clear_dest()
    r = qvm_backup(['-y', '-p', pw, '--no-compress', state['dest'],
                    'test-vm1'])
    assert r.returncode == 0, r
    out = r.stdout.decode()
    assert out.startswith('------------------+--------------+'), out
    assert '         test-vm1 |           VM |' in out, out
    assert out.endswith('\n\n\n'), repr(out[-10:])
    assert 'Making a backup...' in r.stderr.decode(), r.stderr
    assert profiles() == before, profiles()  # the temporary one went
    assert len(dest_files()) == 1, dest_files()
    # its header says so (what such a backup holds is checked above)
    import tarfile
    with tarfile.open(os.path.join(state['dest'], dest_files()[0]),
                      ignore_zeros=True) as t:
        header = t.extractfile('backup-header').read().decode()
    assert 'compressed=False\n' in header, header
    os.unlink(pw)


def test_qvm_backup_usage_and_refusals():
    r = qvm_backup([])
    assert r.returncode == 2, r
    assert b"either --profile or 'backup_location' is required" in r.stderr
    r = qvm_backup(['--profile', 'x', '-x', 'test-vm1'])
    assert r.returncode == 2, r
    assert b'--exclude-list option could not be used together with ' \
        b'--profile' in r.stderr, r.stderr
    r = qvm_backup(['--profile', 'x', '--no-compress'])  # falsy: allowed
    assert r.returncode == 1, r
    assert b'Backup preparation error: Backup profile does not exist: x' \
        in r.stderr, r.stderr
    r = qvm_backup([state['dest'], 'nosuchvm'])
    assert r.returncode == 2 and b"no such domain: 'nosuchvm'" in r.stderr, r
    r = qvm_backup(['-d', 'nosuchvm', '/x', 'test-vm1'])
    assert r.returncode == 1, r
    assert b'Backup preparation error: Invalid destination_vm specified ' \
        b'in backup profile' in r.stderr, r.stderr
    # declined: nothing made, the temporary profile gone
    before = profiles()
    clear_dest()
    r = qvm_backup([state['dest'], 'test-vm1'], stdin=b'n\n')
    assert r.returncode == 0, r
    assert r.stdout.decode().endswith('Do you want to proceed? [y/N] '), r
    assert dest_files() == [] and profiles() == before, profiles()
    # a saved profile: the client's YAML, mode 0600, runnable by name
    # (gzip, the quick filter: xz is compression_choices')
    r = qvm_backup(['-y', '-p', '-', '--save-profile', 'kept', '-Z', 'gzip',
                    '-x', 'test-template', state['dest']],
                   stdin=b'  secret phrase  \n')
    assert r.returncode == 0, r
    path = os.path.join(state['profiles'], 'kept.conf')
    assert os.stat(path).st_mode & 0o777 == 0o600
    with open(path) as f:
        assert f.read() == (
            'compression: gzip\ndestination_path: %s\ndestination_vm: dom0\n'
            'exclude:\n- test-template\ninclude: null\n'
            'passphrase_text: \'  secret phrase\'\n' % state['dest'])
    os.unlink(path)


def test_qvm_backup_ctrl_c_cancels():
    pw = os.path.join(state['profiles'], '..', 'qvm-backup-pw')
    with open(pw, 'w') as f:
        f.write('x\n')
    clear_dest()
    env = dict(os.environ, QUBESD_SOCKET=D().sock,
               QUBES_BACKUP_PROFILE_DIR=state['profiles'])
    tool = os.path.join(os.path.dirname(QUBESD), 'qvm-backup')
    p = subprocess.Popen([tool, '-y', '-p', pw, '-Z', 'xz', state['dest'],
                          'test-vm1'], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    time.sleep(2)
    assert p.poll() is None
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 1, (out, err)
    assert b'Backup error: Backup cancelled' in err, err
    assert dest_files() == [], dest_files()
    os.unlink(pw)


sys.exit(run_file(globals(), setup, state, after))
