#!/usr/bin/python3
"""The qvm-* tools and the import service programs, run as processes
against a real qubesd on a loop-mounted XFS.

    test-tools.py PATH/TO/qubesd TOOLS_DIR
"""
import hashlib
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qubesd_harness import run_file  # noqa: E402
from qubesd_harness import Daemon, LoopFS  # noqa: E402

QUBESD = os.path.abspath(sys.argv[1])
TOOLS = os.path.abspath(sys.argv[2])
state = {}

ALL_TOOLS = ['qvm-prefs', 'qubes-prefs', 'qvm-ls', 'qvm-features',
             'qvm-service', 'qvm-tags', 'qvm-create', 'qvm-remove',
             'qvm-clone',
             'qvm-pool', 'qvm-volume', 'qvm-start', 'qvm-shutdown',
             'qvm-kill', 'qvm-pause', 'qvm-unpause', 'qvm-check',
             'qvm-firewall', 'qvm-device', 'qvm-block', 'qvm-pci', 'qvm-usb',
             'qvm-template-postprocess']


def run(tool, *args, ok=True, stdin=None, env=None):
    e = dict(os.environ)
    e['QUBESD_SOCKET'] = state['d'].sock
    e.update(env or {})
    r = subprocess.run([os.path.join(TOOLS, tool)] + list(args),
                       capture_output=True, env=e, input=stdin, timeout=120)
    out = r.stdout.decode(errors='replace')
    err = r.stderr.decode(errors='replace')
    if ok and r.returncode != 0:
        raise AssertionError('%s %s: exit %d: %s%s' % (tool, args,
                                                      r.returncode, out, err))
    if ok is False and r.returncode == 0:
        raise AssertionError('%s %s: succeeded: %s' % (tool, args, out))
    return out if ok else (r.returncode, out, err)


def sha(path, n=None):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read() if n is None else f.read(n)).hexdigest()


def setup():
    fs = LoopFS('xfs')
    state['fs'] = fs
    base = os.path.join(fs.mnt, 'qubes')
    state['d'] = Daemon(QUBESD, base).start()
    state['base'] = base


def test_help_for_every_tool():
    for t in ALL_TOOLS:
        out = run(t, '--help')
        # the tools ported to the client's argparse say "usage:" (their
        # help is the client's, checked in test-tool-outputs)
        assert 'Usage:' in out or out.startswith('usage: ' + t), (t, out)
        assert '(qubes-core-c)' in run(t, '--version'), t
        # the man page made from it at build time says the same: its
        # NAME line, every option the help lists
        man = os.path.join(TOOLS, t + '.1')
        assert os.path.exists(man), man
        with open(man) as f:
            page = f.read().replace('\\-', '-')
        assert '%s - manual page' % t not in page, page[:300]
        for opt in set(re.findall(r'(?<![\w-])--[a-z][\w-]*', out)):
            assert opt in page, (t, opt)


def test_create_ls_prefs():
    run('qvm-create', '--class', 'TemplateVM', '--label', 'black', 'fedora')
    run('qvm-create', '-t', 'fedora', '-l', 'red', '--property', 'vcpus=3',
        'work')
    out = run('qvm-ls').splitlines()
    assert out[0].split() == ['NAME', 'STATE', 'CLASS', 'LABEL', 'TEMPLATE',
                              'NETVM']
    assert out[1].split()[:3] == ['dom0', 'Running', 'AdminVM']
    assert ['work', 'Halted', 'AppVM', 'red', 'fedora', '-'] in \
        [l.split() for l in out]
    assert run('qvm-ls', '--raw-list') == 'dom0\nfedora\nwork\n'
    assert run('qvm-prefs', 'work', 'vcpus') == '3\n'
    run('qvm-prefs', 'work', 'memory', '700')
    assert run('qvm-prefs', 'work', 'memory') == '700\n'
    lines = run('qvm-prefs', 'work').splitlines()
    assert any(l.split() == ['memory', '-', '700'] for l in lines), lines
    assert any(l.split()[:2] == ['maxmem', 'D'] for l in lines), lines
    run('qvm-prefs', '-D', 'work', 'memory')
    assert run('qvm-prefs', 'work', 'memory') == '400\n'
    rc, out, err = run('qvm-prefs', 'work', 'memory', '0', ok=False)
    assert rc == 1 and 'memory must be positive' in err, err
    # the client's words and status (parser.error): 2
    rc, out, err = run('qvm-prefs', 'work', 'nope', ok=False)
    assert rc == 2 and err.endswith(
        "qvm-prefs: error: no such property: 'nope'\n"), err
    rc, out, err = run('qvm-prefs', 'ghost', ok=False)
    assert rc == 2 and err.endswith(
        "qvm-prefs: error: no such domain: 'ghost'\n"), err
    run('qubes-prefs', 'default_template', 'fedora')
    assert run('qubes-prefs', 'default_template') == 'fedora\n'
    run('qubes-prefs', '--default', 'default_template')
    # None: the client prints nothing
    assert run('qubes-prefs', 'default_template') == ''
    assert 'default_pool' in run('qubes-prefs')
    rc, out, err = run('qvm-create', '-l', 'red', 'work', ok=False)
    assert 'already exists' in err, err
    rc, out, err = run('qvm-create', 'nolabel', ok=False)
    assert rc == 2


