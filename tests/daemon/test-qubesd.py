#!/usr/bin/python3
"""qubesd through its socket: framing, every method's answers and errors,
events, persistence, parallel clients and a reference pool tree.

    test-qubesd.py PATH/TO/qubesd
"""
import grp
import os
import socket
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qubesd_harness import run_file  # noqa: E402
from qubesd_harness import Daemon, LoopFS, in_parallel  # noqa: E402
from qubesd_harness import make_kernel, parse_events  # noqa: E402

QUBESD = os.path.abspath(sys.argv[1])

state = {}


def setup():
    try:
        grp.getgrnam('qubes')
    except KeyError:
        subprocess.run(['groupadd', '--system', 'qubes'], check=True)
        state['made_group'] = True
    fs = LoopFS('xfs')
    state['fs'] = fs
    base = os.path.join(fs.mnt, 'qubes')
    make_kernel(base, '6.1.0')
    d = Daemon(QUBESD, base).start()
    state['d'] = d
    d.ok('admin.vm.Create.TemplateVM', payload='name=fedora label=black')
    d.ok('admin.vm.Create.AppVM', arg='fedora', payload='name=work label=blue')
    return d


def D():
    return state['d']


def expect_exc(r, name, text=None):
    assert r[0] == 'exc', r
    assert r[1] == name, r
    if text:
        assert text in r[2], r


# ---- framing ----

def test_framing():
    d = D()
    hdr = b'admin.vm.List dom0 name dom0'
    assert d.raw(hdr + b'\0').startswith(b'0\0dom0 class=AdminVM')
    # the qubesadmin client always writes '+', with an empty argument too
    assert d.raw(b'admin.vm.List+ dom0 name dom0\0').startswith(
        b'0\0dom0 class=AdminVM')
    assert d.raw(hdr) == b''  # no NUL
    assert d.raw(b'admin.vm.List dom0 name') == b''  # three fields
    big = hdr + b'\0' + b'x' * 65536
    assert d.raw(big) == b''  # over 64 KiB
    exact = b'admin.vm.feature.Set+big dom0 name work\0'
    exact += b'y' * (65536 - len(exact))
    assert d.raw(exact) == b'0\0'  # exactly 64 KiB is fine
    assert d.call('admin.vm.feature.Get', 'work', 'big')[1] == 'y' * (
        65536 - 40)
    d.ok('admin.vm.feature.Remove', 'work', 'big')
    # destination types: only "name", and the keyword adminvm
    assert d.raw(b'admin.vm.List dom0 uuid dom0\0') == b''
    assert d.raw(b'admin.vm.List dom0 keyword adminvm\0').startswith(b'0\0')
    assert d.raw(b'admin.vm.List dom0 keyword other\0') == b''
    # refusals are answered as the reference answers them
    expect_exc(d.call('admin.no.Such'), 'ProtocolError',
               "no such method: 'admin.no.Such'")
    expect_exc(d.call('admin.vm.List', payload='x'), 'ProtocolError',
               'unexpected payload')
    expect_exc(d.call('admin.vm.List', arg='x'), 'ProtocolError',
               'unexpected argument')
    expect_exc(d.call('admin.vmclass.List', dest='work'), 'ProtocolError',
               'expected destination to be AdminVM')
    expect_exc(d.call('admin.vm.property.Get', 'work'), 'ProtocolError',
               'expected an argument')
    expect_exc(d.call('admin.vm.volume.Resize', 'work', 'private'),
               'ProtocolError', 'expected payload')
    # bad numbers (validate_number)
    for bad, why in (('01', 'Volume size contains spurious leading zeros'),
                     ('-1', 'Volume size contains non ASCII digits'),
                     ('1x', 'Volume size contains non ASCII digits'),
                     ('1' * 20, 'Volume size is bigger than 19 decimal digits'),
                     (' 1 2', 'Volume size contains non ASCII digits')):
        expect_exc(d.call('admin.vm.volume.Resize', 'work', 'private', bad),
                   'ProtocolError', why)
    # non-ASCII and control bytes in the header
    assert d.raw('admin.vm.List dom0 name dóm0\0'.encode()) == b''
    assert d.raw(b'admin.vm.List\x01 dom0 name dom0\0') == b''
    # names: invalid, unknown
    expect_exc(d.call('admin.vm.List', dest='no-such'), 'QubesVMNotFoundError',
               "No such domain: 'no-such'")
    expect_exc(d.call('admin.vm.List', dest='a' * 40), 'QubesValueError')
    expect_exc(d.call('admin.vm.List', src='0bad'), 'QubesValueError')
    # uuid: destinations
    uuid = d.ok('admin.vm.property.Get', 'work', 'uuid').split(' ', 2)[2]
    assert d.ok('admin.vm.List', 'uuid:' + uuid).startswith('work class=AppVM')
    expect_exc(d.call('admin.vm.List', 'uuid:1234'), 'QubesVMInvalidUUIDError',
               "VM UUID is not valid: '1234'")


# ---- domains and classes ----

