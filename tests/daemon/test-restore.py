#!/usr/bin/python3
"""qvm-backup-restore, as a process, into qubesd through its socket.

    test-restore.py PATH/TO/qubesd FIXTURES [--no-hash]

1. Each backup the Qubes reference made (FIXTURES: r4-gzip, r4-plain,
   r4-xz with MANIFEST.json) restored into a fresh qubesd: every qube's
   class, label, template, netvm, properties, features, tags, firewall
   rules, notes, and the sha256 and size of each volume's data exactly as
   the manifest gives them (--no-hash, the sanitizer build: sizes and
   holes only, not the sha256 of 30 GiB of mostly zeros).
2. The summary table, the conflicts refused in the client's words, then
   --rename-conflicting and --skip-conflicting; -x and a VM list.
3. --verify-only reads everything and creates nothing; a flipped byte in
   the last chunk is found; a wrong passphrase is refused before anything
   is created.
4. A broken backup (a byte flipped in a volume's chunk): the qubes whose
   data did not arrive whole are removed again, the message names the
   chunk.
5. dom0's home from a hostile backup: "..", absolute names, a write
   through a symbolic link, a device, a hard link: nothing lands outside
   home-restore-DATE, each refusal named.
6. A power cut (XFS shut down, its log not flushed) during a restore and
   during a backup: the system loads after recovery, nothing is under the
   backup's final name, and each runs again to the end.
7. Round trip: a system with a template, a netvm chain, a disposable
   template, firewall, notes, features, tags and sparse volumes with data
   past 100 MiB (several chunks), backed up by qubesd and restored into a
   fresh one: the same state through the API, the same bytes in every
   volume.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qubesd_harness import run_file  # noqa: E402
from qubesd_harness import Daemon, LoopFS, make_kernel  # noqa: E402
from image_digest import content_digest, sha256_sparse  # noqa: E402

QUBESD = os.path.abspath(sys.argv[1])
FIXTURES = os.path.abspath(sys.argv[2])
HASH = '--no-hash' not in sys.argv[3:]
TOOLS = os.path.dirname(QUBESD)
state = {}


def setup():
    fs = LoopFS('xfs', size='6G')
    state['fs'] = fs
    state['tmp'] = tempfile.mkdtemp(prefix='qubes-restore-')
    with open(os.path.join(FIXTURES, 'MANIFEST.json')) as f:
        state['manifest'] = json.load(f)
    state['n'] = 0
    state['home'] = os.path.join(state['tmp'], 'restore-home')
    os.mkdir(state['home'])


def after():
    shutil.rmtree(state.get('tmp', '/nonexistent'), ignore_errors=True)


def fresh(name):
    """A new qubesd on its own folder of the test filesystem."""
    old = state.get('d')
    if old:
        old.stop()
        old.cleanup()
    state['n'] += 1
    base = os.path.join(state['fs'].mnt, '%s-%d' % (name, state['n']))
    make_kernel(base, '6.1.0')
    profiles = os.path.join(state['tmp'], 'profiles-%d' % state['n'])
    os.mkdir(profiles)
    # dom0's home as the source system backs it up
    src_home = os.path.join(state['tmp'], 'src-home-%d' % state['n'], 'user')
    os.makedirs(os.path.join(src_home, 'docs'))
    with open(os.path.join(src_home, 'docs', 'a.txt'), 'w') as f:
        f.write('dom0 file\n')
    os.symlink('/etc/passwd', os.path.join(src_home, 'outside'))
    d = Daemon(QUBESD, base, args=['--backup-dir', profiles,
                                   '--dom0-home', src_home])
    state['d'] = d.start()
    state['base'] = base
    state['profiles'] = profiles
    return d


def D():
    return state['d']


def tool(name, args, stdin=b''):
    # dom0's home is restored into $HOME (there is no group qubes here)
    env = dict(os.environ, QUBESD_SOCKET=D().sock,
               QUBES_BACKUP_PROFILE_DIR=state['profiles'],
               HOME=state['home'])
    return subprocess.run([os.path.join(TOOLS, name)] + args, input=stdin,
                          capture_output=True, env=env, timeout=900)


def passfile(text):
    p = os.path.join(state['tmp'], 'pass')
    with open(p, 'w') as f:
        f.write(text + '\n')
    return p


def restore(path, passphrase, *args):
    return tool('qvm-backup-restore',
                ['-p', passfile(passphrase)] + list(args) + [path])


def prop(vm, name):
    out = D().ok('admin.vm.property.Get', vm, name)
    return out.split(' ', 2)[2] if out.count(' ') >= 2 else ''


def vm_list():
    out = D().ok('admin.vm.List')
    return {line.split()[0]: line.split('class=')[1].split()[0]
            for line in out.splitlines() if line}


def image(vm, klass, volume):
    prefix = 'vm-templates' if klass == 'TemplateVM' else 'appvms'
    return os.path.join(state['base'], prefix, vm, volume + '.img')


# manifest sha256 -> the content digest of an image verified against it:
# a later image with the same sha256 is compared by content digest, not
# hashed whole again (10 GiB of holes cost seconds to hash)
VERIFIED = {}


def same_as_manifest(path, sha):
    if sha in VERIFIED:
        return content_digest(path) == VERIFIED[sha]
    if sha256_sparse(path) != sha:
        return False
    VERIFIED[sha] = content_digest(path)
    return True


def check_against_manifest(key):
    man = state['manifest'][key]
    qubes = vm_list()
    for name, q in man['qubes'].items():
        assert qubes.get(name) == q['class'], (name, qubes)
        assert prop(name, 'label') == q['label'], name
        if q['template']:
            assert prop(name, 'template') == q['template'], name
        if q['netvm']:
            assert prop(name, 'netvm') == q['netvm'], name
        for p, v in q['properties'].items():
            got = prop(name, p)
            want = {True: 'True', False: 'False'}.get(v, str(v))
            assert got == want, (name, p, got, want)
        feats = D().ok('admin.vm.feature.List', name).split()
        want_feats = dict(q['features'])
        if q['properties'].get('provides_network'):
            # master's core_features marks a network qube when the
            # restore sets provides_network
            want_feats.setdefault('servicevm', '1')
        assert sorted(feats) == sorted(want_feats), (name, feats)
        for f, v in want_feats.items():
            assert D().ok('admin.vm.feature.Get', name, f) == v, (name, f)
        tags = D().ok('admin.vm.tag.List', name).split()
        for t in q['tags']:
            assert t in tags, (name, t, tags)
        if 'firewall' in q:
            rules = D().ok('admin.vm.firewall.Get', name).splitlines()
            assert rules == q['firewall'], (name, rules)
        if 'notes' in q:
            assert D().ok('admin.vm.notes.Get', name) == q['notes'], name
        for vol, v in q['volumes'].items():
            path = image(name, q['class'], vol)
            assert os.path.getsize(path) == v['size'], (name, vol)
            # holes kept: only what holds data is allocated
            st = os.stat(path)
            assert st.st_blocks * 512 < 64 << 20, (name, vol, st.st_blocks)
            if HASH:
                assert same_as_manifest(path, v['sha256']), (name, vol)


def restore_fixture(key):
    fresh(key)
    man = state['manifest'][key]
    r = restore(os.path.join(FIXTURES, key + '.bin'), man['passphrase'])
    assert r.returncode == 0, r
    out = r.stdout.decode()
    assert out.startswith('The following VMs are included in the backup:\n'), \
        out
    check_against_manifest(key)
    return out


def test_restore_reference_gzip():
    out = restore_fixture('r4-gzip')
    # the client's table: names first, then type, template, netvm, label
    table = ('---------+--------------+----------+-----------+--------+\n'
             '    name |         type | template |     netvm |  label |\n'
             '---------+--------------+----------+-----------+--------+\n'
             '  fx-dvm |        AppVM |   fx-tpl |         - |  green |\n'
             '  fx-net |        AppVM |   fx-tpl |         - | orange |\n'
             '   fx-sa | StandaloneVM |      n/a |         - |   blue |\n'
             '  fx-tpl |   TemplateVM |      n/a | (default) |  black |\n'
             ' fx-work |        AppVM |   fx-tpl |    fx-net | purple |\n\n')
    assert out.endswith(table), (out, table)


def test_restore_reference_plain():
    restore_fixture('r4-plain')


def test_restore_reference_xz():
    restore_fixture('r4-xz')


def test_conflicts_and_selection():
    # the xz fixture's qubes are here now
    path = os.path.join(FIXTURES, 'r4-xz.bin')
    pw = state['manifest']['r4-xz']['passphrase']
    r = restore(path, pw)
    assert r.returncode == 1, r
    err = r.stderr.decode()
    assert 'A VM with the same name already exists on the host!' in \
        r.stdout.decode()
    assert 'qvm-backup-restore: error: Remove VMs with conflicting names ' \
        'from the host before proceeding.' in err, err
    r = restore(path, pw, '--skip-conflicting')
    assert r.returncode == 0, r
    before = vm_list()
    r = restore(path, pw, '--rename-conflicting', '-x', 'fx-net')
    assert r.returncode == 0, r
    out = r.stdout.decode()
    assert "<-- Will be renamed to 'fx-work-1'" in out, out
    assert 'fx-net |' in out and 'Excluded from restore' in out, out
    now = vm_list()
    assert set(now) - set(before) == {'fx-tpl-1', 'fx-work-1'}, now
    # the renamed template is the renamed qube's template; the netvm
    # excluded here is the host's own (the client would name the rename
    # it did not make)
    assert prop('fx-work-1', 'template') == 'fx-tpl-1'
    assert prop('fx-work-1', 'netvm') == 'fx-net'
    for vm in ('fx-work-1', 'fx-tpl-1'):
        D().ok('admin.vm.Remove', vm)


def test_qrexec_options_refused():
    # what needs qrexec (a disposable qube to restore in, a location that
    # is a qrexec service, a backup in a qube) is refused in words naming
    # the reason, before the backup is read: nothing is made
    fresh('qrexec')
    path = os.path.join(FIXTURES, 'r4-gzip.bin')
    pw = state['manifest']['r4-gzip']['passphrase']
    before = vm_list()
    for opts in (['--paranoid-mode'], ['--plan-b', '--auto-close']):
        r = restore(path, pw, *opts)
        assert r.returncode == 1, r
        assert r.stderr.decode() == (
            'qvm-backup-restore: error: Restoring in a disposable qube '
            '(--paranoid-mode) needs qrexec, which this system does not '
            'have\n'), r
    # the client's own check first: a service needs -d
    r = restore(path, pw, '--location-is-service')
    assert r.returncode == 2, r
    assert r.stderr.decode().endswith(
        'qvm-backup-restore: error: --location-is-service option requires '
        '-d\n'), r
    r = restore(path, pw, '--location-is-service', '-d', 'fx-work')
    assert r.returncode == 1 and b'(--location-is-service) needs qrexec' \
        in r.stderr, r
    r = restore(path, pw, '-d', 'fx-work')
    assert r.returncode == 1 and b'needs qrexec' in r.stderr, r
    assert vm_list() == before
    # --auto-close alone changes nothing (it is for --paranoid-mode)
    r = restore(path, pw, '--auto-close', '--verify-only')
    assert r.returncode == 0, r


def test_older_format_refused():
    # a backup of format 2 (Qubes R2: a multi-volume inner tar, which the
    # client does not read either): refused in the client's words, before
    # anything is made
    import hmac
    import io
    import tarfile
    fresh('format2')
    header = (b'version=2\nhmac-algorithm=SHA512\ncrypto-algorithm='
              b'aes-256-cbc\nencrypted=True\ncompressed=True\n'
              b'compression-filter=gzip\n')
    mac = hmac.new(b'pw', header, 'sha512').hexdigest()
    path = os.path.join(state['tmp'], 'format2.bin')
    with tarfile.open(path, 'w', format=tarfile.PAX_FORMAT) as t:
        for name, data in (('backup-header', header),
                           ('backup-header.hmac',
                            ('(stdin)= %s\n' % mac).encode()),
                           ('qubes.xml.000', b'x' * 64),
                           ('qubes.xml.000.hmac', b'(stdin)= 00\n')):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    r = restore(path, 'pw')
    assert r.returncode == 1, r
    assert 'qvm-backup-restore: error: Backup format version 2 not ' \
        'supported' in r.stderr.decode(), r
    assert set(vm_list()) == {'dom0'}, vm_list()


R3_XML = """<?xml version='1.0' encoding='UTF-8'?>
<QubesVmCollection default_netvm="3" default_template="1" updatevm="3"
 clockvm="2" default_kernel="4.4.55-11"><QubesAdminVm qid="0" name="dom0"
 label="black" backup_content="False"/><QubesTemplateVm qid="1"
 name="r3-tpl" label="black" template_qid="none"
 backup_content="True" backup_path="vm-templates/r3-tpl" backup_size="4096"
 /><QubesNetVm qid="2" name="r3-net" label="red" template_qid="1"
 memory="300" pcidevs="[]"/><QubesProxyVm qid="3" name="r3-fw"
 label="green" template_qid="1" uses_default_netvm="False" netvm_qid="2"
 uses_default_dispvm_netvm="False" dispvm_netvm_qid="3"/><QubesAppVm qid="4" name="r3-work" label="blue" template_qid="1"
 uses_default_netvm="True" vcpus="1" memory="400" maxmem="4000"
 services="{'ntpd': True, 'cups': False}" backup_content="True"
 backup_path="%s" backup_size="3145728"/><QubesAppVm qid="5"
 name="r3-solo" label="purple" template_qid="none" uses_default_netvm="False"
 netvm_qid="none" backup_content="True" backup_path="%s"
 backup_size="4096"/></QubesVmCollection>