def test_features_and_tags():
    run('qvm-features', 'work', 'gui', '1')
    run('qvm-features', 'work', 'os', 'Linux')
    assert run('qvm-features', 'work').split() == ['gui', '1', 'os', 'Linux']
    assert run('qvm-features', 'work', 'gui') == '1\n'
    run('qvm-features', '--unset', 'work', 'gui')
    rc, out, err = run('qvm-features', 'work', 'gui', ok=False)
    assert rc == 1 and out == ''
    run('qvm-tags', 'work', 'add', 'b-tag', 'a-tag')
    assert run('qvm-tags', 'work') == \
        'a-tag\naudiovm-dom0\nb-tag\ncreated-by-dom0\nguivm-dom0\n'
    assert run('qvm-tags', 'work', 'list', 'a-tag') == 'a-tag\n'
    rc, _, _ = run('qvm-tags', 'work', 'list', 'zzz', ok=False)
    assert rc == 1
    # the client's: del takes one tag, and one not set is no failure
    rc, out, err = run('qvm-tags', 'work', 'del', 'a-tag', 'b-tag', ok=False)
    assert rc == 2 and 'unrecognized arguments: b-tag' in err, err
    run('qvm-tags', 'work', 'del', 'a-tag')
    run('qvm-tags', 'work', 'del', 'b-tag')
    assert run('qvm-tags', 'work', 'del', 'a-tag') == ''
    assert 'a-tag' not in run('qvm-tags', 'work')


def test_pools():
    out = run('qvm-pool').splitlines()
    assert out[0].split() == ['NAME', 'DRIVER']
    assert ['varlibqubes', 'file-reflink'] in [l.split() for l in out]
    path = os.path.join(state['fs'].mnt, 'p2')
    # the client's add: one -o per option
    run('qvm-pool', 'add', 'p2', 'file-reflink', '-o', 'dir_path=%s' % path,
        '-o', 'revisions_to_keep=2')
    info = dict(l.split(None, 1) for l in
                run('qvm-pool', 'info', 'p2').splitlines())
    assert info['dir_path'] == path and info['revisions_to_keep'] == '2'
    run('qvm-pool', 'set', 'p2', '-o', 'revisions_to_keep=4')
    assert 'revisions_to_keep   4' in run('qvm-pool', 'info', 'p2')
    assert 'file-reflink' in run('qvm-pool', 'drivers')
    # qubesd's refusal, which the client does not catch: its last line
    rc, out, err = run('qvm-pool', 'add', 'p3', 'nodriver', '-o', 'x=1',
                       ok=False)
    assert rc == 1 and err == ('qubesadmin.exc.PermissionDenied: Argument '
                               "not in 'available drivers'\n"), err
    run('qvm-create', '-C', 'StandaloneVM', '-P', 'p2', '-l', 'green', 'inp2')
    rc, out, err = run('qvm-pool', 'remove', 'p2', ok=False)
    assert 'in use' in err, err
    run('qvm-remove', '-f', 'inp2')
    run('qvm-pool', 'remove', 'p2')
    assert 'p2' not in run('qvm-pool', 'list')
    assert 'varlibqubes' in run('qvm-pool', '-l')


