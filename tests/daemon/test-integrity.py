#!/usr/bin/python3
"""The system is never lost: changes that would leave qubes.xml invalid
are refused, a qubes.xml holding inconsistencies loads anyway, pools
and volumes cannot be freed under a user, calls from a qube see and
touch only what the reference lets them, and the hostile inputs that
crashed or stalled qubesd do not.

    test-integrity.py PATH/TO/qubesd
"""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qubesd_harness import run_file  # noqa: E402
from qubesd_harness import Daemon, LoopFS, parse, parse_events  # noqa: E402

QUBESD = os.path.abspath(sys.argv[1])

state = {}


def setup():
    fs = LoopFS('xfs')
    state['fs'] = fs
    base = os.path.join(fs.mnt, 'qubes')
    policy = os.path.join(fs.mnt, 'policy.d')
    os.makedirs(policy)
    state['policy'] = policy
    d = Daemon(QUBESD, base, args=['--policy-dir', policy]).start()
    state['d'] = d
    d.ok('admin.vm.Create.TemplateVM', payload='name=tpl label=black')
    return d


def D():
    return state['d']


def expect_exc(r, name, text=None):
    assert r[0] == 'exc', r
    assert r[1] == name, r
    if text is not None:
        assert text in r[2], r


def restart(d, args=None):
    """Stops the daemon (it must exit cleanly) and starts a fresh one on
    the same base folder; returns it."""
    d.stop()
    nd = Daemon(QUBESD, d.base_dir, sockdir=d.sockdir,
                args=args if args is not None else d.args).start()
    state['d'] = nd
    return nd


def answers(d, vms):
    """Every property, feature and tag of @vms and the global properties:
    what a restart must give back unchanged."""
    out = {'global': d.ok('admin.property.GetAll')}
    for vm in vms:
        out[vm] = (d.ok('admin.vm.property.GetAll', vm),
                   d.ok('admin.vm.feature.List', vm),
                   d.ok('admin.vm.tag.List', vm))
    return out


# ---- 1. never lose the system ----

def test_provides_network_while_default_netvm():
    """The issue's report: turning provides_network off on the default
    netvm was accepted, sys-net then was its own netvm, CheckWithNetvm
    overflowed the stack and the saved qubes.xml did not load."""
    d = D()
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=sys-net label=red')
    d.ok('admin.vm.property.Set', 'sys-net', 'provides_network', 'True')
    # the default netvm may not loop: sys-net follows it itself
    expect_exc(d.call('admin.property.Set', arg='default_netvm',
                      payload='sys-net'),
               'QubesPropertyValueError', "Network loop on 'sys-net'")
    d.ok('admin.vm.property.Set', 'sys-net', 'netvm', '')
    d.ok('admin.property.Set', arg='default_netvm', payload='sys-net')
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=work label=red')
    assert d.ok('admin.vm.property.Get', 'work', 'netvm') == \
        'default=True type=vm sys-net'
    expect_exc(d.call('admin.vm.property.Set', 'sys-net', 'provides_network',
                      'False'), 'QubesValueError',
               "The qube is still used by other qubes, change theirs "
               "'netvm' first")
    # nor may sys-net go back to the default netvm (itself)
    expect_exc(d.call('admin.vm.property.Reset', 'sys-net', 'netvm'),
               'QubesValueError', 'Loops in network are unsupported')
    expect_exc(d.call('admin.vm.feature.CheckWithNetvm', 'work', 'nope'),
               'QubesFeatureNotFoundError')
    d.ok('admin.vm.feature.Set', 'sys-net', 'ipv6', '1')
    assert d.ok('admin.vm.feature.CheckWithNetvm', 'work', 'ipv6') == '1'
    before = answers(d, ['dom0', 'tpl', 'sys-net', 'work'])
    d = restart(d)
    assert answers(d, ['dom0', 'tpl', 'sys-net', 'work']) == before
    d.ok('admin.property.Reset', arg='default_netvm')
    d.ok('admin.vm.Remove', 'work')
    d.ok('admin.vm.Remove', 'sys-net')