def test_init_makes_a_new_system_only():
    """qubesd --init (the package's first install): a new system's folder
    and qubes.xml where there is none; an existing qubes.xml is not
    touched, not even read."""
    base = os.path.join(state['fs'].mnt, 'init', 'qubes')
    r = subprocess.run([QUBESD, '--init', '--base-dir', base],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    xml = os.path.join(base, 'qubes.xml')
    with open(xml) as f:
        text = f.read()
    assert '<domain id="domain-0" class="AdminVM">' in text or \
        'AdminVM' in text, text
    with open(xml, 'w') as f:
        f.write('not even XML: kept as it is\n')
    r = subprocess.run([QUBESD, '--init', '--base-dir', base],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with open(xml) as f:
        assert f.read() == 'not even XML: kept as it is\n'
    subprocess.run(['rm', '-rf', os.path.dirname(base)], check=True)


def test_vm_list_and_classes():
    d = D()
    assert d.ok('admin.vmclass.List') == \
        'AppVM\nTemplateVM\nStandaloneVM\nAdminVM\nDispVM\nRemoteVM\n'
    lines = d.ok('admin.vm.List').splitlines()
    assert lines[0].startswith('dom0 class=AdminVM state=Running uuid=')
    names = [l.split()[0] for l in lines]
    assert names[0] == 'dom0' and names[1:] == sorted(names[1:])
    assert 'work class=AppVM state=Halted' in d.ok('admin.vm.List')
    assert d.ok('admin.vm.List', 'work').count('\n') == 1
    assert d.ok('admin.vm.CurrentState', 'work') == \
        'mem=0 mem_static_max=%d cputime=0 power_state=Halted' % (
            int(d.ok('admin.vm.property.Get', 'work', 'maxmem').split()[-1])
            * 1024)


def test_create_and_remove():
    d = D()
    d.ok('admin.vm.Create.StandaloneVM', payload='name=sa label=red')
    vols = d.ok('admin.vm.volume.List', 'sa')
    assert vols == 'root\nprivate\nvolatile\nkernel\n', vols
    info = dict(l.split('=', 1) for l in
                d.ok('admin.vm.volume.Info', 'sa', 'root').splitlines())
    assert info['save_on_stop'] == 'True' and info['vid'] == 'appvms/sa/root'
    # errors: duplicate, bad name, bad label, missing parts, bad class
    expect_exc(d.call('admin.vm.Create.AppVM', payload='name=sa label=red'),
               'QubesVMAlreadyExistsError', 'Qube already exists: sa')
    expect_exc(d.call('admin.vm.Create.AppVM', payload='name=0x label=red'),
               'QubesValueError', 'VM name cannot start with hyphen, '
               'underscore, dot or numbers')
    expect_exc(d.call('admin.vm.Create.AppVM', payload='name=x label=pink'),
               'ProtocolError', 'Creation requested without key: label')
    expect_exc(d.call('admin.vm.Create.AppVM', payload='name=x'),
               'ProtocolError', 'Creation requested without key: label')
    expect_exc(d.call('admin.vm.Create.AppVM', payload='name=x label=red x'),
               'ProtocolError')
    expect_exc(d.call('admin.vm.Create.AppVM',
                      payload='name=x label=red pool=varlibqubes'),
               'ProtocolError',
               "Pool option specified but 'allow_pool' is False")
    expect_exc(d.call('admin.vm.Create.AppVM',
                      payload='name=x label=red label=red'),
               'ProtocolError', 'Options must be unique')
    expect_exc(d.call('admin.vm.Create.NoClass', payload='name=x label=red'),
               'ProtocolError', "no such method: 'admin.vm.Create.NoClass'")
    expect_exc(d.call('admin.vm.Create.AdminVM', payload='name=x label=red'),
               'QubesPropertyValueError')
    expect_exc(d.call('admin.vm.Create.StandaloneVM', arg='fedora',
                      payload='name=x label=red'), 'ProtocolError',
               'StandaloneVM cannot be based on template')
    expect_exc(d.call('admin.vm.Create.AppVM', arg='nope',
                      payload='name=x label=red'), 'QubesVMNotFoundError')
    expect_exc(d.call('admin.vm.Create.AppVM', arg='work',
                      payload='name=x label=red'), 'QubesPropertyValueError')
    assert 'x class' not in d.ok('admin.vm.List')
    # the tag of the creator
    assert d.ok('admin.vm.tag.List', 'sa') == \
        'audiovm-dom0\ncreated-by-dom0\nguivm-dom0\n'
    # create over an existing folder (SPEC 3)
    folder = os.path.join(d.base_dir, 'appvms', 'again')
    os.makedirs(folder)
    d.ok('admin.vm.Create.AppVM', 'dom0', 'fedora', 'name=again label=red')
    # in a pool, per volume
    d.ok('admin.vm.CreateInPool.AppVM', 'dom0', 'fedora',
         'name=pooled label=red pool:private=varlibqubes')
    assert 'pool=varlibqubes' in d.ok('admin.vm.volume.Info', 'pooled',
                                      'private')
    # remove: in use, dom0, then fine
    expect_exc(d.call('admin.vm.Remove', 'fedora'), 'QubesVMInUseError')
    expect_exc(d.call('admin.vm.Remove', 'dom0'), 'QubesVMInUseError')
    for name in ('sa', 'again', 'pooled'):
        d.ok('admin.vm.Remove', name)
    assert not os.path.exists(folder)
    assert not os.path.exists(os.path.join(d.base_dir, 'appvms', 'sa'))
    expect_exc(d.call('admin.vm.List', 'sa'), 'QubesVMNotFoundError')


def test_dispvm_default_template():
    d = D()
    d.ok('admin.vm.Create.AppVM', 'dom0', 'fedora', 'name=dvm label=red')
    # no default_dispvm yet: a clear error
    expect_exc(d.call('admin.vm.Create.DispVM', payload='name=disp1 '
                      'label=red'), 'QubesValueError', 'template')
    expect_exc(d.call('admin.property.Set', arg='default_dispvm',
                      payload='nope'), 'QubesPropertyValueError',
               "Can't set default_dispvm to non-existing qube nope")
    # the AppVM is not yet a template for DispVMs: default_dispvm refuses
    # it (the reference's setter_disposable_template), and so does a DispVM
    # (dispvm.py __init__, before any property is set)
    expect_exc(d.call('admin.property.Set', arg='default_dispvm',
                      payload='dvm'), 'QubesPropertyValueError',
               'template_for_dispvms')
    expect_exc(d.call('admin.vm.Create.DispVM', 'dom0', 'dvm',
                      payload='name=disp1 label=red'),
               'QubesValueError', 'template for disposable (dvm) needs to '
               'be an AppVM with template_for_dispvms=True')
    d.ok('admin.vm.property.Set', 'dvm', 'template_for_dispvms', 'True')
    d.ok('admin.property.Set', arg='default_dispvm', payload='dvm')
    d.ok('admin.vm.Create.DispVM', payload='name=disp1 label=red')
    assert d.ok('admin.vm.property.Get', 'disp1', 'template') == \
        'default=False type=vm dvm'
    info = d.ok('admin.vm.volume.Info', 'disp1', 'private')
    assert 'snap_on_start=True' in info and 'source=appvms/dvm/private' in info
    assert 'source=vm-templates/fedora/root' in d.ok(
        'admin.vm.volume.Info', 'disp1', 'root')
    d.ok('admin.vm.Remove', 'disp1')
    d.ok('admin.property.Reset', arg='default_dispvm')
    d.ok('admin.vm.Remove', 'dvm')


# ---- properties ----

def test_vm_properties():
    d = D()
    names = d.ok('admin.vm.property.List', 'work').splitlines()
    for p in ('name', 'qid', 'uuid', 'label', 'template', 'netvm', 'memory',
              'maxmem', 'vcpus', 'kernel', 'kernelopts', 'virt_mode',
              'start_time', 'backup_timestamp', 'default_dispvm',
              'template_for_dispvms', 'include_in_backups', 'autostart'):
        assert p in names, p
    assert d.ok('admin.vm.property.Get', 'work', 'label') == \
        'default=False type=label blue'
    assert d.ok('admin.vm.property.Get', 'work', 'virt_mode') == \
        'default=True type=str pvh'
    assert d.ok('admin.vm.property.Get', 'work', 'start_time') == \
        'default=True type=str '
    assert d.ok('admin.vm.property.Get', 'work', 'kernel') == \
        'default=True type=str 6.1.0'
    assert d.ok('admin.vm.property.Get', 'work', 'backup_timestamp') == \
        'default=True type=int '
    d.ok('admin.vm.property.Set', 'work', 'backup_timestamp', '1700000000')
    assert d.ok('admin.vm.property.Get', 'work', 'backup_timestamp') == \
        'default=False type=int 1700000000'
    # template values flow to AppVMs by default
    d.ok('admin.vm.property.Set', 'fedora', 'memory', '600')
    assert d.ok('admin.vm.property.Get', 'work', 'memory') == \
        'default=True type=int 600'
    d.ok('admin.vm.property.Set', 'work', 'memory', '800')
    assert d.ok('admin.vm.property.Get', 'work', 'memory') == \
        'default=False type=int 800'
    assert d.ok('admin.vm.property.GetDefault', 'work', 'memory') == \
        'type=int 600'
    d.ok('admin.vm.property.Reset', 'work', 'memory')
    assert d.ok('admin.vm.property.Get', 'work', 'memory') == \
        'default=True type=int 600'
    # master: a default of None is "type=T ", no default at all nothing
    assert d.ok('admin.vm.property.GetDefault', 'work', 'stubdom_mem') == \
        'type=int '
    assert d.ok('admin.vm.property.GetDefault', 'work', 'name') == ''
    assert 'Memory' in d.ok('admin.vm.property.Help', 'work', 'memory')
    d.ok('admin.vm.property.Set', 'work', 'debug', 'yes')
    assert d.ok('admin.vm.property.Get', 'work', 'debug') == \
        'default=False type=bool True'
    allp = d.ok('admin.vm.property.GetAll', 'work').splitlines()
    # GetAll lists what List lists, in its order (load stage, then name)
    assert [l.split()[0] for l in allp] == names
    assert 'debug default=False type=bool True' in allp
    # errors
    expect_exc(d.call('admin.vm.property.Get', 'work', 'nope'),
               'QubesNoSuchPropertyError')
    expect_exc(d.call('admin.vm.property.Set', 'work', 'nope', '1'),
               'QubesNoSuchPropertyError')
    expect_exc(d.call('admin.vm.property.Set', 'work', 'memory', '0'),
               'QubesPropertyValueError', 'positive')
    # the reference's sanitize: int() fails, an unknown boolean word
    expect_exc(d.call('admin.vm.property.Set', 'work', 'memory', 'x'),
               'QubesValueError', '')
    expect_exc(d.call('admin.vm.property.Set', 'work', 'debug', 'maybe'),
               'QubesValueError', "Invalid literal for boolean property: "
               "'maybe'")
    expect_exc(d.call('admin.vm.property.Set', 'work', 'virt_mode', 'xen'),
               'QubesPropertyValueError', 'virtualization mode')
    expect_exc(d.call('admin.vm.property.Set', 'work', 'label', 'pink'),
               'QubesLabelNotFoundError')
    expect_exc(d.call('admin.vm.property.Set', 'work', 'template', 'work'),
               'QubesPropertyValueError', 'TemplateVM')
    expect_exc(d.call('admin.vm.property.Set', 'work', 'template', 'nope'),
               'QubesPropertyValueError',
               "Can't set template to non-existing qube nope")
    expect_exc(d.call('admin.vm.property.Set', 'work', 'kernel', '../x'),
               'QubesPropertyValueError')
    expect_exc(d.call('admin.vm.property.Set', 'work', 'kernel', '9.9'),
               'QubesPropertyValueError', 'not installed')
    expect_exc(d.call('admin.vm.property.Set', 'work', 'name', 'other'),
               'QubesPropertyValueError')
    expect_exc(d.call('admin.vm.property.Set', 'work', 'qid', '7'),
               'QubesPropertyValueError')
    expect_exc(d.call('admin.vm.property.Set', 'work', 'kernelopts', 'x' * 513),
               'QubesPropertyValueError', '512')
    expect_exc(d.call('admin.vm.property.Set', 'work', 'memory', b'\xff'),
               'QubesValueError', '')
    # found by test-model: an empty layout crashed qubesd
    expect_exc(d.call('admin.vm.property.Set', 'work', 'keyboard_layout', ''),
               'QubesPropertyValueError',
               'invalid number of keyboard layout parameters')
    expect_exc(d.call('admin.vm.property.Set', 'work', 'keyboard_layout',
                      'de+neo!+'), 'QubesPropertyValueError',
               'Invalid layout variant provided')
    # device_protocol.py from_str_bulk: the length first, then the pattern
    expect_exc(d.call('admin.vm.property.Set', 'work', 'devices_denied',
                      'b12345'), 'QubesValueError',
               "Invalid length of interfaces='b12345' (is 6, expected "
               "multiple of 7)")
    expect_exc(d.call('admin.vm.property.Set', 'work', 'devices_denied',
                      'x123456'), 'QubesPropertyValueError',
               'Interface code list should be in the form')
    assert d.ok('admin.vm.property.Get', 'work', 'name') == \
        'default=False type=str work'


def test_kernel_volume_follows_kernel():
    """The kernel volume is the folder the `kernel` property names, set on
    the qube, on its template, or through default_kernel, or none."""
    d = D()
    make_kernel(d.base_dir, '6.2.0')
    kdir = os.path.join(d.base_dir, 'vm-kernels', '6.2.0')

    def vid():
        info = dict(line.split('=', 1) for line in
                    d.ok('admin.vm.volume.Info', 'work',
                         'kernel').splitlines())
        return info['vid']

    # default_kernel defaults to the newest installed kernel
    assert vid() == '6.2.0'
    try:
        d.ok('admin.property.Set', arg='default_kernel', payload='6.1.0')
        assert vid() == '6.1.0'
        d.ok('admin.vm.property.Set', 'work', 'kernel', '6.2.0')
        assert vid() == '6.2.0'
        d.ok('admin.vm.property.Reset', 'work', 'kernel')
        assert vid() == '6.1.0'
        d.ok('admin.vm.property.Set', 'fedora', 'kernel', '6.2.0')
        assert vid() == '6.2.0'
        d.ok('admin.vm.property.Reset', 'fedora', 'kernel')
        assert vid() == '6.1.0'
        d.ok('admin.vm.property.Set', 'work', 'kernel', '')
        assert vid() == ''
        d.ok('admin.vm.property.Reset', 'work', 'kernel')
    finally:
        d.ok('admin.property.Reset', arg='default_kernel')
        subprocess.run(['rm', '-rf', kdir], check=True)
    assert vid() == '6.1.0'


def test_netvm_loops():
    d = D()
    d.ok('admin.vm.Create.AppVM', 'dom0', 'fedora', 'name=net1 label=red')
    d.ok('admin.vm.Create.AppVM', 'dom0', 'fedora', 'name=net2 label=red')
    expect_exc(d.call('admin.vm.property.Set', 'net2', 'netvm', 'net1'),
               'QubesValueError', 'The net1 qube does not provide network')
    for n in ('net1', 'net2'):
        d.ok('admin.vm.property.Set', n, 'provides_network', 'True')
    d.ok('admin.vm.property.Set', 'net2', 'netvm', 'net1')
    expect_exc(d.call('admin.vm.property.Set', 'net1', 'netvm', 'net2'),
               'QubesValueError', 'Loops in network are unsupported')
    expect_exc(d.call('admin.vm.property.Set', 'net1', 'netvm', 'net1'),
               'QubesValueError', 'Loops in network are unsupported')
    d.ok('admin.vm.property.Set', 'work', 'netvm', 'net2')
    assert d.ok('admin.vm.property.Get', 'work', 'ip').endswith('10.137.0.%s' %
        d.ok('admin.vm.property.Get', 'work', 'qid').split()[2])
    d.ok('admin.vm.property.Set', 'work', 'netvm', '')
    assert d.ok('admin.vm.property.Get', 'work', 'netvm') == \
        'default=False type=vm '
    expect_exc(d.call('admin.vm.Remove', 'net1'), 'QubesVMInUseError')
    d.ok('admin.vm.property.Reset', 'net2', 'netvm')
    d.ok('admin.vm.property.Reset', 'work', 'netvm')
    d.ok('admin.vm.Remove', 'net1')
    d.ok('admin.vm.Remove', 'net2')


def test_global_properties():
    d = D()
    names = d.ok('admin.property.List').splitlines()
    for p in ('default_template', 'default_netvm', 'default_dispvm',
              'default_pool', 'default_kernel', 'clockvm', 'updatevm'):
        assert p in names, p
    assert d.ok('admin.property.Get', arg='default_kernel') == \
        'default=True type=str 6.1.0'
    assert d.ok('admin.property.Get', arg='default_pool') == \
        'default=True type=str varlibqubes'
    d.ok('admin.property.Set', arg='default_template', payload='fedora')
    assert d.ok('admin.property.Get', arg='default_template') == \
        'default=False type=vm fedora'
    # a new AppVM without a template gets the default one
    d.ok('admin.vm.Create.AppVM', payload='name=deftpl label=red')
    assert d.ok('admin.vm.property.Get', 'deftpl', 'template') == \
        'default=False type=vm fedora'
    d.ok('admin.vm.Remove', 'deftpl')
    expect_exc(d.call('admin.property.Set', arg='default_template',
                      payload='work'), 'QubesPropertyValueError')
    expect_exc(d.call('admin.vm.Remove', 'fedora'), 'QubesVMInUseError')
    expect_exc(d.call('admin.property.Set', arg='default_pool',
                      payload='nope'), 'QubesPropertyValueError')
    expect_exc(d.call('admin.property.Get', arg='nope'),
               'QubesNoSuchPropertyError')
    expect_exc(d.call('admin.property.Get', dest='work', arg='default_pool'),
               'ProtocolError', 'expected destination to be AdminVM')
    allp = d.ok('admin.property.GetAll').splitlines()
    assert 'default_template default=False type=vm fedora' in allp
    d.ok('admin.property.Reset', arg='default_template')
    assert d.ok('admin.property.Help', arg='default_pool') == \
        'Default storage pool'


# ---- features and tags ----

def test_features():
    d = D()
    d.ok('admin.vm.feature.Set', 'work', 'gui', '1')
    d.ok('admin.vm.feature.Set', 'work', 'empty', '')
    assert d.ok('admin.vm.feature.Get', 'work', 'gui') == '1'
    assert d.ok('admin.vm.feature.Get', 'work', 'empty') == ''
    assert d.ok('admin.vm.feature.List', 'work') == 'gui\nempty\n'
    expect_exc(d.call('admin.vm.feature.Get', 'work', 'nope'),
               'QubesFeatureNotFoundError', 'Feature not set for domain work')
    d.ok('admin.vm.feature.Set', 'fedora', 'tplonly', 'yes')
    d.ok('admin.vm.feature.Set', 'dom0', 'adminonly', 'a')
    assert d.ok('admin.vm.feature.CheckWithTemplate', 'work', 'tplonly') == \
        'yes'
    expect_exc(d.call('admin.vm.feature.CheckWithTemplate', 'work',
                      'adminonly'), 'QubesFeatureNotFoundError')
    assert d.ok('admin.vm.feature.CheckWithAdminVM', 'work', 'adminonly') == \
        'a'
    assert d.ok('admin.vm.feature.CheckWithTemplateAndAdminVM', 'work',
                'tplonly') == 'yes'
    expect_exc(d.call('admin.vm.feature.CheckWithNetvm', 'work', 'tplonly'),
               'QubesFeatureNotFoundError')
    d.ok('admin.vm.feature.Remove', 'work', 'gui')
    d.ok('admin.vm.feature.Remove', 'work', 'empty')
    expect_exc(d.call('admin.vm.feature.Remove', 'work', 'gui'),
               'QubesFeatureNotFoundError')
    expect_exc(d.call('admin.vm.feature.Set', 'work', 'x', b'\x00\x01'),
               'ProtocolError')
    expect_exc(d.call('admin.vm.feature.Set', 'work', 'a/b', 'x'),
               'ProtocolError', 'feature name contains illegal characters')
    expect_exc(d.call('admin.vm.feature.Set', 'work', 'x', 'a\nb'),
               'ProtocolError', 'x value contains illegal characters')
    expect_exc(d.call('admin.vm.feature.Set', 'work', 'x', 'a\tb'),
               'ProtocolError', 'x value contains illegal characters')
    assert d.ok('admin.vm.feature.List', 'work') == ''


def test_tags():
    d = D()
    d.ok('admin.vm.tag.Set', 'work', 'zeta')
    d.ok('admin.vm.tag.Set', 'work', 'alpha')
    d.ok('admin.vm.tag.Set', 'work', 'alpha')
    assert d.ok('admin.vm.tag.List', 'work') == \
        'alpha\naudiovm-dom0\ncreated-by-dom0\nguivm-dom0\nzeta\n'
    assert d.ok('admin.vm.tag.Get', 'work', 'alpha') == '1'
    assert d.ok('admin.vm.tag.Get', 'work', 'beta') == '0'
    d.ok('admin.vm.tag.Remove', 'work', 'alpha')
    d.ok('admin.vm.tag.Remove', 'work', 'zeta')
    expect_exc(d.call('admin.vm.tag.Remove', 'work', 'alpha'),
               'QubesTagNotFoundError')
    expect_exc(d.call('admin.vm.tag.Set', 'work', 'a.b'),
               'QubesInvalidTagError')
    expect_exc(d.call('admin.vm.tag.Get', 'work', 'a/b'),
               'QubesInvalidTagError')


# ---- labels ----

def test_labels():
    d = D()
    assert d.ok('admin.label.List') == \
        'red\norange\nyellow\ngreen\ngray\nblue\npurple\nblack\n'
    assert d.ok('admin.label.Get', arg='red') == '0xcc0000'
    assert d.ok('admin.label.Index', arg='black') == '8'
    d.ok('admin.label.Create', arg='pink', payload='0xffc0cb')
    assert d.ok('admin.label.Index', arg='pink') == '9'
    assert d.ok('admin.label.Get', arg='pink') == '0xffc0cb'
    expect_exc(d.call('admin.label.Create', arg='pink', payload='0x000000'),
               'QubesLabelInUseError', "Label is still in use: 'pink'")
    expect_exc(d.call('admin.label.Create', arg='12', payload='0x000000'),
               'QubesInvalidLabelError', 'Label must not be a digit')
    expect_exc(d.call('admin.label.Create', arg='new', payload='000000'),
               'QubesInvalidLabelValueError')
    expect_exc(d.call('admin.label.Create', arg='new', payload='0x00000g'),
               'QubesInvalidLabelValueError')
    expect_exc(d.call('admin.label.Get', arg='nope'),
               'QubesLabelNotFoundError', 'Label does not exist: nope')
    d.ok('admin.vm.property.Set', 'work', 'label', 'pink')
    expect_exc(d.call('admin.label.Remove', arg='pink'),
               'QubesLabelInUseError',
               "Label is still in use: Label(9, '0xffc0cb', 'pink')")
    d.ok('admin.vm.property.Set', 'work', 'label', 'blue')
    d.ok('admin.label.Remove', arg='pink')
    expect_exc(d.call('admin.label.Remove', arg='red'),  # a default one
               'ProtocolError')


# ---- pools ----

def test_pools():
    d = D()
    assert d.ok('admin.pool.List') == 'varlibqubes\nlinux-kernel\n'
    drivers = d.ok('admin.pool.ListDrivers')
    assert 'file-reflink revisions_to_keep dir_path setup_check ' \
        'ephemeral_volatile\n' in drivers
    info = d.ok('admin.pool.Info', arg='varlibqubes').splitlines()
    assert 'driver=file-reflink' in info and 'revisions_to_keep=1' in info
    assert any(l.startswith('size=') for l in info)
    usage = d.ok('admin.pool.UsageDetails', arg='varlibqubes')
    assert usage.startswith('data_size=') and 'data_usage=' in usage
    path = os.path.join(state['fs'].mnt, 'second')
    d.ok('admin.pool.Add', arg='file-reflink',
         payload='name=second\ndir_path=%s\nrevisions_to_keep=2\n' % path)
    assert os.path.isdir(os.path.join(path, 'appvms'))
    assert 'second' in d.ok('admin.pool.List')
    expect_exc(d.call('admin.pool.Add', arg='nodriver', payload='name=x'),
               'PermissionDenied', "Argument not in 'available drivers'")
    expect_exc(d.call('admin.pool.Add', arg='file-reflink',
                      payload='name=x\ndir_path=/tmp\nbogus=1'),
               'ProtocolError', 'unexpected driver options: bogus')
    expect_exc(d.call('admin.pool.Add', arg='file-reflink',
                      payload='name=x\n'),
               'QubesException', 'missing required driver options: dir_path')
    expect_exc(d.call('admin.pool.Add', arg='file-reflink',
                      payload='name=second\ndir_path=/tmp'),
               'QubesPoolInUseError', "Storage pool is in use: 'second'")
    expect_exc(d.call('admin.pool.Add', arg='file-reflink',
                      payload='name=a/b\ndir_path=/tmp'), 'ProtocolError')
    expect_exc(d.call('admin.pool.Add', arg='file-reflink',
                      payload='dir_path=/tmp'), 'ProtocolError')
    d.ok('admin.pool.Set.revisions_to_keep', arg='second', payload='3')
    assert 'revisions_to_keep=3' in d.ok('admin.pool.Info', arg='second')
    d.ok('admin.pool.Set.ephemeral_volatile', arg='second', payload='True')
    assert 'ephemeral_volatile=True' in d.ok('admin.pool.Info', arg='second')
    expect_exc(d.call('admin.pool.Set.ephemeral_volatile', arg='second',
                      payload='maybe'), 'ProtocolError', 'Payload is not boolean ASCII')
    expect_exc(d.call('admin.pool.Info', arg='nope'), 'PermissionDenied',
               "Argument not in 'pools'")
    d.ok('admin.vm.CreateInPool.StandaloneVM', payload='name=inpool '
         'label=red pool=second')
    vids = d.ok('admin.pool.volume.List', arg='second').splitlines()
    assert 'appvms/inpool/private' in vids, vids
    expect_exc(d.call('admin.pool.Remove', arg='second'),
               'QubesPoolInUseError')
    d.ok('admin.vm.Remove', 'inpool')
    d.ok('admin.pool.Remove', arg='second')
    assert 'second' not in d.ok('admin.pool.List')
    assert d.ok('admin.pool.volume.List', arg='linux-kernel') == '6.1.0\n'


# ---- volumes ----

def test_volumes():
    d = D()
    assert d.ok('admin.vm.volume.List', 'work') == \
        'root\nprivate\nvolatile\nkernel\n'
    info = dict(l.split('=', 1) for l in
                d.ok('admin.vm.volume.Info', 'work', 'private').splitlines())
    for k in ('pool', 'vid', 'size', 'usage', 'rw', 'source', 'path',
              'save_on_stop', 'snap_on_start', 'revisions_to_keep',
              'ephemeral', 'is_outdated', 'shared', 'exclusive'):
        assert k in info, k
    assert info['vid'] == 'appvms/work/private' and info['rw'] == 'True'
    assert info['size'] == str(2 << 30)
    expect_exc(d.call('admin.vm.volume.Info', 'work', 'nope'),
               'PermissionDenied', "Argument not in 'work volumes'")
    expect_exc(d.call('admin.vm.volume.Info', 'work', '../x'),
               'PermissionDenied', "Argument not in 'work volumes'")
    assert d.ok('admin.vm.volume.ListSnapshots', 'work', 'private') == ''
    # Clear imports an empty image: each one keeps a revision.
    d.ok('admin.vm.volume.Set.revisions_to_keep', 'work', 'private', '3')
    img = os.path.join(d.base_dir, 'appvms', 'work', 'private.img')
    with open(img, 'r+b') as f:
        f.write(b'first')
    d.ok('admin.vm.volume.Clear', 'work', 'private')
    with open(img, 'r+b') as f:
        assert f.read(5) == b'\0' * 5
        f.seek(0)
        f.write(b'second')
    d.ok('admin.vm.volume.Clear', 'work', 'private')
    snaps = d.ok('admin.vm.volume.ListSnapshots', 'work', 'private')
    assert snaps == '1\n2\n', snaps
    d.ok('admin.vm.volume.Revert', 'work', 'private', '1')
    with open(img, 'rb') as f:
        assert f.read(5) == b'first'
    snaps = d.ok('admin.vm.volume.ListSnapshots', 'work', 'private')
    assert snaps == '2\n3\n', snaps  # the replaced image became 3
    # master wants the revision named (qvm-volume names the latest)
    expect_exc(d.call('admin.vm.volume.Revert', 'work', 'private', ''),
               'ProtocolError', 'expected payload')
    expect_exc(d.call('admin.vm.volume.Revert', 'work', 'private', '../3'),
               'ProtocolError', 'Revision name must be in safe set')
    d.ok('admin.vm.volume.Revert', 'work', 'private', '3')
    with open(img, 'rb') as f:
        assert f.read(5) == b'\0' * 5
    d.ok('admin.vm.volume.Revert', 'work', 'private', '2')
    with open(img, 'rb') as f:
        assert f.read(6) == b'second'
    expect_exc(d.call('admin.vm.volume.Revert', 'work', 'private', '99'),
               'QubesVolumeRevisionNotFoundError')
    expect_exc(d.call('admin.vm.volume.Revert', 'work', 'private', '../1'),
               'ProtocolError')
    # resize: grow only
    d.ok('admin.vm.volume.Resize', 'work', 'private', str(3 << 30))
    assert os.path.getsize(img) == 3 << 30
    assert 'size=%d' % (3 << 30) in d.ok('admin.vm.volume.Info', 'work',
                                         'private')
    expect_exc(d.call('admin.vm.volume.Resize', 'work', 'private', '1024'),
               'StoragePoolException', 'shrink')
    # settings
    d.ok('admin.vm.volume.Set.rw', 'work', 'root', 'True')
    assert 'rw=True' in d.ok('admin.vm.volume.Info', 'work', 'root')
    d.ok('admin.vm.volume.Set.ephemeral', 'work', 'volatile', 'True')
    assert 'ephemeral=True' in d.ok('admin.vm.volume.Info', 'work',
                                    'volatile')
    expect_exc(d.call('admin.vm.volume.Set.ephemeral', 'work', 'private',
                      'True'), 'QubesValueError')
    expect_exc(d.call('admin.vm.volume.Set.rw', 'work', 'root', 'perhaps'),
               'ProtocolError', 'Payload is not boolean ASCII')
    # clone private of work into a new qube's private
    d.ok('admin.vm.Create.AppVM', 'dom0', 'fedora', 'name=copy label=red')
    token = d.ok('admin.vm.volume.CloneFrom', 'work', 'private')
    assert len(token) == 32 and token.isalnum()
    d.ok('admin.vm.volume.CloneTo', 'copy', 'private', token)
    with open(os.path.join(d.base_dir, 'appvms', 'copy', 'private.img'),
              'rb') as f:
        assert f.read(6) == b'second'
    expect_exc(d.call('admin.vm.volume.CloneTo', 'copy', 'private', token),
               'QubesVolumeCopyTokenNotFoundError',
               "'Token to clone volume of qube was not found'")
    d.ok('admin.vm.Remove', 'copy')


# ---- events ----

def test_events():
    d = D()
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(d.sock)
    s.sendall(b'admin.Events dom0 name dom0\0')
    s.shutdown(socket.SHUT_WR)
    buf = b''
    while b'connection-established' not in buf:
        buf += s.recv(4096)
    d.ok('admin.vm.property.Set', 'work', 'vcpus', '3')
    d.ok('admin.vm.feature.Set', 'work', 'evfeat', 'v')
    d.ok('admin.vm.tag.Set', 'work', 'evtag')
    d.ok('admin.property.Set', arg='default_netvm', payload='')
    want = ['property-set:vcpus', 'domain-feature-set:evfeat',
            'domain-tag-add:evtag']
    events = []
    while not all(any(e[1] == w for e in events) for w in want) or \
            not any(e[1] == 'property-set:default_netvm' for e in events):
        chunk = s.recv(4096)
        assert chunk, 'event stream ended'
        buf += chunk
        got, buf = parse_events(buf) if buf.startswith(b'1\0') else ([], buf)
        events += got
        if not buf.startswith(b'1\0') and buf:
            buf = b''
    s.close()
    ev = {e[1]: e for e in events}
    assert ev['property-set:vcpus'][0] == 'work'
    assert ev['property-set:vcpus'][2]['newvalue'] == '3'
    assert ev['property-set:vcpus'][2]['name'] == 'vcpus'
    assert 'property-pre-set:vcpus' in ev
    assert ev['domain-feature-set:evfeat'][2] == {'feature': 'evfeat',
                                                  'value': 'v'}
    assert ev['domain-tag-add:evtag'][2] == {'tag': 'evtag'}
    assert ev['property-set:default_netvm'][0] == ''
    d.ok('admin.vm.feature.Remove', 'work', 'evfeat')
    d.ok('admin.vm.tag.Remove', 'work', 'evtag')
    d.ok('admin.property.Reset', arg='default_netvm')
    # a subscriber to one VM only sees that VM's events
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(d.sock)
    s.sendall(b'admin.Events dom0 name fedora\0')
    s.shutdown(socket.SHUT_WR)
    buf = s.recv(4096)
    d.ok('admin.vm.property.Set', 'work', 'vcpus', '4')
    d.ok('admin.vm.property.Set', 'fedora', 'vcpus', '4')
    while b'property-set:vcpus' not in buf:
        buf += s.recv(4096)
    events, _ = parse_events(buf)
    assert all(e[0] in ('', 'fedora') for e in events), events
    s.close()
    # the daemon notices the subscribers leaving
    assert d.ok('admin.vm.List', 'work')


# ---- persistence ----

def test_restart_keeps_state():
    d = D()
    d.ok('admin.vm.property.Set', 'work', 'maxmem', '1234')
    d.ok('admin.vm.feature.Set', 'work', 'keep', 'me')
    d.ok('admin.vm.tag.Set', 'work', 'kept')
    d.ok('admin.label.Create', arg='teal', payload='0x008080')
    before = d.ok('admin.vm.property.GetAll', 'work')
    xml_path = os.path.join(d.base_dir, 'qubes.xml')
    d.stop()
    with open(xml_path, 'rb') as f:
        saved = f.read()
    d.start()
    assert d.ok('admin.vm.property.GetAll', 'work') == before
    assert d.ok('admin.vm.feature.Get', 'work', 'keep') == 'me'
    assert 'kept' in d.ok('admin.vm.tag.List', 'work')
    assert d.ok('admin.label.Get', arg='teal') == '0x008080'
    # load + save changes nothing
    d.stop()
    with open(xml_path, 'rb') as f:
        assert f.read() == saved
    d.start()
    d.ok('admin.label.Remove', arg='teal')
    d.ok('admin.vm.feature.Remove', 'work', 'keep')
    d.ok('admin.vm.tag.Remove', 'work', 'kept')


def test_malformed_xml_refused():
    fs = state['fs']
    base = os.path.join(fs.mnt, 'broken')
    os.makedirs(base)
    with open(os.path.join(base, 'qubes.xml'), 'w') as f:
        f.write('<qubes>\n<labels>\n</qubes>\n')
    r = subprocess.run([QUBESD, '--base-dir', base, '--socket',
                        os.path.join(base, 's.sock')],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert 'qubes.xml:3' in r.stderr, r.stderr
    with open(os.path.join(base, 'qubes.xml')) as f:
        assert f.read() == '<qubes>\n<labels>\n</qubes>\n'


def test_parallel_clients():
    d = D()
    names = ['par%d' % i for i in range(8)]
    for n in names:
        d.ok('admin.vm.Create.AppVM', 'dom0', 'fedora',
             'name=%s label=green' % n)

    def client(i):
        vm = names[i % len(names)]
        d.ok('admin.vm.feature.Set', vm, 'f%d' % i, str(i))
        d.ok('admin.vm.tag.Set', vm, 't%d' % i)
        assert d.ok('admin.vm.feature.Get', vm, 'f%d' % i) == str(i)
        d.ok('admin.vm.volume.Info', vm, 'private')

    in_parallel(64, client)
    root = ET.parse(os.path.join(d.base_dir, 'qubes.xml')).getroot()
    feats = set()
    tags = set()
    for dom in root.iter('domain'):
        for f in dom.iter('feature'):
            feats.add(f.get('name'))
        for t in dom.iter('tag'):
            tags.add(t.get('name'))
    for i in range(64):
        assert 'f%d' % i in feats and 't%d' % i in tags, i
    for n in names:
        d.ok('admin.vm.Remove', n)


def test_answered_changes_survive_sigkill():
    """Saves are grouped, but a change is answered only once it is on
    disk: 32 clients set properties and features at once, qubesd is
    killed with SIGKILL the moment the last answer is in, and after a
    restart every answered change is there."""
    d = D()

    def client(i):
        d.ok('admin.vm.feature.Set', 'work', 'k%d' % i, 'v%d' % i)
        if i % 4 == 0:
            d.ok('admin.vm.property.Set', 'work', 'maxmem', str(2000 + i))

    in_parallel(32, client)
    last = d.ok('admin.vm.property.Get', 'work', 'maxmem')
    d.ok('admin.vm.feature.Set', 'work', 'last', 'one')
    d.kill()
    d.start()
    for i in range(32):
        assert d.ok('admin.vm.feature.Get', 'work', 'k%d' % i) == 'v%d' % i
        d.ok('admin.vm.feature.Remove', 'work', 'k%d' % i)
    assert d.ok('admin.vm.feature.Get', 'work', 'last') == 'one'
    assert d.ok('admin.vm.property.Get', 'work', 'maxmem') == last
    d.ok('admin.vm.feature.Remove', 'work', 'last')
    d.ok('admin.vm.property.Reset', 'work', 'maxmem')


def test_interrupted_saves_recovered():
    """What a crash during a save leaves: a temporary beside qubes.xml
    (removed at start), or on a new system's first save an empty
    qubes.xml (taken as no file: a new system is made)."""
    fs = state['fs']
    base = os.path.join(fs.mnt, 'interrupted')
    os.makedirs(base)
    open(os.path.join(base, 'qubes.xml'), 'wb').close()
    with open(os.path.join(base, 'qubes.xml~Ab12Cd'), 'wb') as f:
        f.write(b'<qubes>')
    d2 = Daemon(QUBESD, base).start()
    try:
        assert d2.ok('admin.vm.List').startswith('dom0 class=AdminVM')
        assert sorted(n for n in os.listdir(base)
                      if n.startswith('qubes.xml')) == ['qubes.xml']
        d2.stop()
        log = d2.read_log()
    finally:
        d2.stop(check=False)
        d2.cleanup()
    assert 'is empty (the first save of a new system was interrupted)' in log
    assert 'qubes.xml~Ab12Cd, left by an interrupted save' in log


def test_socket_modes():
    """The admin socket is 0660 and group qubes (setup makes the group
    where it is missing); the internal socket 0600, root only."""
    d = D()
    st = os.stat(d.sock)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert st.st_gid == grp.getgrnam('qubes').gr_gid, st.st_gid
    internal = os.path.join(os.path.dirname(d.sock), 'qubesd.internal.sock')
    st = os.stat(internal)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert st.st_uid == 0


def test_reference_pool_tree():
    """A pool tree as the reference lays it out (SPEC 2.2), with revisions
    in both namings, opens through the API."""
    fs = state['fs']
    base = os.path.join(fs.mnt, 'reftree')
    vmdir = os.path.join(base, 'vm-templates', 'old')
    os.makedirs(vmdir)
    os.makedirs(os.path.join(base, 'appvms'))

    def img(name, data):
        with open(os.path.join(vmdir, name), 'wb') as f:
            f.truncate(1 << 20)
            f.write(data)

    img('private.img', b'current')
    img('private.img@2017-05-06T07:08:09Z', b'seed-old')
    img('private.img@2018-01-02T03:04:05Z', b'seed-new')
    img('private.img.3@2019-01-01T00:00:00Z', b'three')
    img('private.img.4@2020-01-01T00:00:00Z', b'four')
    img('root.img', b'root')
    xml = '''<?xml version='1.0' encoding='UTF-8'?>
<qubes>
  <labels>
    <label id="label-1" color="0xcc0000">red</label>
    <label id="label-8" color="0x000000">black</label>
  </labels>
  <pools>
    <pool dir_path="%s" driver="file-reflink" name="varlibqubes" revisions_to_keep="1"/>
  </pools>
  <properties/>
  <domains>
    <domain id="domain-0" class="AdminVM">
      <properties><property name="label">black</property></properties>
      <features/><tags/>
    </domain>
    <domain id="domain-5" class="TemplateVM">
      <properties>
        <property name="qid">5</property>
        <property name="name">old</property>
        <property name="uuid">2a0a6f9c-1d1d-4c59-a9bd-3b8c8c7f0b11</property>
        <property name="label">label-1</property>
      </properties>
      <features><feature name="os">Linux</feature></features>
      <tags/>
      <volume-config>
        <volume name="root" pool="varlibqubes" vid="vm-templates/old/root" revisions_to_keep="1" rw="True" save_on_stop="True" size="1048576"/>
        <volume name="private" pool="varlibqubes" vid="vm-templates/old/private" revisions_to_keep="5" rw="True" save_on_stop="True" size="1048576"/>
        <volume name="volatile" pool="varlibqubes" vid="vm-templates/old/volatile" revisions_to_keep="0" rw="True" size="1048576"/>
      </volume-config>
    </domain>
  </domains>
</qubes>
''' % base
    with open(os.path.join(base, 'qubes.xml'), 'w') as f:
        f.write(xml)
    d2 = Daemon(QUBESD, base).start()
    try:
        assert 'old class=TemplateVM' in d2.ok('admin.vm.List')
        assert d2.ok('admin.vm.property.Get', 'old', 'label') == \
            'default=False type=label red'
        snaps = d2.ok('admin.vm.volume.ListSnapshots', 'old', 'private')
        assert snaps == ('2017-05-06T07:08:09Z\n2018-01-02T03:04:05Z\n'
                         '3\n4\n'), snaps
        d2.ok('admin.vm.volume.Revert', 'old', 'private',
              '2018-01-02T03:04:05Z')
        with open(os.path.join(vmdir, 'private.img'), 'rb') as f:
            assert f.read(8) == b'seed-new'
        snaps = d2.ok('admin.vm.volume.ListSnapshots', 'old', 'private')
        assert snaps == '2017-05-06T07:08:09Z\n3\n4\n5\n', snaps
        d2.ok('admin.vm.volume.Revert', 'old', 'private', '5')
        with open(os.path.join(vmdir, 'private.img'), 'rb') as f:
            assert f.read(7) == b'current'
        # the maxmem default follows the os feature (Linux: memory x 10)
        assert d2.ok('admin.vm.property.Get', 'old', 'maxmem').startswith(
            'default=True type=int ')
    finally:
        d2.stop()
        d2.cleanup()


def remove_group():
    if state.pop('made_group', False):
        subprocess.run(['groupdel', 'qubes'], check=True)


if __name__ == '__main__':
    sys.exit(run_file(globals(), setup, state, remove_group))