def test_volumes_and_import():
    base = state['base']
    img = os.path.join(state['fs'].top, 'disk.img')
    with open(img, 'wb') as f:
        f.write(os.urandom(1 << 20))
        f.seek(8 << 20)  # a hole, kept sparse on import
        f.write(os.urandom(1 << 20))
    run('qvm-volume', 'import', 'work:private', img)
    priv = os.path.join(base, 'appvms', 'work', 'private.img')
    assert sha(priv) == sha(img)
    st = os.stat(priv)
    assert st.st_blocks * 512 < 4 << 20, st.st_blocks  # the hole stayed
    listing = run('qvm-volume', 'list', 'work').splitlines()
    assert listing[0].split() == ['POOL:VOLUME', 'VMNAME', 'VOLUME_NAME',
                                  'REVERT_POSSIBLE']
    assert ['varlibqubes:appvms/work/private', 'work', 'private', 'Yes'] in \
        [l.split() for l in listing]
    assert run('qvm-volume', 'info', 'work:private', 'size') == \
        '%d\n' % (9 << 20)
    assert run('qvm-volume', 'info', 'work:private', 'revisions') == '1\n'
    table = [l.split(None, 1) for l in
             run('qvm-volume', 'info', 'work:private').splitlines()]
    assert ['size', '%d' % (9 << 20)] in table, table
    assert ['vid', 'appvms/work/private'] in table, table
    # import from standard input with a size; a short stream fails and
    # changes nothing
    data = os.urandom(3 << 20)
    run('qvm-volume', 'import', '--size', str(3 << 20), 'work:private', '-',
        stdin=data)
    assert sha(priv) == hashlib.sha256(data).hexdigest()
    rc, out, err = run('qvm-volume', 'import', '--size', str(4 << 20),
                       'work:private', '-', stdin=b'x' * 100, ok=False)
    assert 'Data import failed' in err and 'ended after 100' in err, err
    assert sha(priv) == hashlib.sha256(data).hexdigest()
    assert not [f for f in os.listdir(os.path.dirname(priv))
                if 'import' in f], os.listdir(os.path.dirname(priv))
    # revert to the latest revision: the first import
    assert run('qvm-volume', 'info', 'work:private', 'revisions') == '2\n'
    run('qvm-volume', 'revert', 'work:private')
    assert sha(priv) == sha(img)
    # config and resize
    run('qvm-volume', 'config', 'work:private', 'revisions_to_keep', '3')
    assert run('qvm-volume', 'info', 'work:private',
               'revisions_to_keep') == '3\n'
    run('qvm-volume', 'resize', 'work:private', '16MiB')
    assert os.path.getsize(priv) == 16 << 20
    rc, out, err = run('qvm-volume', 'resize', 'work:private', '1MiB',
                       ok=False)
    assert 'shrink' in err, err
    rc, out, err = run('qvm-volume', 'info', 'work:nope', ok=False)
    assert rc == 1
    rc, out, err = run('qvm-volume', 'info', 'nocolon', ok=False)
    assert rc == 2


def test_import_service_program():
    """The service program as the Qubes client runs it."""
    base = state['base']
    priv = os.path.join(base, 'appvms', 'work', 'private.img')
    before = sha(priv)
    e = dict(os.environ, QUBESD_SOCKET=state['d'].sock,
             QREXEC_REQUESTED_TARGET='work', QREXEC_REMOTE_DOMAIN='dom0')
    size = os.path.getsize(priv)
    data = os.urandom(size)
    r = subprocess.run([os.path.join(TOOLS, 'admin.vm.volume.Import'),
                        'private'], input=data, capture_output=True, env=e)
    assert r.returncode == 0 and r.stdout == b'0\0', r
    assert sha(priv) == hashlib.sha256(data).hexdigest()
    r = subprocess.run([os.path.join(TOOLS, 'admin.vm.volume.ImportWithSize'),
                        'private'], input=b'4096\n' + b'z' * 4096,
                       capture_output=True, env=e)
    assert r.returncode == 0 and r.stdout == b'0\0', r
    assert os.path.getsize(priv) == 4096
    # a volume that does not exist: qubesd's refusal, nothing started
    r = subprocess.run([os.path.join(TOOLS, 'admin.vm.volume.Import'),
                        'nope'], input=b'', capture_output=True, env=e)
    assert r.returncode == 1
    del before