def test_disposable_template_in_use():
    d = D()
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=dvm label=red')
    expect_exc(d.call('admin.property.Set', arg='default_dispvm',
                      payload='dvm'), 'QubesPropertyValueError',
               'template_for_dispvms')
    expect_exc(d.call('admin.vm.property.Set', 'dvm', 'management_dispvm',
                      'dvm'), 'QubesPropertyValueError',
               'template_for_dispvms')
    d.ok('admin.vm.property.Set', 'dvm', 'template_for_dispvms', 'True')
    d.ok('admin.property.Set', arg='default_dispvm', payload='dvm')
    expect_exc(d.call('admin.vm.property.Set', 'dvm', 'template_for_dispvms',
                      'False'), 'QubesVMInUseError', 'default_dispvm')
    expect_exc(d.call('admin.vm.property.Reset', 'dvm',
                      'template_for_dispvms'),
               'QubesVMInUseError', 'default_dispvm')
    d.ok('admin.property.Reset', arg='default_dispvm')
    d.ok('admin.vm.Create.DispVM', arg='dvm', payload='name=disp label=red')
    expect_exc(d.call('admin.vm.property.Set', 'dvm', 'template_for_dispvms',
                      'False'), 'QubesVMInUseError',
               'Cannot change template_for_dispvms to False while it is the '
               'disposable template of a qube by any of these properties: '
               'default_dispvm, management_dispvm, template')
    d.ok('admin.vm.Remove', 'disp')
    d.ok('admin.vm.property.Set', 'dvm', 'template_for_dispvms', 'False')
    d.ok('admin.vm.Remove', 'dvm')


def write_xml(d, edit):
    """Stops the daemon, lets @edit(root) change qubes.xml, writes it."""
    d.stop()
    path = os.path.join(d.base_dir, 'qubes.xml')
    tree = ET.parse(path)
    edit(tree.getroot())
    tree.write(path)
    return path


def prop(dom, name, value):
    props = dom.find('properties')
    for p in props.findall('property'):
        if p.get('name') == name:
            props.remove(p)
    if value is not None:
        e = ET.SubElement(props, 'property', name=name)
        e.text = value


def domain(root, name):
    for dom in root.iter('domain'):
        for p in dom.iter('property'):
            if p.get('name') == 'name' and p.text == name:
                return dom
    raise KeyError(name)