"""

R3_FIREWALL = b"""<?xml version='1.0' encoding='UTF-8'?>
<QubesFirewallRules policy="deny" dns="allow" icmp="allow">
<rule address="192.168.0.1" netmask="32" proto="tcp" port="1234"/>
<rule address="example.org" port="443"/>
<rule address="10.0.0.0" netmask="8" proto="udp" port="53" toport="54"/>
</QubesFirewallRules>
"""


def r3_backup(path, pw, encrypted=True, chunk='1M', damage=None):
    """A backup of format 3 (Qubes R3) made as R3 made them, with the
    tools: each file's tar (gzip) through `openssl enc -aes-256-cbc -md
    MD5`, cut in chunks, each with its `openssl dgst -sha512 -hmac`.
    Returns the private image's bytes. @damage(chunk path): changes a
    chunk after its hmac is made."""
    work = tempfile.mkdtemp(dir=state['tmp'])
    stage = os.path.join(work, 'stage')
    src = os.path.join(work, 'src')
    os.makedirs(stage)
    os.makedirs(src)
    sub = {'r3-work': 'vm4' if encrypted else 'appvms/r3-work',
           'r3-solo': 'vm5' if encrypted else 'appvms/r3-solo'}
    with open(os.path.join(src, 'qubes.xml'), 'w') as f:
        f.write(R3_XML % (sub['r3-work'], sub['r3-solo']))
    with open(os.path.join(src, 'firewall.xml'), 'wb') as f:
        f.write(R3_FIREWALL)
    with open(os.path.join(src, 'whitelisted-appmenus.list'), 'w') as f:
        f.write('firefox.desktop\n\nxterm.desktop\n')
    data = bytearray(os.urandom(1 << 20)) + b'R3 text ' * (1 << 17)
    img = os.path.join(src, 'private.img')
    with open(img, 'wb') as f:
        f.truncate(64 << 20)
        f.seek(8 << 20)
        f.write(data)
    with open(os.path.join(stage, 'backup-header'), 'w') as f:
        f.write('version=3\nhmac-algorithm=SHA512\ncrypto-algorithm='
                'aes-256-cbc\nencrypted=%s\ncompressed=True\n'
                'compression-filter=gzip\n' % encrypted)
    members = []

    def hmac_of(rel):
        with open(os.path.join(stage, rel), 'rb') as i, \
                open(os.path.join(stage, rel + '.hmac'), 'wb') as o:
            subprocess.run(['openssl', 'dgst', '-sha512', '-hmac', pw],
                           stdin=i, stdout=o, check=True)

    hmac_of('backup-header')
    members += ['backup-header', 'backup-header.hmac']

    def add(name, subdir):
        inner = subdir + name
        d = os.path.join(stage, os.path.dirname(inner))
        os.makedirs(d, exist_ok=True)
        cmd = ('tar -Pc --sparse --use-compress-program=gzip -C %s '
               '--xform "s:^%s:%s:" %s' % (src, name, inner, name))
        if encrypted:
            cmd += (' | openssl enc -e -aes-256-cbc -md MD5 -pass %s' %
                    shlex.quote('pass:' + pw))
        cmd += ' | split -d -a 3 -b %s - %s.' % (chunk,
                                                 os.path.join(stage, inner))
        # (openssl enc warns of its key derivation, as R3's did)
        subprocess.run(cmd, shell=True, check=True,
                       stderr=subprocess.DEVNULL)
        for part in sorted(os.listdir(d)):
            if part.startswith(name + '.') and part[-3:].isdigit():
                rel = os.path.join(os.path.dirname(inner), part)
                hmac_of(rel)
                if damage and 'private.img.001' in rel:
                    damage(os.path.join(stage, rel))
                members.extend([rel, rel + '.hmac'])

    add('qubes.xml', '')
    for name in ('private.img', 'firewall.xml', 'whitelisted-appmenus.list'):
        add(name, sub['r3-work'] + '/')
    with open(path, 'wb') as out:
        for m in members:
            subprocess.run(['tar', '-cO', '--posix', '-C', stage, m],
                           stdout=out, check=True)
    shutil.rmtree(work)
    return bytes(data)


def test_format3_restored():
    # Qubes R3's backups (format 3), encrypted and not: the qubes as the
    # client's core2.py reads them, R3's firewall and menu list, the image
    # byte for byte through chunks of one openssl stream
    for encrypted in (True, False):
        fresh('r3-%s' % encrypted)
        # a host has a default template: R3's disposable templates, made
        # for a qube's dispvm netvm, come with none of their own
        D().ok('admin.vm.Create.TemplateVM', payload='name=host-tpl '
               'label=black')
        D().ok('admin.property.Set', 'dom0', 'default_template', 'host-tpl')
        path = os.path.join(state['tmp'], 'r3.bin')
        data = r3_backup(path, 'r3 pass', encrypted=encrypted)
        r = restore(path, 'r3 pass')
        assert r.returncode == 0, r
        vms = vm_list()
        assert vms.get('r3-tpl') == 'TemplateVM', vms
        assert vms.get('r3-work') == 'AppVM', vms
        assert vms.get('r3-solo') == 'StandaloneVM', vms
        assert 'r3-net' not in vms and 'r3-fw' not in vms, vms
        assert prop('r3-work', 'template') == 'r3-tpl'
        assert prop('r3-work', 'vcpus') == '1'
        assert prop('r3-work', 'label') == 'blue'
        assert prop('r3-solo', 'netvm') == ''
        assert prop('r3-solo', 'default_dispvm') == 'disp-no-netvm', \
            (prop('r3-solo', 'default_dispvm'), r.stderr)
        assert prop('disp-no-netvm', 'template') == 'host-tpl'
        assert vms.get('disp-no-netvm') == 'AppVM', vms
        assert prop('disp-no-netvm', 'template_for_dispvms') == 'True'
        feat = lambda n: D().ok('admin.vm.feature.Get', 'r3-work', n)
        assert feat('service.ntpd') == '1'
        assert feat('cups') == ''
        assert feat('menu-items') == 'firefox.desktop xterm.desktop'
        assert D().ok('admin.vm.firewall.Get', 'r3-work').splitlines() == [
            'action=accept specialtarget=dns',
            'action=accept proto=icmp',
            'action=accept dst4=192.168.0.1/32 proto=tcp dstports=1234-1234',
            'action=accept dsthost=example.org proto=tcp dstports=443-443',
            'action=accept dst4=10.0.0.0/8 proto=udp dstports=53-54',
            'action=drop'], D().ok('admin.vm.firewall.Get', 'r3-work')
        got = image('r3-work', 'AppVM', 'private')
        with open(got, 'rb') as f:
            f.seek(8 << 20)
            assert f.read(len(data)) == data
        assert os.path.getsize(got) == 64 << 20
        # the holes stay holes
        assert os.stat(got).st_blocks * 512 < 8 << 20


def test_format3_refusals():
    fresh('r3-bad')
    path = os.path.join(state['tmp'], 'r3-bad.bin')
    r3_backup(path, 'right')
    r = restore(path, 'wrong')
    assert r.returncode == 1, r
    assert 'Corrupted backup header (hmac verification failed). Is the ' \
        'password correct?' in r.stderr.decode(), r
    assert set(vm_list()) == {'dom0'}

    def flip(p):
        with open(p, 'r+b') as f:
            f.seek(100)
            b = f.read(1)
            f.seek(100)
            f.write(bytes([b[0] ^ 1]))
    r3_backup(path, 'right', damage=flip)
    r = restore(path, 'right')
    assert r.returncode == 1, r
    assert 'ERROR: invalid hmac for file vm4/private.img.001: ' in \
        r.stderr.decode(), r
    # the qube whose data did not arrive whole is removed again
    assert 'r3-work' not in vm_list(), vm_list()


def test_verify_only_and_damage():
    fresh('verify')
    path = os.path.join(FIXTURES, 'r4-gzip.bin')
    pw = state['manifest']['r4-gzip']['passphrase']
    r = restore(path, pw, '--verify-only')
    assert r.returncode == 0, r
    assert set(vm_list()) == {'dom0'}, vm_list()
    # a flipped byte in the last chunk
    bad = os.path.join(state['tmp'], 'flipped.bin')
    data = bytearray(open(path, 'rb').read())
    last = data.rfind(b'.enc\0')
    assert last > 0
    import tarfile
    # the reference ends each member with its own end blocks: read past
    with tarfile.open(path, ignore_zeros=True) as t:
        members = t.getmembers()
    lastm = members[-1]
    assert lastm.name.endswith('.enc'), lastm.name
    data[lastm.offset_data + lastm.size // 2] ^= 0x40
    with open(bad, 'wb') as f:
        f.write(data)
    r = restore(bad, pw, '--verify-only')
    assert r.returncode == 1, r
    assert lastm.name.encode() in r.stderr, (lastm.name, r.stderr)
    # a wrong passphrase: nothing made
    r = restore(path, 'wrong')
    assert r.returncode == 1, r
    assert set(vm_list()) == {'dom0'}, vm_list()
    # a broken volume chunk: the qubes made for it are removed again
    r = restore(bad, pw)
    assert r.returncode == 1, r
    # vm5 is fx-sa: it goes; the qubes restored whole before it stay
    assert lastm.name.startswith('vm5/'), lastm.name
    assert lastm.name.encode() in r.stderr, r.stderr
    left = set(vm_list())
    assert left == {'dom0', 'fx-tpl', 'fx-net', 'fx-work', 'fx-dvm'}, \
        (left, r.stderr)
    assert b'Removed fx-sa' in r.stderr, r.stderr


def snapshot(names):
    """What the API says of @names, and the sha256 of their images."""
    out = {}
    classes = vm_list()
    for n in names:
        q = {'class': classes[n]}
        for p in ('label', 'template', 'netvm', 'default_dispvm', 'memory',
                  'provides_network', 'template_for_dispvms', 'kernelopts',
                  'include_in_backups'):
            r = D().call('admin.vm.property.Get', n, p)
            q[p] = r[1] if r[0] == 'ok' else None
        q['features'] = {f: D().ok('admin.vm.feature.Get', n, f)
                         for f in D().ok('admin.vm.feature.List',
                                         n).split()}
        q['tags'] = sorted(D().ok('admin.vm.tag.List', n).split())
        q['firewall'] = D().ok('admin.vm.firewall.Get', n)
        q['notes'] = D().ok('admin.vm.notes.Get', n)
        q['block'] = D().ok('admin.vm.device.block.Assigned', n)
        vols = {}
        for v in ('root', 'private'):
            path = image(n, classes[n], v)
            if os.path.exists(path) and (classes[n] != 'AppVM' or
                                         v == 'private'):
                vols[v] = (os.path.getsize(path), sha256_sparse(path)
                           if HASH else None)
        q['volumes'] = vols
        out[n] = q
    return out


def write_at(path, offset, data):
    with open(path, 'r+b') as f:
        f.seek(offset)
        f.write(data)


def test_round_trip_through_our_backup():
    d = fresh('rt-src')
    d.ok('admin.vm.Create.TemplateVM', payload='name=rt-tpl label=black')
    d.ok('admin.vm.Create.AppVM', arg='rt-tpl', payload='name=rt-net '
         'label=red')
    d.ok('admin.vm.property.Set', 'rt-net', 'provides_network', b'True')
    d.ok('admin.vm.Create.AppVM', arg='rt-tpl', payload='name=rt-fw '
         'label=green')
    d.ok('admin.vm.property.Set', 'rt-fw', 'provides_network', b'True')
    d.ok('admin.vm.property.Set', 'rt-fw', 'netvm', b'rt-net')
    d.ok('admin.vm.Create.AppVM', arg='rt-tpl', payload='name=rt-dvm '
         'label=gray')
    d.ok('admin.vm.property.Set', 'rt-dvm', 'template_for_dispvms', b'True')
    d.ok('admin.vm.Create.AppVM', arg='rt-tpl', payload='name=rt-work '
         'label=purple')
    d.ok('admin.vm.property.Set', 'rt-work', 'netvm', b'rt-fw')
    d.ok('admin.vm.property.Set', 'rt-work', 'default_dispvm', b'rt-dvm')
    d.ok('admin.vm.property.Set', 'rt-work', 'memory', b'777')
    d.ok('admin.vm.property.Set', 'rt-work', 'kernelopts', b'a=1 b')
    d.ok('admin.vm.feature.Set', 'rt-work', 'service.x', b'1')
    d.ok('admin.vm.feature.Set', 'rt-work', 'empty', b'')
    d.ok('admin.vm.tag.Set', 'rt-work', 'rt-tag')
    d.ok('admin.vm.device.block.Assign', 'rt-work', 'rt-net+xvdz',
         b"mode='auto-attach' _read-only='yes'")
    d.ok('admin.vm.firewall.Set', 'rt-work',
         payload=b'action=accept dsthost=192.0.2.7 proto=tcp '
                 b'dstports=22-22\naction=accept specialtarget=dns\n'
                 b'action=drop\n')
    d.ok('admin.vm.notes.Set', 'rt-work', payload='notes \u00fc\n'.encode())
    # data past 100 MiB (several chunks, random: it does not compress),
    # and a template root with data far apart
    write_at(image('rt-work', 'AppVM', 'private'), 1 << 20,
             os.urandom(130 << 20))
    write_at(image('rt-work', 'AppVM', 'private'), (1 << 30) + 12345,
             b'tail' * 1000)
    write_at(image('rt-tpl', 'TemplateVM', 'root'), 0, os.urandom(1 << 20))
    write_at(image('rt-tpl', 'TemplateVM', 'root'), 5 << 30, b'x' * 70000)
    names = ['rt-tpl', 'rt-net', 'rt-fw', 'rt-dvm', 'rt-work']
    before = snapshot(names)
    dest = os.path.join(state['fs'].mnt, 'rt.bin')
    r = tool('qvm-backup', ['-y', '-p', passfile('rt pass'), dest] + names +
             ['dom0'])
    assert r.returncode == 0, r
    d = fresh('rt-dst')
    r = restore(dest, 'rt pass', '--ignore-username-mismatch')
    assert r.returncode == 0, r
    assert b'will be restored to a new directory' in r.stderr, r.stderr
    # dom0's home: under home-restore-DATE, the link kept as a link
    homes = [n for n in os.listdir(state['home'])
             if n.startswith('home-restore-')]
    assert len(homes) == 1, homes
    got = os.path.join(state['home'], homes[0], 'dom0-home', 'user')
    with open(os.path.join(got, 'docs', 'a.txt')) as f:
        assert f.read() == 'dom0 file\n'
    assert os.readlink(os.path.join(got, 'outside')) == '/etc/passwd'
    shutil.rmtree(os.path.join(state['home'], homes[0]))
    after = snapshot(names)
    for n in names:
        assert after[n] == before[n], (n, before[n], after[n])
    os.unlink(dest)


def scrypt_enc(plain, passphrase):
    """The scrypt tool's file of @plain, at a low cost (the reader takes
    any parameters within its limits)."""
    t = tempfile.mkdtemp(dir=state['tmp'])
    src, out, pw = (os.path.join(t, n) for n in ('in', 'out', 'pw'))
    with open(src, 'wb') as f:
        f.write(plain)
    with open(pw, 'w') as f:
        f.write(passphrase + '\n')
    subprocess.run(['scrypt', 'enc', '-t', '0.05', '--passphrase',
                    'file:' + pw, src, out], check=True, capture_output=True)
    with open(out, 'rb') as f:
        data = f.read()
    shutil.rmtree(t)
    return data


def hostile_backup(path, passphrase, home_members):
    """A format 4 backup of dom0's home whose tar stream is
    @home_members (a callable filling a tarfile)."""
    import io
    import tarfile
    bid = '20261206T000000-1'
    header = ('version=4\nencrypted=True\ncompressed=False\n'
              'compression-filter=gzip\nhmac-algorithm=scrypt\n'
              'backup-id=%s\n' % bid).encode()
    xml = (b"<?xml version='1.0' encoding='utf-8'?>\n<qubes>"
           b'<labels><label id="label-8" color="0x000000">black</label>'
           b'</labels><pools/><properties/><domains>'
           b'<domain id="domain-0" class="AdminVM"><properties>'
           b'<property name="label">label-8</property></properties>'
           b'<features><feature name="backup-content">1</feature>'
           b'<feature name="backup-path">dom0-home/user</feature>'
           b'<feature name="backup-size">10</feature></features><tags/>'
           b'</domain></domains></qubes>\n')

    def inner(fill):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode='w', format=tarfile.GNU_FORMAT) \
                as t:
            fill(t)
        return buf.getvalue()

    def one(t, name, data):
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    files = [('backup-header', header),
             ('backup-header.hmac',
              scrypt_enc(header, 'backup-header!' + passphrase)),
             ('qubes.xml.000.enc',
              scrypt_enc(inner(lambda t: one(t, 'qubes.xml', xml)),
                         '%s!qubes.xml.000!%s' % (bid, passphrase))),
             ('dom0-home/user.000.enc',
              scrypt_enc(inner(home_members),
                         '%s!dom0-home/user.000!%s' % (bid, passphrase)))]
    with tarfile.open(path, 'w', format=tarfile.PAX_FORMAT) as t:
        for name, data in files:
            one(t, name, data)


def test_hostile_members_stay_inside():
    import io
    import tarfile
    fresh('hostile')
    outside = os.path.join(state['tmp'], 'outside')
    os.mkdir(outside)

    def fill(t):
        def add(name, data=b'x', kind=tarfile.REGTYPE, link=''):
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.linkname = link
            ti.size = len(data) if kind == tarfile.REGTYPE else 0
            t.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE
                      else None)
        add('dom0-home/user/', kind=tarfile.DIRTYPE)
        add('dom0-home/user/good.txt', b'good\n')
        add('dom0-home/user/../../escape.txt')
        add('/abs-%d.txt' % os.getpid())
        add('dom0-home/user/lnk', kind=tarfile.SYMTYPE, link=outside)
        add('dom0-home/user/lnk/through.txt')
        add('dom0-home/user/dev', kind=tarfile.CHRTYPE)
        add('dom0-home/user/hard', kind=tarfile.LNKTYPE,
            link='/etc/passwd')
    path = os.path.join(state['tmp'], 'hostile.bin')
    hostile_backup(path, 'hp', fill)
    r = restore(path, 'hp')
    assert r.returncode == 0, r
    homes = [n for n in os.listdir(state['home'])
             if n.startswith('home-restore-')]
    assert len(homes) == 1, homes
    top = os.path.join(state['home'], homes[0])
    made = sorted(os.path.relpath(os.path.join(dp, n), top)
                  for dp, dns, fns in os.walk(top) for n in dns + fns)
    assert made == ['dom0-home', 'dom0-home/user',
                    'dom0-home/user/good.txt', 'dom0-home/user/lnk'], made
    assert os.listdir(outside) == [], os.listdir(outside)
    assert not os.path.exists('/abs-%d.txt' % os.getpid())
    assert not os.path.exists(os.path.join(state['home'], 'escape.txt'))
    err = r.stderr.decode()
    for bad in ('escape.txt', 'abs-', 'through.txt', 'dev', 'hard'):
        assert bad in err, (bad, err)
    shutil.rmtree(top)


def power_cut(fs, d, *procs):
    """A power cut under @d and @procs: the filesystem stops, they die,
    and it is mounted again (log recovery)."""
    fs.shut_down()
    for p in procs:
        p.kill()
        p.wait()
    d.kill()
    fs.remount()


def test_power_cut_during_backup_and_restore():
    import time
    fs = LoopFS('xfs', size='4G')
    d = None
    try:
        base = os.path.join(fs.mnt, 'qubes')
        make_kernel(base, '6.1.0')
        profiles = os.path.join(state['tmp'], 'cut-profiles')
        os.mkdir(profiles)
        d = Daemon(QUBESD, base, args=['--backup-dir', profiles]).start()
        env = dict(os.environ, QUBESD_SOCKET=d.sock,
                   QUBES_BACKUP_PROFILE_DIR=profiles, HOME=state['home'])
        key = 'r4-gzip'
        man = state['manifest'][key]
        pw = passfile(man['passphrase'])
        # a restore cut: after its first qubes are made
        p = subprocess.Popen([os.path.join(TOOLS, 'qvm-backup-restore'), '-p',
                              pw, os.path.join(FIXTURES, key + '.bin')],
                             env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while 'fx-sa' not in d.ok('admin.vm.List') and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        power_cut(fs, d, p)
        d.start()  # the system loads
        left = [n for n in d.ok('admin.vm.List').split('\n') if n]
        names = [n.split()[0] for n in left]
        assert 'dom0' in names, left
        # what the cut left goes, and the restore run again completes
        for n in ('fx-sa', 'fx-work', 'fx-dvm', 'fx-net', 'fx-tpl'):
            if n in names:
                d.ok('admin.vm.Remove', n)
        r = subprocess.run([os.path.join(TOOLS, 'qvm-backup-restore'), '-p',
                            pw, os.path.join(FIXTURES, key + '.bin')],
                           env=env, capture_output=True, timeout=600)
        assert r.returncode == 0, r
        assert 'fx-work class=AppVM' in d.ok('admin.vm.List')
        assert d.ok('admin.vm.notes.Get', 'fx-work') == \
            man['qubes']['fx-work']['notes']
        # a backup cut: nothing under its final name, the system loads,
        # and it runs again
        dest = os.path.join(fs.mnt, 'cut.bin')
        with open(os.path.join(profiles, 'cut.conf'), 'w') as f:
            f.write('include: null\ndestination_vm: dom0\n'
                    'destination_path: %s\npassphrase_text: x\n'
                    'compression: xz\n' % dest)
        home = os.path.join(state['tmp'], 'cut-home')
        os.makedirs(home, exist_ok=True)
        d.stop()
        d = Daemon(QUBESD, base, args=['--backup-dir', profiles,
                                       '--dom0-home', home]).start()
        p = subprocess.Popen([os.path.join(TOOLS, 'qvm-backup'), '-y',
                              '--profile', 'cut'],
                             env=dict(env, QUBESD_SOCKET=d.sock),
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(6)
        assert p.poll() is None, 'the backup ended before the cut'
        power_cut(fs, d, p)
        assert not os.path.exists(dest)
        assert [n for n in os.listdir(fs.mnt) if 'cut.bin' in n] == []
        d.start()
        assert 'fx-work class=AppVM' in d.ok('admin.vm.List')
        r = subprocess.run([os.path.join(TOOLS, 'qvm-backup'), '-y',
                            '--profile', 'cut'],
                           env=dict(env, QUBESD_SOCKET=d.sock),
                           capture_output=True, timeout=600)
        assert r.returncode == 0, r
        assert os.path.getsize(dest) > 0
        d.stop()
        d.cleanup()
        d = None
    finally:
        if d:
            d.kill()
        fs.close()


sys.exit(run_file(globals(), setup, state, after))