def test_firewall():
    """qvm-firewall with the reference client's syntax: list (table and
    --raw), add (positional words, key=value, --before, expire=+N), del
    (a rule, --rule-no); bad rules refused before anything is sent, in
    the client's words (its uncaught exceptions' last lines)."""
    run('qvm-create', '--class', 'AppVM', '--template', 'fedora', '--label',
        'red', 'fw1')
    d = state['d']
    out = run('qvm-firewall', 'fw1')
    assert out.splitlines() == [
        'NO  ACTION  HOST  PROTOCOL  PORT(S)  SPECIAL TARGET  ICMP TYPE  '
        'EXPIRE  COMMENT',
        '0   accept  -     -         -        -               -          '
        '-       -'], out
    # positional words: action dsthost proto dstports
    run('qvm-firewall', 'fw1', 'add', '--before', '0', 'accept',
        '10.0.0.1', 'tcp', '443')
    run('qvm-firewall', 'fw1', 'add', '--before', '1', 'action=accept',
        'proto=icmp', 'icmptype=8', 'comment=echo requests')
    run('qvm-firewall', 'fw1', 'add', '--before=-1', 'drop',
        'dst6=2001:db8::/32')
    run('qvm-firewall', 'fw1', 'add', 'accept', 'specialtarget=dns',
        'expire=+3600')
    got = d.ok('admin.vm.firewall.Get', 'fw1')
    lines = got.splitlines()
    assert lines[:4] == [
        'action=accept dst4=10.0.0.1/32 proto=tcp dstports=443-443',
        'action=accept proto=icmp icmptype=8 comment=echo requests',
        'action=drop dst6=2001:db8::/32',
        'action=accept'], got
    assert re.fullmatch(r'action=accept expire=\d+ specialtarget=dns',
                        lines[4]), got
    raw = run('qvm-firewall', '--raw', 'fw1').splitlines()
    assert raw[0] == 'action=accept proto=tcp dst4=10.0.0.1/32 ' \
        'dstports=443-443', raw
    assert raw[1] == 'action=accept proto=icmp icmptype=8 ' \
        'comment=echo requests', raw
    assert re.fullmatch(r'action=accept specialtarget=dns expire=\d+',
                        raw[4]), raw
    table = run('qvm-firewall', 'fw1', 'list').splitlines()
    assert table[1].split() == ['0', 'accept', '10.0.0.1/32', 'tcp', '443',
                                '-', '-', '-', '-'], table
    assert table[2].split() == ['1', 'accept', '-', 'icmp', '-', '-', '8',
                                '-', 'echo', 'requests'], table
    exp = table[5].split()
    assert exp[5] == 'dns' and re.fullmatch(r'\+3[56]\d\ds', exp[7]), table
    # del: a rule as written (qubesd adds the prefix length and shows a
    # port as a range: the same rule), a rule number
    run('qvm-firewall', 'fw1', 'del', 'drop', '2001:db8::/32')
    run('qvm-firewall', 'fw1', 'del', 'accept', '10.0.0.1', 'tcp', '443')
    run('qvm-firewall', 'fw1', 'del', '--rule-no', '1')
    lines = d.ok('admin.vm.firewall.Get', 'fw1').splitlines()
    assert len(lines) == 2 and lines[0] == \
        'action=accept proto=icmp icmptype=8 comment=echo requests', lines
    assert 'specialtarget=dns' in lines[1], lines
    before = d.ok('admin.vm.firewall.Get', 'fw1')
    # refused, nothing changed
    for args, why in [
            (['add', 'allow'], 'allow'),
            (['add', 'accept', '10.0.0.1/33'], 'netmask for IPv4'),
            (['add', 'accept', 'dstports=80'], 'dstports valid only'),
            (['add', 'accept', 'color=red'], 'Invalid rule element'),
            (['add', 'accept', 'a=b=c'], 'invalid rule description'),
            (['add', 'accept', 'comment=\u00e9'],
             "UnicodeEncodeError: 'ascii' codec can't encode character "
             "'\\xe9' in position "),
            (['del', '--rule-no', '9'], 'IndexError: pop index out of range'),
            (['del', 'drop', '10.9.9.9'],
             'ValueError: list.remove(x): x not in list'),
            (['del'], 'ValueError: list.remove(x): x not in list'),
            (['frob'], 'invalid choice'),
            (['add', '--before', 'x', 'drop'], 'invalid int value'),
    ]:
        rc, out, err = run('qvm-firewall', 'fw1', *args, ok=False)
        assert why in err, (args, err)
    assert d.ok('admin.vm.firewall.Get', 'fw1') == before
    rc, out, err = run('qvm-firewall', 'no-such-vm', ok=False)
    assert "no such domain: 'no-such-vm'" in err, err
    # --reload with list: firewall-changed, no change
    run('qvm-firewall', '--reload', 'fw1')
    assert d.ok('admin.vm.firewall.Get', 'fw1') == before
    run('qvm-remove', '-f', 'fw1')