def test_inconsistent_file_loads():
    """A hand-written (or older) qubes.xml with bad values, a netvm loop
    through the defaults, an unknown class, an unknown pool driver and no
    dom0 still loads: each problem is logged, the rest is served, and
    nothing of the file is lost at the next save."""
    d = D()
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=net label=red')
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=client label=red')
    d.ok('admin.vm.property.Set', 'net', 'provides_network', 'True')
    d.ok('admin.vm.property.Set', 'client', 'netvm', 'net')
    xml_path = os.path.join(d.base_dir, 'qubes.xml')
    with open(xml_path) as f:
        original = f.read()

    def edit(root):
        # net is everyone's netvm, its own included (through the default)
        props = root.find('properties')
        e = ET.SubElement(props, 'property', name='default_netvm')
        e.text = 'net'
        # and tpl's netvm is one that provides no network
        prop(domain(root, 'tpl'), 'netvm', 'client')
        # a bad value, an unknown property
        prop(domain(root, 'client'), 'memory', 'lots')
        prop(domain(root, 'client'), 'no_such_property', '1')
        # default_dispvm pointing to a qube that is no disposable template
        e = ET.SubElement(props, 'property', name='default_dispvm')
        e.text = 'client'
        # a domain of a class we do not know, a pool of a driver we lack
        doms = root.find('domains')
        alien = ET.SubElement(doms, 'domain', {'id': 'domain-77',
                                               'class': 'FutureVM'})
        ap = ET.SubElement(alien, 'properties')
        ET.SubElement(ap, 'property', name='name').text = 'alien'
        ET.SubElement(ap, 'property', name='qid').text = '77'
        pools = root.find('pools')
        ET.SubElement(pools, 'pool', name='zpool', driver='zfs',
                      container='tank/qubes')
        vc = domain(root, 'client').find('volume-config')
        ET.SubElement(vc, 'volume', name='extra', pool='zpool',
                      vid='tank/qubes/client-extra')
        # and no dom0
        for dom in list(doms):
            if dom.get('class') == 'AdminVM':
                doms.remove(dom)
    write_xml(d, edit)
    nd = Daemon(QUBESD, d.base_dir, sockdir=d.sockdir, args=d.args).start()
    state['d'] = d = nd
    log = d.read_log()
    for needle in ("client: property memory: value 'lots' left out, the "
                   "default applies: Failed to parse property value as int",
                   'property no_such_property',
                   "property default_dispvm: value 'client' left out",
                   "has template_for_dispvms set to False",
                   "domain tpl: property netvm: value 'client' left out",
                   'The client qube does not provide network',
                   'domain-77 (class FutureVM) cannot be loaded',
                   'pool zpool cannot be loaded',
                   'no AdminVM (qid 0); adding dom0',
                   'a volume cannot be loaded',
                   'domain net: netvm net: it is the qube itself; '
                   'disconnected'):
        assert needle in log, (needle, log)
    lst = d.ok('admin.vm.List')
    assert lst.startswith('dom0 class=AdminVM state=Running'), lst
    assert 'client class=AppVM' in lst and 'alien' not in lst
    # the loop is broken: no qube reaches itself, nothing hangs
    for vm in ('net', 'client'):
        expect_exc(d.call('admin.vm.feature.CheckWithNetvm', vm, 'x'),
                   'QubesFeatureNotFoundError')
    assert d.ok('admin.vm.property.Get', 'client', 'memory') == \
        'default=True type=int 400'
    assert d.ok('admin.vm.property.Get', 'net', 'netvm') == \
        'default=False type=vm '
    assert d.ok('admin.vm.property.Get', 'client', 'netvm') == \
        'default=False type=vm net'
    # a change saves; what could not load is written back as it was
    d.ok('admin.vm.property.Set', 'client', 'memory', '500')
    with open(xml_path) as f:
        saved = f.read()
    assert 'FutureVM' in saved and 'driver="zfs"' in saved, saved
    assert 'tank/qubes/client-extra' in saved
    # and the saved file loads as cleanly again
    d = restart(d)
    assert d.ok('admin.vm.property.Get', 'client', 'memory') == \
        'default=False type=int 500'
    # back to the original system for the next tests
    d.stop()
    with open(xml_path, 'w') as f:
        f.write(original)
    state['d'] = d = Daemon(QUBESD, d.base_dir, sockdir=d.sockdir,
                            args=d.args).start()
    d.ok('admin.vm.Remove', 'client')
    d.ok('admin.vm.Remove', 'net')


def test_many_attributes_refused_at_once():
    """200,000 attributes on one element made the start take minutes."""
    d = D()
    top = os.path.join(state['fs'].mnt, 'attrs')
    os.makedirs(top)
    attrs = ' '.join('a%d="x"' % i for i in range(200000))
    with open(os.path.join(top, 'qubes.xml'), 'w') as f:
        f.write('<?xml version="1.0"?>\n<qubes><labels/><pools><pool '
                'name="p" driver="file-reflink" dir_path="%s" %s/></pools>'
                '<properties/><domains/></qubes>\n' % (top, attrs))
    t0 = time.monotonic()
    r = subprocess.run([QUBESD, '--base-dir', top, '--socket',
                        os.path.join(top, 's.sock')],
                       capture_output=True, text=True, timeout=60)
    assert time.monotonic() - t0 < 10
    assert r.returncode == 1, r
    assert 'qubes.xml:2: an element with more than 256 attributes' in \
        r.stderr, r.stderr
    subprocess.run(['rm', '-rf', top])