def test_devices():
    """qvm-device and its qvm-block/qvm-pci forms with the Qubes client's
    syntax: the device classes, the listing (the client's description
    and who uses a device), info, assign (--ro, --required, options),
    unassign (one or all), attach refused to a halted qube, errors."""
    import tempfile
    tmp = tempfile.mkdtemp(prefix='qubes-test-dev-')
    img = os.path.join(tmp, 'usb-stick.img')
    subprocess.run(['truncate', '-s', '8M', img], check=True)
    loop = subprocess.run(['losetup', '-f', '--show', img],
                          capture_output=True, text=True,
                          check=True).stdout.strip()
    port = os.path.basename(loop)
    try:
        run('qvm-create', '--class', 'AppVM', '--template', 'fedora',
            '--label', 'red', 'devq')
        # the classes sorted, as the client sorts them
        assert run('qvm-device', '--list-device-classes') == 'block\npci\n'
        out = run('qvm-block')
        line = [ln for ln in out.splitlines()
                if ln.startswith('dom0:%s ' % port)]
        assert line and 'Block_Storage: unknown vendor %s' % img in line[0], \
            out
        # the device as it is now (its identity, the image), and its port
        # whatever device it holds (--port)
        run('qvm-block', 'assign', '--ro', 'devq', 'dom0:' + port)
        run('qvm-device', 'block', 'assign', '--required', '--port', '-o',
            'frontend-dev=xvdj', 'devq', 'dom0:' + port)
        out = run('qvm-block', 'list', '-s')
        # both assignments stand for the device, in qubesd's order
        line = [ln for ln in out.splitlines()
                if ln.startswith('dom0:%s ' % port) and img in ln
                and 'Block_Storage' not in ln]
        assert line and '*devq (auto-attach: read-only=yes)' in line[0] and \
            '*devq (required: frontend-dev=xvdj)' in line[0], out
        assert [ln for ln in out.splitlines()
                if ln.startswith('dom0:%s ' % port) and 'any device' in ln
                and ln.endswith('*devq (required: frontend-dev=xvdj)')], out
        info = run('qvm-block', 'info', 'dom0:' + port)
        assert 'device ID: %s' % img in info and 'size: 8388608' in info, info
        rc, o, e = run('qvm-block', 'attach', 'devq', 'dom0:' + port, ok=False)
        assert rc == 1 and 'VM not running, cannot attach device' in e, e
        rc, o, e = run('qvm-block', 'assign', '-o', 'speed=fast', 'devq',
                       'dom0:' + port + ':x', ok=False)
        assert rc == 1 and 'Unsupported option speed' in e, e
        rc, o, e = run('qvm-block', 'attach', 'devq', 'nosuch:' + port,
                       ok=False)
        assert rc == 1 and e == 'qvm-block: error: no such backend vm!\n', e
        rc, o, e = run('qvm-block', 'attach', 'devq', port, ok=False)
        assert rc == 2 and 'foo:bar' in e, e
        rc, o, e = run('qvm-block', 'frob', ok=False)
        assert rc == 2 and 'invalid choice' in e, e
        run('qvm-block', 'unassign', 'devq', 'dom0:' + port)
        assert '*devq (required' in run('qvm-block', 'list', '-s')
        run('qvm-block', 'unassign', 'devq')
        assert 'devq' not in run('qvm-block', 'list', '-s')
        # pci: the host's devices, a (required) assignment making the
        # qube hvm
        pcis = sorted(os.listdir('/sys/bus/pci/devices'))
        out = run('qvm-pci')
        assert len(out.splitlines()) == len(pcis), out
        pport = out.split()[0]
        rc, o, e = run('qvm-pci', 'assign', 'devq', pport, ok=False)
        assert e == 'Error: PCI devices cannot be assigned as not ' \
            'required.\n', e
        run('qvm-pci', 'assign', '--required', 'devq', pport)
        assert '*devq (required)' in run('qvm-pci', 'list', '-s')
        assert run('qvm-prefs', 'devq', 'virt_mode').strip() == 'hvm'
        run('qvm-pci', 'unassign', 'devq', pport)
        run('qvm-remove', '-f', 'devq')
    finally:
        subprocess.run(['losetup', '-d', loop])
        subprocess.run(['rm', '-rf', tmp])


def test_clone_and_remove():
    """qvm-clone copies what the Qubes client's clone_vm copies
    (properties, features, tags, notes, firewall, the volumes' data, the
    device assignments with their mode and options); qvm-remove takes
    the whole folder, firewall.xml and notes included."""
    d = state['d']
    run('qvm-prefs', 'work', 'vcpus', '2')
    run('qvm-features', 'work', 'cloned', 'yes')
    run('qvm-firewall', 'work', 'add', '--before', '0', 'action=drop',
        'dsthost=192.0.2.7', 'proto=tcp', 'dstports=22', 'comment=no ssh')
    fw = d.ok('admin.vm.firewall.Get', 'work')
    assert fw.startswith('action=drop dst4=192.0.2.7/32'), fw
    run('qvm-block', 'assign', '--ro', 'work', 'dom0:nosuch9:some-id')
    run('qvm-device', 'block', 'assign', '--required', '-o',
        'frontend-dev=xvdk', 'work', 'dom0:nosuch8:/srv/data.img')
    assigned = d.ok('admin.vm.device.block.Assigned', 'work')
    # a disposable template's list of its preloaded DispVMs is its own:
    # the copy gets the count, not the list (qubesd would refuse it)
    run('qvm-features', 'fedora', 'qrexec', '1')
    run('qvm-features', 'fedora', 'supported-rpc.qubes.WaitForRunningSystem',
        '1')
    run('qvm-prefs', 'work', 'template_for_dispvms', 'True')
    run('qvm-features', 'work', 'preload-dispvm-max', '1')
    d.ok('admin.vm.Create.DispVM', arg='work', payload='name=wdisp label=red')
    run('qvm-features', 'work', 'preload-dispvm', 'wdisp')
    run('qvm-clone', 'work', 'work-copy')
    assert run('qvm-features', 'work-copy', 'preload-dispvm-max') == '1\n'
    feats = run('qvm-features', 'work-copy')
    assert 'preload-dispvm ' not in feats, feats
    # a DispVM that goes leaves the list (master leaves it empty)
    run('qvm-remove', '-f', 'wdisp')
    assert run('qvm-features', 'work', 'preload-dispvm') == '\n'
    assert d.ok('admin.vm.firewall.Get', 'work-copy') == fw
    assert d.ok('admin.vm.device.block.Assigned', 'work-copy') == \
        assigned.replace("frontend_domain='work'",
                         "frontend_domain='work-copy'")
    assert "_read-only='yes'" in assigned and 'required' in assigned
    run('qvm-block', 'unassign', 'work')
    run('qvm-firewall', 'work', 'del', '--rule-no', '0')
    base = state['base']
    assert sha(os.path.join(base, 'appvms', 'work-copy', 'private.img')) == \
        sha(os.path.join(base, 'appvms', 'work', 'private.img'))
    assert run('qvm-prefs', 'work-copy', 'vcpus') == '2\n'
    assert run('qvm-features', 'work-copy', 'cloned') == 'yes\n'
    assert run('qvm-prefs', 'work-copy', 'template') == 'fedora\n'
    # on XFS the copy is a reflink: the data is shared
    info = d.ok('admin.vm.volume.Info', 'work-copy', 'private')
    assert int(dict(l.split('=', 1) for l in info.splitlines())['shared']) \
        > 0, info
    rc, out, err = run('qvm-remove', 'work-copy', ok=False, stdin=b'n\n')
    assert rc == 1 and 'work-copy' in run('qvm-ls', '--raw-list')
    run('qvm-remove', 'work-copy', stdin=b'y\n')
    assert 'work-copy' not in run('qvm-ls', '--raw-list')
    assert not os.path.exists(os.path.join(base, 'appvms', 'work-copy'))
    rc, out, err = run('qvm-remove', '-f', 'fedora', ok=False)
    assert 'in use' in err, err
    for f in ('preload-dispvm-max', 'preload-dispvm'):
        d.call('admin.vm.feature.Remove', 'work', f)
    run('qvm-prefs', '--default', 'work', 'template_for_dispvms')
    for f in ('qrexec', 'supported-rpc.qubes.WaitForRunningSystem'):
        d.ok('admin.vm.feature.Remove', 'fedora', f)