# ---- 2. lifetimes, sources, planted files ----

def test_pool_removed_under_a_clone_token():
    """CloneFrom A, remove A and its pool, CloneTo B: the token's volume
    is gone, and no memory went with it (ASan: qubes_volume_export_open
    on a freed pool)."""
    d = D()
    path = os.path.join(state['fs'].mnt, 'pool-p')
    d.ok('admin.pool.Add', arg='file-reflink',
         payload='name=p\ndir_path=%s\n' % path)
    d.ok('admin.vm.CreateInPool.StandaloneVM', payload='name=a label=red '
         'pool=p')
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=b label=red')
    token = d.ok('admin.vm.volume.CloneFrom', 'a', 'private')
    d.ok('admin.vm.Remove', 'a')
    d.ok('admin.pool.Remove', arg='p')
    expect_exc(d.call('admin.vm.volume.CloneTo', 'b', 'private', token),
               'QubesPoolNotFoundError', 'no longer exists: p')
    d.ok('admin.vm.Remove', 'b')


def test_remove_qube_and_its_pool_at_once():
    """admin.vm.Remove of a qube racing admin.pool.Remove of its pool:
    either order is fine, memory stays sound, and after a restart no qube
    has lost its images nor left images behind."""
    d = D()
    for i in range(12):
        path = os.path.join(state['fs'].mnt, 'race%d' % i)
        d.ok('admin.pool.Add', arg='file-reflink',
             payload='name=race%d\ndir_path=%s\n' % (i, path))
        d.ok('admin.vm.CreateInPool.StandaloneVM',
             payload='name=r%d label=red pool=race%d' % (i, i))
        out = {}

        def remove_vm():
            out['vm'] = d.call('admin.vm.Remove', 'r%d' % i)

        def remove_pool():
            out['pool'] = d.call('admin.pool.Remove', arg='race%d' % i)
        threads = [threading.Thread(target=remove_vm),
                   threading.Thread(target=remove_pool)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert out['vm'] == ('ok', ''), out
        assert out['pool'] in (('ok', ''),) or \
            out['pool'][:2] == ('exc', 'QubesPoolInUseError'), out
        if out['pool'][0] == 'exc':
            d.ok('admin.pool.Remove', arg='race%d' % i)
        assert not os.path.exists(os.path.join(path, 'appvms',
                                               'r%d' % i)), os.listdir(path)
    d = restart(d)
    assert 'race' not in d.ok('admin.pool.List')


def test_default_pool_cannot_go():
    """A pool that is a default, set or computed, stays (the reference's
    getattr(app, 'default_pool' + suffix))."""
    d = D()
    expect_exc(d.call('admin.pool.Remove', arg='varlibqubes'),
               'QubesPoolInUseError', 'Storage pool is in use')
    expect_exc(d.call('admin.pool.Remove', arg='linux-kernel'),
               'QubesPoolInUseError', 'Storage pool is in use')
    path = os.path.join(state['fs'].mnt, 'pool-q')
    d.ok('admin.pool.Add', arg='file-reflink',
         payload='name=q\ndir_path=%s\n' % path)
    d.ok('admin.property.Set', arg='default_pool', payload='q')
    expect_exc(d.call('admin.pool.Remove', arg='q'), 'QubesPoolInUseError',
               'Storage pool is in use: set as default_pool')
    d.ok('admin.property.Reset', arg='default_pool')
    d.ok('admin.property.Set', arg='default_pool_volatile', payload='q')
    expect_exc(d.call('admin.pool.Remove', arg='q'), 'QubesPoolInUseError',
               'Storage pool is in use: set as default_pool_volatile')
    d.ok('admin.property.Reset', arg='default_pool_volatile')
    d.ok('admin.pool.Remove', arg='q')
    assert 'varlibqubes' in d.ok('admin.pool.List')


def test_fifo_planted_as_image():
    """A FIFO in place of private.img made volume.Info block forever in
    open() while holding the volume's lock."""
    d = D()
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=fifo label=red')
    img = os.path.join(d.base_dir, 'appvms', 'fifo', 'private.img')
    os.unlink(img)
    os.mkfifo(img)
    t0 = time.monotonic()
    r = d.call('admin.vm.volume.Info', 'fifo', 'private')
    assert r[0] == 'ok', r
    r = d.call('admin.vm.volume.Clear', 'fifo', 'private')
    assert r[0] == 'exc', r
    r = d.call('admin.vm.volume.ListSnapshots', 'fifo', 'private')
    assert r[0] == 'ok', r
    assert time.monotonic() - t0 < 20
    os.unlink(img)
    d.ok('admin.vm.Remove', 'fifo')


def test_calls_from_a_qube():
    """With a qube as source, the reference's ext/admin.py: lists and
    events as the qrexec policy allows, created-by tags and the system's
    features untouchable."""
    d = D()
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=mgmt label=red')
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=mine label=red')
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=other label=red')
    d.ok('admin.vm.tag.Set', 'mine', 'created-by-mgmt')
    with open(os.path.join(state['policy'], '50-test.policy'), 'w') as f:
        f.write('# the management qube sees what it made\n'
                'admin.vm.List * mgmt @adminvm allow\n'
                'admin.vm.List * mgmt @tag:created-by-mgmt allow\n'
                'admin.vm.List * mgmt other ask\n'
                'admin.Events * mgmt @tag:created-by-mgmt allow\n'
                '!include-service admin.vm.List * include/extra\n')
    os.makedirs(os.path.join(state['policy'], 'include'))
    with open(os.path.join(state['policy'], 'include', 'extra'), 'w') as f:
        f.write('mgmt mgmt allow\n')
    lst = d.call('admin.vm.List', src='mgmt')
    assert lst[0] == 'ok', lst
    names = [line.split()[0] for line in lst[1].splitlines()]
    assert names == ['dom0', 'mgmt', 'mine'], names
    # dom0 sees everything
    assert 'other class=AppVM' in d.ok('admin.vm.List')
    # events: only those of the qubes it may watch
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(d.sock)
    s.sendall(b'admin.Events+ mgmt name dom0\0')
    s.shutdown(socket.SHUT_WR)
    buf = b''
    while b'connection-established' not in buf:
        buf += s.recv(65536)
    d.ok('admin.vm.feature.Set', 'other', 'secret', 'x')
    d.ok('admin.vm.feature.Set', 'mine', 'visible', 'y')
    deadline = time.monotonic() + 10
    while b'visible' not in buf and time.monotonic() < deadline:
        buf += s.recv(65536)
    s.close()
    events, _ = parse_events(buf)
    subjects = {e[0] for e in events if e[1] != 'connection-established'}
    assert subjects == {'mine'}, events
    # tags recording who made a qube, and the system's features
    expect_exc(d.call('admin.vm.tag.Set', 'mine', 'created-by-other',
                      src='mgmt'), 'PermissionDenied',
               'changing this tag is prohibited by '
               'qubes.ext.admin.AdminExtension')
    expect_exc(d.call('admin.vm.tag.Remove', 'mine', 'created-by-mgmt',
                      src='mgmt'), 'PermissionDenied')
    expect_exc(d.call('admin.vm.feature.Set', 'mine', 'preload-dispvm',
                      'x', src='mgmt'), 'PermissionDenied')
    d.ok('admin.vm.tag.Set', 'mine', 'created-by-other')
    d.ok('admin.vm.feature.Set', 'mine', 'preload-dispvm', '')
    for vm in ('mgmt', 'mine', 'other'):
        d.ok('admin.vm.Remove', vm)


def test_tag_created_vm_with():
    d = D()
    d.ok('admin.vm.feature.Set', 'dom0', 'tag-created-vm-with', 'blue green')
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=tagged label=red')
    assert d.ok('admin.vm.tag.List', 'tagged') == \
        'audiovm-dom0\nblue\ncreated-by-dom0\ngreen\nguivm-dom0\n'
    d.ok('admin.vm.feature.Remove', 'dom0', 'tag-created-vm-with')
    d.ok('admin.vm.Remove', 'tagged')


def test_set_created_guivm():
    # master's gui extension: the creator's set-created-guivm names the
    # new qube's guivm (and its guivm- tag follows)
    d = D()
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=gui label=red')
    d.ok('admin.vm.feature.Set', 'dom0', 'set-created-guivm', 'gui')
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=shown label=red')
    assert d.ok('admin.vm.property.Get', 'shown', 'guivm') == \
        'default=False type=vm gui'
    tags = d.ok('admin.vm.tag.List', 'shown').split()
    assert 'guivm-gui' in tags and 'guivm-dom0' not in tags, tags
    # naming no qube: created anyway, with the default guivm (master fails
    # the call after adding the qube)
    d.ok('admin.vm.feature.Set', 'dom0', 'set-created-guivm', 'nosuch')
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=plain label=red')
    assert d.ok('admin.vm.property.Get', 'plain', 'guivm') == \
        'default=True type=vm dom0'
    d.ok('admin.vm.feature.Remove', 'dom0', 'set-created-guivm')
    for vm in ('shown', 'plain', 'gui'):
        d.ok('admin.vm.Remove', vm)


def test_notes():
    d = D()
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=noted label=red')
    assert d.ok('admin.vm.notes.Get', 'noted') == ''
    d.ok('admin.vm.notes.Set', 'noted', payload='Keep offline.\n\tReally.')
    assert d.ok('admin.vm.notes.Get', 'noted') == 'Keep offline.\n\tReally.'
    path = os.path.join(d.base_dir, 'appvms', 'noted', 'notes.txt')
    with open(path) as f:
        assert f.read() == 'Keep offline.\n\tReally.'
    expect_exc(d.call('admin.vm.notes.Get', 'dom0'), 'ProtocolError',
               'expected destination to not be AdminVM')
    expect_exc(d.call('admin.vm.notes.Set', 'noted', payload=b'\xff'),
               'ProtocolError')
    # a link planted as notes.txt is not followed
    os.unlink(path)
    os.symlink('/etc/hostname', path)
    expect_exc(d.call('admin.vm.notes.Get', 'noted'), 'QubesException')
    d.ok('admin.vm.notes.Set', 'noted', payload='again')
    assert not os.path.islink(path)
    d = restart(d)
    assert d.ok('admin.vm.notes.Get', 'noted') == 'again'
    d.ok('admin.vm.Remove', 'noted')
    assert not os.path.exists(os.path.dirname(path))


def test_sigstop_longer_than_the_deadline():
    """Clients that sent their request before qubesd was stopped for
    longer than --request-timeout are answered, not reset."""
    d = restart(D(), args=['--policy-dir', state['policy'],
                           '--request-timeout', '2'])
    socks = []
    for _ in range(8):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(30)
        s.connect(d.sock)
        socks.append(s)
    d.proc.send_signal(signal.SIGSTOP)
    try:
        for s in socks:
            s.sendall(b'admin.vm.List+ dom0 name dom0\0')
            s.shutdown(socket.SHUT_WR)
        time.sleep(4)
    finally:
        d.proc.send_signal(signal.SIGCONT)
    for s in socks:
        out = b''
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        s.close()
        assert parse(out)[0] == 'ok', out
    restart(d, args=['--policy-dir', state['policy']])


def test_mac_default():
    d = D()
    assert d.ok('admin.vm.property.Get', 'tpl', 'mac') == \
        'default=True type=str 00:16:3e:5e:6c:00'


sys.exit(run_file(globals(), setup, state))