def test_standalone_from_a_template():
    """qvm-create --standalone -t TPL is the client's clone_vm of the
    template with its private volume left out: the root is the
    template's, the private volume a new, empty one; --ignore-errors and
    -p VOLUME=POOL on qvm-clone."""
    base = state['base']
    tpl_root = os.path.join(base, 'vm-templates', 'fedora', 'root.img')
    tpl_priv = os.path.join(base, 'vm-templates', 'fedora', 'private.img')
    with open(tpl_priv, 'r+b') as f:
        f.write(b'template private data')
    with open(tpl_root, 'r+b') as f:
        f.write(b'template root data')
    err = subprocess.run(
        [os.path.join(TOOLS, 'qvm-create'), '--standalone', '-t', 'fedora',
         '-l', 'red', 'alone'], capture_output=True, text=True,
        env=dict(os.environ, QUBESD_SOCKET=state['d'].sock)).stderr
    assert err == 'alone: Cloning root volume\n', err
    root = os.path.join(base, 'appvms', 'alone', 'root.img')
    priv = os.path.join(base, 'appvms', 'alone', 'private.img')
    assert sha(root, 18) == sha(tpl_root, 18)
    assert not os.path.exists(priv) or \
        open(priv, 'rb').read(21) != b'template private data'
    assert run('qvm-prefs', 'alone', 'klass') == 'StandaloneVM\n'
    # qvm-clone with a pool per volume, and two refusals that leave
    # nothing behind
    run('qvm-clone', '--ignore-errors', '-p', 'private=varlibqubes',
        'alone', 'alone2')
    assert sha(os.path.join(base, 'appvms', 'alone2', 'root.img'), 18) == \
        sha(tpl_root, 18)
    rc, out, err = run('qvm-clone', '-p', 'private=nosuch', 'alone',
                       'alone3', ok=False)
    assert rc == 1 and err == \
        'qvm-clone: error: Unknown storage pool nosuch\n', err
    rc, out, err = run('qvm-clone', '-C', 'TemplateVM', '-P', 'varlibqubes',
                       '-p', 'root=x', 'alone', 'alone3', ok=False)
    assert rc == 2 and 'not allowed with argument -P' in err, err
    assert 'alone3' not in run('qvm-ls', '--raw-list')
    # with qvm-appmenus installed the menus are copied as the client
    # copies them: as root, as the first member of group qubes; with
    # none, the clone fails (and leaves nothing) unless --ignore-errors
    bindir = os.path.join(state['fs'].top, 'bin')
    os.makedirs(bindir, exist_ok=True)
    log = os.path.join(bindir, 'args')
    with open(os.path.join(bindir, 'qvm-appmenus'), 'w') as f:
        f.write('#!/bin/sh\necho "$@" >> %s\n' % log)
    os.chmod(os.path.join(bindir, 'qvm-appmenus'), 0o755)
    env = {'PATH': bindir + ':' + os.environ['PATH']}
    has_user = False
    try:
        import grp
        has_user = bool(grp.getgrnam('qubes').gr_mem)
    except KeyError:
        pass
    if os.getuid() == 0 and not has_user:
        rc, out, err = run('qvm-clone', 'alone', 'alone4', ok=False, env=env)
        assert rc == 1 and err == (
            'app: Failed to clone appmenus: Failed to find local user '
            'account\nqvm-clone: error: Failed to clone appmenus\n'), err
        assert 'alone4' not in run('qvm-ls', '--raw-list')
        r = subprocess.run([os.path.join(TOOLS, 'qvm-clone'),
                            '--ignore-errors', 'alone', 'alone4'],
                           capture_output=True, text=True,
                           env=dict(os.environ, QUBESD_SOCKET=state['d'].sock,
                                    **env))
        assert r.returncode == 0 and r.stderr.startswith(
            'app: Failed to clone appmenus'), r.stderr
    else:
        run('qvm-clone', 'alone', 'alone4', env=env)
        with open(log) as f:
            assert f.read() == '--init --update --source alone alone4\n'
    assert 'alone4' in run('qvm-ls', '--raw-list')
    run('qvm-remove', '-f', 'alone', 'alone2', 'alone4')


def test_template_postprocess():
    """qvm-template-postprocess as a template package runs it: post-install
    makes the TemplateVM, imports root.img (or root.img.tar) with its
    size, applies template.conf, sets installed_by_rpm and removes the
    source folder; a reinstall clears the private volume; pre-remove is
    refused while a qube uses the template, then removes it."""
    import io
    import tarfile
    d = state['d']
    base = state['base']
    src = os.path.join(state['fs'].top, 'tpl-src')
    os.makedirs(src)
    data = os.urandom(1 << 20)
    with open(os.path.join(src, 'root.img'), 'wb') as f:
        f.write(data)
    with open(os.path.join(src, 'template.conf'), 'w') as f:
        f.write('gui=1\nnet.fake-ip=10.9.8.7\nvirt-mode=hvm\n')
    with open(os.path.join(src, 'whitelisted-appmenus.list'), 'w') as f:
        f.write('firefox.desktop\nxterm.desktop\n')
    rc, out, err = run('qvm-template-postprocess', 'post-install', 'deb',
                       src, ok=False)
    assert rc == 2 and err.endswith('error: Do not call this tool '
                                    'directly.\n'), err
    run('qvm-template-postprocess', '--really', '--skip-start',
        'post-install', 'deb', src)
    assert not os.path.exists(src)
    root = os.path.join(base, 'vm-templates', 'deb', 'root.img')
    assert sha(root) == hashlib.sha256(data).hexdigest()
    assert run('qvm-prefs', 'deb', 'klass') == 'TemplateVM\n'
    assert run('qvm-prefs', 'deb', 'label') == 'black\n'
    assert run('qvm-prefs', 'deb', 'installed_by_rpm') == 'True\n'
    assert run('qvm-prefs', 'deb', 'virt_mode') == 'hvm\n'
    assert run('qvm-features', 'deb', 'gui') == '1\n'
    assert run('qvm-features', 'deb', 'net.fake-ip') == '10.9.8.7\n'
    # a reinstall from a tar: the root replaced, the private volume
    # cleared
    priv = os.path.join(base, 'vm-templates', 'deb', 'private.img')
    with open(priv, 'r+b') as f:
        f.write(b'old private data')
    os.makedirs(src)
    data2 = os.urandom(1 << 20)
    with tarfile.open(os.path.join(src, 'root.img.tar'), 'w') as t:
        info = tarfile.TarInfo('root.img')
        info.size = len(data2)
        t.addfile(info, io.BytesIO(data2))
    r = subprocess.run([os.path.join(TOOLS, 'qvm-template-postprocess'),
                        '--really', '--skip-start', '--keep-source',
                        '--no-installed-by-rpm', 'post-install', 'deb', src],
                       capture_output=True, text=True,
                       env=dict(os.environ, QUBESD_SOCKET=d.sock))
    assert r.returncode == 0, r.stderr
    assert 'deb: Clearing private volume' in r.stderr, r.stderr
    assert os.path.exists(os.path.join(src, 'root.img.tar'))
    assert sha(root) == hashlib.sha256(data2).hexdigest()
    with open(priv, 'rb') as f:
        assert f.read(16) != b'old private data'
    assert run('qvm-prefs', 'deb', 'installed_by_rpm') == 'False\n'
    # pre-remove: refused while a qube uses it
    run('qvm-create', '-t', 'deb', '-l', 'red', 'debapp')
    rc, out, err = run('qvm-template-postprocess', '--really', 'pre-remove',
                       'deb', src, ok=False)
    assert rc == 1 and 'ERROR! Qube "debapp" uses this template' in err, err
    run('qvm-remove', '-f', 'debapp')
    run('qvm-template-postprocess', '--really', 'pre-remove', 'deb', src)
    assert 'deb' not in run('qvm-ls', '--raw-list').split()


if __name__ == '__main__':
    sys.exit(run_file(globals(), setup, state))
