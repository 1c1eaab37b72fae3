#!/usr/bin/python3
"""Differential test: the answers of the reference's current master, byte
for byte, for every Admin API method qubesd serves.

The expected answers come from reading QubesOS/qubes-core-admin master:
qubes/tests/api_admin.py (its fixture, reproduced here: default_kernel
"1.0", default_netvm none, TemplateVM test-template labelled black as the
default template, AppVM test-vm1 labelled red), qubes/api/admin.py,
qubes/api/__init__.py, qubes/vm/*.py, qubes/app.py and
qubes/storage/*.py. Each case names where its answer comes from:

    T  a test of api_admin.py (the name given)
    S  the source (file given): what the code there answers
    D  a difference the README lists as deliberate (our answer asserted)

Where master gives only the exception's type (a test's assertRaises) the
type is checked and the message is ours; the README says so.

    test-reference.py PATH/TO/qubesd
"""
import os
import re
import socket
import subprocess
import tempfile
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qubesd_harness import run_file  # noqa: E402
from qubesd_harness import Daemon, LoopFS, make_kernel  # noqa: E402
from qubesd_harness import parse_events  # noqa: E402

QUBESD = os.path.abspath(sys.argv[1])
state = {}

# Every method qubesd serves; each must have at least one case below.
SERVED = [
    'admin.vmclass.List', 'admin.vm.List', 'admin.vm.CurrentState',
    'admin.vm.Create.AppVM', 'admin.vm.Create.TemplateVM',
    'admin.vm.Create.StandaloneVM', 'admin.vm.Create.DispVM',
    'admin.vm.Create.RemoteVM', 'admin.vm.CreateInPool.AppVM',
    'admin.vm.CreateInPool.StandaloneVM', 'admin.vm.Remove',
    'admin.vm.property.List', 'admin.vm.property.Get',
    'admin.vm.property.GetAll', 'admin.vm.property.GetDefault',
    'admin.vm.property.Help', 'admin.vm.property.Set',
    'admin.vm.property.Reset', 'admin.property.List', 'admin.property.Get',
    'admin.property.GetAll', 'admin.property.GetDefault',
    'admin.property.Help', 'admin.property.Set', 'admin.property.Reset',
    'admin.vm.feature.List', 'admin.vm.feature.Get',
    'admin.vm.feature.CheckWithTemplate', 'admin.vm.feature.CheckWithNetvm',
    'admin.vm.feature.CheckWithAdminVM',
    'admin.vm.feature.CheckWithTemplateAndAdminVM', 'admin.vm.feature.Set',
    'admin.vm.feature.Remove', 'admin.vm.tag.List', 'admin.vm.tag.Get',
    'admin.vm.tag.Set', 'admin.vm.tag.Remove', 'admin.label.List',
    'admin.label.Get', 'admin.label.Index', 'admin.label.Create',
    'admin.label.Remove', 'admin.pool.List', 'admin.pool.ListDrivers',
    'admin.pool.Info', 'admin.pool.UsageDetails', 'admin.pool.Add',
    'admin.pool.Remove', 'admin.pool.volume.List',
    'admin.pool.Set.revisions_to_keep', 'admin.pool.Set.ephemeral_volatile',
    'admin.vm.volume.List', 'admin.vm.volume.Info',
    'admin.vm.volume.ListSnapshots', 'admin.vm.volume.Revert',
    'admin.vm.volume.Resize', 'admin.vm.volume.Set.revisions_to_keep',
    'admin.vm.volume.Set.rw', 'admin.vm.volume.Set.ephemeral',
    'admin.vm.volume.Clear', 'admin.vm.volume.CloneFrom',
    'admin.vm.volume.CloneTo', 'admin.vm.notes.Get', 'admin.vm.notes.Set',
    'admin.Events', 'admin.vm.Start', 'admin.vm.Shutdown', 'admin.vm.Kill',
    'admin.vm.Pause', 'admin.vm.Unpause', 'admin.vm.Suspend',
    'admin.vm.Resume', 'admin.vm.Console', 'admin.vm.Stats',
    'admin.vm.CreateDisposable', 'admin.vm.firewall.Get',
    'admin.vm.firewall.Set', 'admin.vm.firewall.Reload',
    'admin.deviceclass.List', 'admin.vm.device.denied.List',
    'admin.vm.device.denied.Add', 'admin.vm.device.denied.Remove',
] + ['admin.vm.device.%s.%s' % (c, m) for c in ('block', 'pci')
     for m in ('Available', 'Assigned', 'Attached', 'Assign', 'Unassign',
               'Attach', 'Detach', 'Set.assignment')]
covered = set()

VM = 'test-vm1'
TPL = 'test-template'


def setup():
    fs = LoopFS('xfs')
    state['fs'] = fs
    base = os.path.join(fs.mnt, 'qubes')
    make_kernel(base, '1.0', ('vmlinuz', 'initramfs', 'modules.img'))
    os.makedirs(os.path.join(fs.mnt, 'pools'))
    d = Daemon(QUBESD, base).start()
    state['d'] = d
    state['base'] = base
    # the fixture of api_admin.py's AdminAPITestCase
    d.ok('admin.property.Set', arg='default_kernel', payload='1.0')
    d.ok('admin.property.Set', arg='default_netvm', payload='')
    d.ok('admin.vm.Create.TemplateVM', payload='name=%s label=black' % TPL)
    d.ok('admin.property.Set', arg='default_template', payload=TPL)
    d.ok('admin.vm.Create.AppVM', arg=TPL, payload='name=%s label=red' % VM)


def call(method, dest=VM, arg='', payload=b''):
    covered.add(method)
    return state['d'].call(method, dest, arg, payload)


# Where each test of master's qubes/tests/api_admin.py that this file
# does not name in a "T" comment is covered: a case of this file, or of
# another test file where it needs what this one has not (a running
# guest, the backup pipeline, the client's tools, a qrexec policy).
# test_master_tests_all_placed checks that each place exists.
MASTER_ELSEWHERE = {
    'test_002_vm_list_filter':
        'daemon/test-integrity.py:test_calls_from_a_qube',
    'test_010_vm_property_list': 'test_vm_property_get_all',
    'test_044_vm_propert_set_label_invalid2': 'test_vm_property_set',
    'test_901_current_state_changed': 'test_current_state',
    'test_995_vm_only_calls': 'test_destinations',
    'test_notes_get': 'test_notes',
    'test_notes_set': 'test_notes',
    'test_500_vm_remove': 'test_remove',
    'test_501_vm_remove_running': 'vm/test-runtime.py:test_pause_unpause_kill',
    'test_271_events_add_vm': 'test_events',
    'test_272_events_filter': 'test_events',
    'test_273_events_single': 'test_events',
    'test_630_vm_stats': 'test_stats',
    'test_631_vm_stats_single_vm': 'test_stats',
    'test_730_vm_console': 'vm/test-runtime.py:test_start_write_stop_'
                           'commits_private_and_drops_root',
    'test_731_vm_console_not_running': 'test_lifecycle_of_a_halted_qube',
}
# a halted qube's refusals here; with a running guest in test-runtime
for t in ('220_start', '230_shutdown', '231_shutdown_force',
          '232_shutdown_wait', '233_shutdown_wait_force',
          '234_shutdown_force_wait', '234_shutdown_force_wait_invalid',
          '240_pause', '241_suspend', '250_unpause', '251_resume',
          '260_kill'):
    MASTER_ELSEWHERE['test_' + t] = 'test_lifecycle_of_a_halted_qube'
for t in ('471_vm_device_list_assigned_options',
          '472_vm_device_list_attached',
          '473_vm_device_list_assigned_specific',
          '474_vm_device_list_attached_specific', '480_vm_device_attach',
          '483_vm_device_assign_required', '485_vm_device_assign_not_running',
          '486_vm_device_assign_required_not_running',
          '487_vm_device_attach_options', '488_vm_device_assign_options',
          '4890_vm_overlapping_assignments', '494_vm_device_unassign_attached',
          '496_vm_device_detach', '497_vm_device_detach_not_attached',
          '650_vm_device_set_mode_required', '651_vm_device_set_mode_ask',
          '652_vm_device_set_mode_auto', '653_vm_device_set_mode_unchanged',
          '655_vm_device_set_mode_invalid_value',
          '660_vm_device_denied_list_empty', '661_vm_device_denied_list',
          '662_vm_device_denied_add', '663_vm_device_denied_add_multiple',
          '664_vm_device_denied_add_invalid',
          '664_vm_device_denied_add_repeated',
          '665_vm_device_denied_add_present',
          '666_vm_device_denied_add_nothing', '670_vm_device_denied_remove',
          '671_vm_device_denied_remove_invalid',
          '671_vm_device_denied_remove_repeated',
          '672_vm_device_denied_remove_all',
          '673_vm_device_denied_remove_missing',
          '673_vm_device_denied_remove_missing_and_present',
          '674_vm_device_denied_remove_nothing'):
    MASTER_ELSEWHERE['test_' + t] = 'test_devices'
# the attachment of a running qube's devices
for t in ('480_vm_device_attach', '487_vm_device_attach_options',
          '496_vm_device_detach'):
    MASTER_ELSEWHERE['test_' + t] = \
        'vm/test-runtime.py:test_block_devices_of_dom0'
for t in ('509_vm_volume_import_begin_wrong_volume',
          '509_vm_volume_import_end_wrong_volume', '510_vm_volume_import',
          '510_vm_volume_import_end_failure',
          '510_vm_volume_import_end_success', '511_vm_volume_import_running',
          '512_vm_volume_import_with_size', '515_vm_volume_import_fire_event',
          '516_vm_volume_import_fire_event_with_size'):
    MASTER_ELSEWHERE['test_' + t] = \
        'daemon/test-tools.py:test_volumes_and_import'
for t in ('600_backup_info',
          '601_backup_info_profile_missing_destination_path',
          '602_backup_info_profile_missing_destination_vm',
          '603_backup_info_profile_missing'):
    MASTER_ELSEWHERE['test_' + t] = \
        'daemon/test-backup.py:test_profile_errors_in_masters_words'
MASTER_ELSEWHERE['test_600_backup_info'] = \
    'daemon/test-backup.py:test_info_as_master_test_600'
for t in ('610_backup_cancel_not_running', '611_backup_already_running',
          '612_backup_when_vm_with_disabled_snapshots_is_running',
          '620_backup_execute', '621_backup_execute_passphrase_service',
          '622_backup_execute_when_disable_snapshot_vm_running'):
    MASTER_ELSEWHERE['test_' + t] = \
        'daemon/test-backup.py:test_progress_events_and_already_running'
for t in ('640_vm_create_disposable', '640_vm_create_disposable_uuid',
          '641_vm_create_disposable_default',
          '642_vm_create_disposable_not_allowed',
          '642_vm_create_disposable_wrong_arg',
          '643_vm_create_disposable_preload_autostart'):
    MASTER_ELSEWHERE['test_' + t] = 'test_create_disposable'


def ok(method, dest=VM, arg='', payload=b'', want=None):
    """The call succeeds; with @want, its answer is exactly that."""
    r = call(method, dest, arg, payload)
    assert r[0] == 'ok', (method, dest, arg, payload, r)
    if want is not None:
        assert r[1] == want, (method, dest, arg, r[1], want)
    return r[1]


def exc(method, dest=VM, arg='', payload=b'', name=None, msg=None,
        match=None):
    """The call answers exception @name; with @msg, exactly that message;
    with @match, a message matching that regex."""
    r = call(method, dest, arg, payload)
    assert r[0] == 'exc', (method, dest, arg, payload, r)
    assert r[1] == name, (method, dest, arg, payload, r, name)
    if msg is not None:
        assert r[2] == msg, (method, dest, arg, r[2], msg)
    if match is not None:
        assert re.search(match, r[2]), (method, dest, arg, r[2], match)
    return r[2]


def uuid_of(vm):
    return ok('admin.vm.property.Get', vm, 'uuid').split(' ', 2)[2]


# ---- framing, options and destinations (qubes/api/__init__.py) ----

def test_method_options():
    # S api/__init__.py execute(): the options' checks and words
    exc('admin.vm.List', 'dom0', 'x', name='ProtocolError',
        msg='unexpected argument')
    exc('admin.vm.List', 'dom0', '', b'x', name='ProtocolError',
        msg='unexpected payload')
    exc('admin.vm.property.Get', VM, '', name='ProtocolError',
        msg='expected an argument')
    exc('admin.vm.feature.Set', VM, '', b'value', name='ProtocolError',
        msg='expected an argument')  # T test_322_feature_set_invalid_key
    exc('admin.vm.Create.AppVM', 'dom0', TPL, b'', name='ProtocolError',
        msg='expected payload')
    exc('admin.label.List', VM, name='ProtocolError',
        msg='expected destination to be AdminVM')  # T test_994
    exc('admin.vm.notes.Get', 'dom0', name='ProtocolError',
        msg='expected destination to not be AdminVM')
    exc('admin.no.Such', 'dom0', name='ProtocolError',
        msg="no such method: 'admin.no.Such'")
    # T test_990 .. test_993: payloads and arguments refused
    for m in ('admin.vm.List', 'admin.vm.Remove', 'admin.vm.property.List',
              'admin.vm.feature.List', 'admin.vm.tag.List',
              'admin.vm.volume.List', 'admin.Events'):
        exc(m, VM, '', b'unexpected-payload', name='ProtocolError')
        exc(m, VM, 'some-arg', b'', name='ProtocolError')
    for m in ('admin.vmclass.List', 'admin.label.List',
              'admin.property.List', 'admin.pool.List',
              'admin.pool.ListDrivers'):
        exc(m, 'dom0', 'some-arg', b'', name='ProtocolError')
        exc(m, 'dom0', '', b'unexpected-payload', name='ProtocolError')
    for m in ('admin.vmclass.List', 'admin.vm.Create.AppVM',
              'admin.vm.CreateInPool.AppVM', 'admin.label.Create',
              'admin.property.Set', 'admin.pool.Add', 'admin.pool.Remove'):
        exc(m, VM, '', b'', name='ProtocolError')


def test_destinations():
    # S api/__init__.py decode_vm; T test_001_vm_list_single_invalid_*
    exc('admin.vm.List', '.test-vm1', name='QubesValueError',
        msg='VM name cannot start with hyphen, underscore, dot or numbers')
    exc('admin.vm.List', 'uuid:', name='QubesVMInvalidUUIDError',
        msg="VM UUID is not valid: ''")
    exc('admin.vm.List', 'no-such-vm', name='QubesVMNotFoundError',
        msg="No such domain: 'no-such-vm'")


# ---- qubes ----

def test_vm_list():
    # T test_000_vm_list, test_001_vm_list_single(_uuid)
    ok('admin.vm.List', 'dom0', want=(
        'dom0 class=AdminVM state=Running '
        'uuid=00000000-0000-0000-0000-000000000000\n'
        'test-template class=TemplateVM state=Halted uuid=%s\n'
        'test-vm1 class=AppVM state=Halted uuid=%s\n'
        % (uuid_of(TPL), uuid_of(VM))))
    line = 'test-vm1 class=AppVM state=Halted uuid=%s\n' % uuid_of(VM)
    ok('admin.vm.List', VM, want=line)
    ok('admin.vm.List', 'uuid:' + uuid_of(VM), want=line)


def test_vmclass_list():
    # S setup.py's qubes.vm entry points, in their order, and RemoteVM
    ok('admin.vmclass.List', 'dom0', want='AppVM\nTemplateVM\nStandaloneVM\n'
       'AdminVM\nDispVM\nRemoteVM\n')


def test_current_state():
    # T test_900_current_state_default
    maxmem = int(ok('admin.vm.property.Get', VM, 'maxmem').split()[-1])
    ok('admin.vm.CurrentState', VM, want='mem=0 mem_static_max=%d cputime=0 '
       'power_state=Halted' % (maxmem * 1024))
    # S vm/adminvm.py get_mem, get_mem_static_max (maxmem in KiB; offline
    # master's 4096 MiB), get_cputime: dom0 is the host here (D)
    state = ok('admin.vm.CurrentState', 'dom0')
    m = re.fullmatch(r'mem=(\d+) mem_static_max=4194304 cputime=(\d+) '
                     r'power_state=Running', state)
    assert m and int(m.group(1)) > 0 and int(m.group(2)) > 0, state
    with open('/proc/meminfo') as f:
        total = int(f.readline().split()[1])
    assert int(m.group(1)) == total, (state, total)


def test_dvm_template_in_use():
    # S vm/mix/dvmtemplate.py __on_pre_set_dvmtemplate, app.py
    # get_qube_prop_deps: the system first, then the qubes
    ok('admin.vm.Create.AppVM', 'dom0', TPL, b'name=dvm-x label=red')
    ok('admin.vm.property.Set', 'dvm-x', 'template_for_dispvms', b'True')
    ok('admin.property.Set', 'dom0', 'management_dispvm', b'dvm-x')
    exc('admin.vm.property.Reset', 'dvm-x', 'template_for_dispvms',
        name='QubesVMInUseError',
        msg='Cannot change template_for_dispvms to False while it is in use '
        'by the system by any of these properties: default_dispvm, '
        'management_dispvm')
    ok('admin.property.Reset', 'dom0', 'management_dispvm')
    ok('admin.vm.property.Set', VM, 'default_dispvm', b'dvm-x')
    exc('admin.vm.property.Set', 'dvm-x', 'template_for_dispvms', b'False',
        name='QubesVMInUseError',
        msg='Cannot change template_for_dispvms to False while it is the '
        'disposable template of a qube by any of these properties: '
        'default_dispvm, management_dispvm, template')
    ok('admin.vm.property.Reset', VM, 'default_dispvm')
    ok('admin.vm.property.Set', 'dvm-x', 'template_for_dispvms', b'False')
    ok('admin.vm.Remove', 'dvm-x')


def test_feature_checks_of_extensions():
    # S ext/vm_config.py and ext/custom_persist.py: their words; here the
    # refused value is not kept (D)
    for f, v, msg in (
            ('vm-config.', 'x', 'Empty config name not allowed'),
            ('vm-config.1abc', 'x',
             'Config name must start with an ASCII letter'),
            ('vm-config.' + 'a' * 53, 'x',
             'VM config name must not exceed 46 bytes'),
            ('custom-persist.', '/x', 'custom-persist key cannot be empty'),
            ('custom-persist.' + 'b' * 55, '/x',
             'custom-persist key is too long (max 54), ignoring: ' +
             'b' * 55),
            ('custom-persist.k', 'rel', "invalid value format: 'rel'"),
            ('custom-persist.k', 'dir:u:g:9755:/x',
             "invalid mode option '9755' in value 'dir:u:g:9755:/x'"),
            ('custom-persist.k', 'dev:u:g:0755:/x',
             "invalid resource type option 'dev' in value "
             "'dev:u:g:0755:/x'"),
            ('custom-persist.k', 'dir:u:g:0755:rel',
             "invalid value format: 'dir:u:g:0755:rel'"),
            ('custom-persist.k', 'dir:u:g:0o17777:/x',
             "invalid mode option '0o17777' in value "
             "'dir:u:g:0o17777:/x'")):
        exc('admin.vm.feature.Set', VM, f, v.encode(), name='QubesValueError',
            msg=msg)
        assert f not in ok('admin.vm.feature.List', VM).split(), f
    # S ext/services.py: service names, and meminfo-writer into maxmem
    for f, msg in (('service..', 'Service name cannot be "." or ".."'),
                   ('service.' + 'c' * 49,
                    'Service name must not exceed 48 bytes')):
        exc('admin.vm.feature.Set', VM, f, b'1', name='QubesValueError',
            msg=msg)
    ok('admin.vm.feature.Set', VM, 'service.app-dispvm.' + 'c' * 49, b'1')
    ok('admin.vm.feature.Remove', VM, 'service.app-dispvm.' + 'c' * 49)
    ok('admin.vm.feature.Set', VM, 'service.meminfo-writer', b'')
    assert 'service.meminfo-writer' not in \
        ok('admin.vm.feature.List', VM).split()
    ok('admin.vm.property.Get', VM, 'maxmem', want='default=False type=int 0')
    ok('admin.vm.feature.Set', VM, 'service.meminfo-writer', b'1')
    assert ok('admin.vm.property.Get', VM, 'maxmem').startswith(
        'default=True ')
    for f, v in (('vm-config.ok', 'x'), ('custom-persist.home', '/home/u'),
                 ('custom-persist.d', 'dir:user:user:0755:/var/x:y')):
        ok('admin.vm.feature.Set', VM, f, v.encode(), want='')
        ok('admin.vm.feature.Remove', VM, f)


def test_fake_domains_refuse():
    # S vm/adminvm.py and vm/remotevm.py start/suspend/shutdown/kill
    for verb, method in (('start', 'Start'), ('suspend', 'Suspend'),
                         ('shutdown', 'Shutdown'), ('kill', 'Kill')):
        name = 'QubesVMNotHaltedError' if verb == 'start' else \
            'QubesVMError'
        exc('admin.vm.' + method, 'dom0', name=name,
            msg='Cannot %s Dom0 fake domain!' % verb)
    ok('admin.vm.Create.RemoteVM', 'dom0', '', b'name=fake-rem label=red')
    for verb, method in (('start', 'Start'), ('suspend', 'Suspend'),
                         ('shutdown', 'Shutdown'), ('kill', 'Kill')):
        name = 'QubesVMNotHaltedError' if verb == 'start' else \
            'QubesVMError'
        exc('admin.vm.' + method, 'fake-rem', name=name,
            msg='Cannot %s a RemoteVM.' % verb)
    # S vm/remotevm.py is_halted: never, so admin.vm.Remove refuses it
    exc('admin.vm.Remove', 'fake-rem', name='QubesVMNotHaltedError',
        msg="Domain is not powered off: 'fake-rem'")


def test_lifecycle_of_a_halted_qube():
    # S qubes/api/admin.py vm_start..vm_console, qubes/vm/qubesvm.py
    # shutdown/kill/pause/suspend/resume/unpause, qubes/exc.py messages.
    # (Running qubes: tests/vm/test-runtime.py.)
    off = "Domain is powered off: 'test-vm1'"
    not_running = "Domain not running (either powered off or paused): " \
        "'test-vm1'"
    exc('admin.vm.Shutdown', VM, name='QubesVMNotStartedError', msg=off)
    exc('admin.vm.Shutdown', VM, 'force+wait', name='QubesVMNotStartedError',
        msg=off)
    exc('admin.vm.Shutdown', VM, 'force+now', name='ProtocolError')
    exc('admin.vm.Kill', VM, name='QubesVMNotStartedError', msg=off)
    exc('admin.vm.Pause', VM, name='QubesVMNotRunningError', msg=not_running)
    exc('admin.vm.Suspend', VM, name='QubesVMNotRunningError',
        msg=not_running)
    exc('admin.vm.Unpause', VM, name='QubesVMNotPausedError',
        msg="Domain is not paused: 'test-vm1'")
    exc('admin.vm.Resume', VM, name='QubesVMNotPausedError',
        msg="Domain is not paused: 'test-vm1'")
    exc('admin.vm.Console', VM, name='QubesVMNotRunningError',
        msg=not_running)
    exc('admin.vm.Start', VM, 'x', name='ProtocolError')
    exc('admin.vm.Kill', VM, payload=b'x', name='ProtocolError')
    # D offline (no hypervisor in this test): a start says so
    exc('admin.vm.Start', VM, name='QubesException',
        msg='Start failed: qubesd runs without a hypervisor (--offline)')


def test_create():
    # T test_330_vm_create_standalone ... test_346
    ok('admin.vm.Create.StandaloneVM', 'dom0', '', b'name=test-vm2 label=red',
       want='')
    assert os.path.isdir(os.path.join(state['base'], 'appvms', 'test-vm2'))
    # created-by-SRC, and the gui and audio extensions' tags
    ok('admin.vm.tag.List', 'test-vm2',
       want='audiovm-dom0\ncreated-by-dom0\nguivm-dom0\n')
    exc('admin.vm.Create.StandaloneVM', 'dom0', TPL, b'name=test-vm3 '
        b'label=red', name='ProtocolError')
    exc('admin.vm.Create.AppVM', 'dom0', 'test-template-inexistent',
        b'name=test-vm3 label=red', name='QubesVMNotFoundError',
        msg="No such domain: 'test-template-inexistent'")
    for bad in (b'name=test-###', b'name=--helpVM', b'name=1stVM'):
        exc('admin.vm.Create.AppVM', 'dom0', TPL, bad, name='QubesValueError')
    exc('admin.vm.Create.AppVM', 'dom0', TPL, b'label=red',
        name='ProtocolError', msg='Creation requested without key: name')
    exc('admin.vm.Create.AppVM', 'dom0', TPL,
        b'name=test-vm3 label=red pool=default', name='ProtocolError')
    exc('admin.vm.Create.AppVM', 'dom0', TPL, b'name=test-vm1 label=red',
        name='QubesVMAlreadyExistsError', msg='Qube already exists: test-vm1')
    exc('admin.vm.Create.AppVM', 'dom0', TPL,
        b'name=test-vm3 name=test-vm4 label=red', name='ProtocolError',
        msg='Options must be unique')
    exc('admin.vm.Create.AppVM', 'dom0', TPL,
        b'name=test-vm3 label=red what=is', name='ProtocolError',
        match='does not match')
    # S api/admin.py _vm_create: an unknown label is left out, so the key
    # is missing
    exc('admin.vm.Create.AppVM', 'dom0', TPL, b'name=test-vm3 label=nolabel',
        name='ProtocolError', msg='Creation requested without key: label')
    # T test_333_vm_create_app_default_template
    ok('admin.vm.Create.AppVM', 'dom0', '', b'name=test-vm3 label=red')
    ok('admin.vm.property.Get', 'test-vm3', 'template',
       want='default=False type=vm test-template')
    ok('admin.vm.Remove', 'test-vm3', want='')
    ok('admin.vm.Remove', 'test-vm2', want='')
    ok('admin.vm.Create.TemplateVM', 'dom0', '', b'name=test-tpl2 label=blue',
       want='')
    ok('admin.vm.Remove', 'test-tpl2', want='')


def test_create_in_pool():
    d = state['d']
    path = os.path.join(state['fs'].mnt, 'pools', 'test')
    d.ok('admin.pool.Add', arg='file-reflink',
         payload='name=test\ndir_path=%s\n' % path)
    # T test_340: pool= moves what the qube makes, not what it shares
    ok('admin.vm.CreateInPool.AppVM', 'dom0', TPL,
       b'name=test-vm2 label=red pool=test', want='')
    pool = {v: ok('admin.vm.volume.Info', 'test-vm2', v).split('\n')[0]
            for v in ('root', 'private', 'volatile', 'kernel')}
    assert pool == {'root': 'pool=varlibqubes', 'private': 'pool=test',
                    'volatile': 'pool=test',
                    'kernel': 'pool=linux-kernel'}, pool
    ok('admin.vm.Remove', 'test-vm2')
    # T test_341: pool:private= moves only that one
    ok('admin.vm.CreateInPool.AppVM', 'dom0', TPL,
       b'name=test-vm2 label=red pool:private=test')
    pool = {v: ok('admin.vm.volume.Info', 'test-vm2', v).split('\n')[0]
            for v in ('root', 'private', 'volatile')}
    assert pool == {'root': 'pool=varlibqubes', 'private': 'pool=test',
                    'volatile': 'pool=varlibqubes'}, pool
    ok('admin.vm.Remove', 'test-vm2')
    ok('admin.vm.CreateInPool.StandaloneVM', 'dom0', '',
       b'name=test-vm2 label=red pool=test')
    ok('admin.vm.Remove', 'test-vm2')
    # T test_342 .. test_346
    exc('admin.vm.CreateInPool.AppVM', 'dom0', TPL,
        b'name=test-vm2 label=red pool=no-such-pool', name='QubesException',
        msg='Unknown storage pool no-such-pool')
    exc('admin.vm.CreateInPool.AppVM', 'dom0', TPL,
        b'name=test-vm2 label=red pool:private=no-such-pool',
        name='QubesException', msg='Unknown storage pool no-such-pool')
    exc('admin.vm.CreateInPool.AppVM', 'dom0', TPL,
        b'name=test-vm2 label=red pool:invalid=test', name='ProtocolError')
    # S vm/qubesvm.py _patch_pool_config (its words, its missing space)
    exc('admin.vm.CreateInPool.AppVM', 'dom0', TPL,
        b'name=test-vm2 label=red pool:root=test', name='QubesException',
        msg='Snapshot volume root must be in the same pool as its origin '
        '(root volume of template),cannot move to pool test ')
    exc('admin.vm.CreateInPool.AppVM', 'dom0', TPL,
        b'name=test-vm2 label=red pool=test pool:root=test',
        name='ProtocolError',
        msg="Conflicting options specified: 'pool=', 'pool:volume='")
    d.ok('admin.pool.Remove', arg='test')


def test_disposables_and_remote():
    # S vm/dispvm.py: a DispVM of a disposable template, IP 10.138.x.y
    ok('admin.vm.property.Set', VM, 'template_for_dispvms', b'True')
    ok('admin.vm.feature.Set', VM, 'dvmfeature', b'1')
    ok('admin.vm.Create.DispVM', 'dom0', VM, b'name=disp1 label=red', want='')
    dispid = int(ok('admin.vm.property.Get', 'disp1', 'dispid').split()[-1])
    assert 0 <= dispid < 10000
    ok('admin.vm.feature.Get', 'disp1', 'dvmfeature', want='1')
    ok('admin.vm.property.Get', 'disp1', 'default_dispvm',
       want='default=True type=vm test-vm1')
    ok('admin.vm.property.Get', 'disp1', 'icon',
       want='default=True type=str dispvm-red')
    ok('admin.vm.property.Get', VM, 'icon',
       want='default=True type=str templatevm-red')  # S vm/appvm.py
    exc('admin.vm.property.Reset', 'disp1', 'template',
        name='QubesValueError', msg='Cannot unset template')
    exc('admin.vm.property.Reset', VM, 'template', name='QubesValueError',
        msg='Cannot unset template. You can set it to the current default '
        '(test-template) instead')  # S vm/appvm.py
    ok('admin.vm.Remove', 'disp1')
    ok('admin.vm.feature.Remove', VM, 'dvmfeature')
    ok('admin.vm.property.Reset', VM, 'template_for_dispvms')
    # S vm/remotevm.py: BaseVM's properties and a relay's, always Running
    ok('admin.vm.Create.RemoteVM', 'dom0', '', b'name=remote1 label=red')
    ok('admin.vm.CurrentState', 'remote1',
       want='mem=0 mem_static_max=0 cputime=0 power_state=Running')
    ok('admin.vm.property.List', 'remote1',
       want='icon\ninclude_in_backups\nklass\nlabel\nname\nqid\n'
       'remote_name\ntransport_rpc\nuuid\nrelayvm\n')
    ok('admin.vm.property.Get', 'remote1', 'icon',
       want='default=True type=str remotevm-red')
    # S ext/relay.py: the relay's tag follows relayvm
    ok('admin.vm.property.Set', 'remote1', 'relayvm', VM.encode())
    assert 'relayvm-' + VM in ok('admin.vm.tag.List', 'remote1').split()
    ok('admin.vm.property.Set', 'remote1', 'relayvm', TPL.encode())
    tags = ok('admin.vm.tag.List', 'remote1').split()
    assert 'relayvm-' + TPL in tags and 'relayvm-' + VM not in tags, tags
    ok('admin.vm.property.Reset', 'remote1', 'relayvm')
    assert not [t for t in ok('admin.vm.tag.List', 'remote1').split()
                if t.startswith('relayvm-')]
    # S ext/core_features.py: servicevm follows provides_network, and
    # the icon with it
    ok('admin.vm.property.Set', VM, 'provides_network', b'True')
    assert 'servicevm' in ok('admin.vm.feature.List', VM).split()
    ok('admin.vm.feature.Get', VM, 'servicevm', want='1')
    ok('admin.vm.property.Get', VM, 'icon',
       want='default=True type=str servicevm-red')
    ok('admin.vm.property.Reset', VM, 'provides_network')
    assert 'servicevm' not in ok('admin.vm.feature.List', VM).split()
    ok('admin.vm.property.Get', VM, 'icon',
       want='default=True type=str appvm-red')
    ok('admin.vm.property.Set', 'remote1', 'transport_rpc', b'qubes.Relay')
    ok('admin.vm.property.Get', 'remote1', 'transport_rpc',
       want='default=False type=str qubes.Relay')


def test_remove():
    # T test_503_vm_remove_dom0; S app.py on_domain_pre_deleted
    exc('admin.vm.Remove', 'dom0', name='QubesVMInUseError',
        msg="'dom0' cannot be removed")
    exc('admin.vm.Remove', TPL, name='QubesVMInUseError',
        msg="Domain is in use: 'test-template';  see 'journalctl -u qubesd "
        "-e' in dom0 for details")


# ---- properties ----

def test_vm_property_get():
    # T test_020 .. test_029
    ok('admin.vm.property.Get', VM, 'name',
       want='default=False type=str test-vm1')
    ok('admin.vm.property.Get', VM, 'vcpus', want='default=True type=int 2')
    ok('admin.vm.property.Get', VM, 'xid', want='default=True type=int -1')
    ok('admin.vm.property.Get', VM, 'provides_network',
       want='default=True type=bool False')
    ok('admin.vm.property.Get', VM, 'label', want='default=False type=label red')
    ok('admin.vm.property.Get', VM, 'template',
       want='default=False type=vm test-template')
    ok('admin.vm.property.Get', VM, 'netvm', want='default=True type=vm ')
    ok('admin.vm.property.GetDefault', VM, 'template', want='')
    ok('admin.vm.property.Get', VM, 'dns', want='default=True type=str ')
    ok('admin.vm.property.Set', VM, 'provides_network', b'True')
    ok('admin.vm.property.GetDefault', VM, 'provides_network',
       want='type=bool False')
    ok('admin.vm.property.Get', VM, 'dns',
       want='default=True type=str 10.139.1.1 10.139.1.2')
    ok('admin.vm.property.GetDefault', VM, 'dns',
       want='type=str 10.139.1.1 10.139.1.2')
    # S vm/mix/net.py: a qube providing network has an IP of its own
    qid = int(ok('admin.vm.property.Get', VM, 'qid').split()[-1])
    ok('admin.vm.property.Get', VM, 'ip',
       want='default=True type=str 10.137.0.%d' % qid)
    ok('admin.vm.property.Get', VM, 'gateway',
       want='default=True type=str 10.137.0.%d' % qid)
    ok('admin.vm.property.Reset', VM, 'provides_network', want='')
    # S vm/templatevm.py: a template has no network by default
    ok('admin.vm.property.Get', TPL, 'netvm', want='default=True type=vm ')
    ok('admin.vm.property.Help', VM, 'label', want='Colourful label assigned '
       'to VM. This is where the colour of the padlock is set.')  # T 050
    exc('admin.vm.property.Help', VM, 'no-such-property',
        name='QubesNoSuchPropertyError')  # T 052
    exc('admin.vm.property.Reset', VM, 'no-such-property',
        name='QubesNoSuchPropertyError')  # T 062


def test_vm_property_get_all():
    # T test_027_vm_property_get_all: '\n' and '\\' escaped
    ok('admin.vm.property.Set', VM, 'kernelopts', b'opt1\nopt2\nopt3\\opt4')
    lines = ok('admin.vm.property.GetAll', VM).splitlines()
    assert 'kernelopts default=False type=str opt1\\nopt2\\nopt3\\\\opt4' \
        in lines, lines
    assert 'label default=False type=label red' in lines
    assert 'qrexec_timeout default=True type=int 60' in lines
    assert 'debug default=True type=bool False' in lines
    assert 'updateable default=True type=bool False' in lines
    assert 'klass default=True type=str AppVM' in lines
    # T test_027: sorted(properties), by load stage then name: the
    # properties loaded last (kernelopts, netvm, ...) come last
    names = [line.split(' ', 1)[0] for line in lines]
    late = {'audiovm', 'bootmode', 'default_dispvm', 'guivm', 'kernelopts',
            'management_dispvm', 'netvm', 'template'}
    first = [n for n in names if n not in late]
    assert names == sorted(first) + sorted(late), names
    assert names.index('kernelopts') > names.index('updateable')
    ok('admin.vm.property.Reset', VM, 'kernelopts')
    # S vm/qubesvm.py: the properties master has
    props = ok('admin.vm.property.List', VM).split()
    for p in ('bootmode', 'devices_denied', 'keyboard_layout', 'stubdom_xid',
              'stubdom_uuid', 'ip6', 'gateway6', 'visible_ip',
              'visible_gateway', 'visible_netmask', 'template_for_dispvms'):
        assert p in props, p
    assert 'appvm_default_bootmode' in \
        ok('admin.vm.property.List', TPL).split()
    # S vm/adminvm.py: dom0's properties, in property_list()'s order
    # (__init__.py: by load stage, then name)
    ok('admin.vm.property.List', 'dom0',
       want='devices_denied\nicon\ninclude_in_backups\nkeyboard_layout\n'
       'klass\nlabel\nmaxmem\nname\nqid\nupdateable\nuuid\n'
       'default_dispvm\n')
    # S vm/qubesvm.py: rebootable and rebootable_threshold are gone
    for p in ('rebootable', 'rebootable_threshold'):
        assert p not in props, p
    ok('admin.vm.property.Get', 'dom0', 'icon',
       want='default=True type=str adminvm-black')
    # S utils.py format_doc: the docstrings as text, RST markup gone;
    # appvm.py's icon has none
    ok('admin.vm.property.Help', VM, 'default_dispvm',
       want='Default disposable template to be used for spawning '
       'disposable qubes for service calls.')
    ok('admin.vm.property.Help', VM, 'autostart',
       want='Setting this to True means that VM should be autostarted on '
       'dom0 boot.')
    ok('admin.vm.property.Help', VM, 'icon', want='')
    ok('admin.property.Help', 'dom0', 'management_dispvm',
       want='Default disposable template to be used for spawning '
       'disposable qubes for managing a qube in this system.')


def test_vm_property_set():
    # T test_030 .. test_043
    exc('admin.vm.property.Set', VM, 'netvm', b'forbidden-chars/../!',
        name='QubesValueError', msg='VM name contains illegal characters')
    exc('admin.vm.property.Set', VM, 'netvm', b'\x80\x90\xa0',
        name='QubesValueError', msg='')
    ok('admin.vm.property.Set', VM, 'autostart', b'True', want='')
    ok('admin.vm.property.Set', VM, 'autostart', b'False', want='')
    exc('admin.vm.property.Set', VM, 'autostart', b'some string',
        name='QubesValueError',
        msg="Invalid literal for boolean property: 'some string'")
    # S __init__.py property.sanitize: ASCII first, then the type
    exc('admin.vm.property.Set', VM, 'autostart', b'\x80\x90@#$%^&*(',
        name='QubesValueError', msg='Non-ASCII bytes in property value')
    ok('admin.vm.property.Set', VM, 'kernel', b'1.0', want='')
    exc('admin.vm.property.Set', VM, 'kernel', b'some, non-ASCII: \x80\xd2',
        name='QubesValueError')
    ok('admin.vm.property.Set', VM, 'maxmem', b'1024000', want='')
    exc('admin.vm.property.Set', VM, 'maxmem', b'fourty two',
        name='QubesValueError', msg='Failed to parse property value as int')
    # S __init__.py property.sanitize: Python's int, of any size
    ok('admin.vm.property.Set', VM, 'backup_timestamp',
       b'99999999999999999999', want='')
    ok('admin.vm.property.Get', VM, 'backup_timestamp',
       want='default=False type=int 99999999999999999999')
    ok('admin.vm.property.Reset', VM, 'backup_timestamp')
    exc('admin.vm.property.Set', VM, 'kernel', b'caf\xc3\xa9',
        name='QubesValueError', msg='Non-ASCII bytes in property value')
    ok('admin.vm.property.Set', VM, 'label', b'green', want='')
    ok('admin.vm.property.Get', VM, 'icon',
       want='default=True type=str appvm-green')
    ok('admin.vm.property.Set', VM, 'label', b'red')
    # S vm/__init__.py VMProperty.__set__
    exc('admin.vm.property.Set', VM, 'netvm', b'nonexistent',
        name='QubesPropertyValueError',
        msg="Can't set netvm to non-existing qube nonexistent")
    # S vm/mix/net.py _setter_netvm
    exc('admin.vm.property.Set', VM, 'netvm', TPL.encode(),
        name='QubesValueError',
        msg='The test-template qube does not provide network')
    # S vm/qubesvm.py _setter_kbd_layout
    exc('admin.vm.property.Set', VM, 'keyboard_layout', b'us',
        name='QubesPropertyValueError',
        msg='invalid number of keyboard layout parameters')
    for p in ('kernel', 'maxmem', 'autostart'):
        ok('admin.vm.property.Reset', VM, p, want='')  # T 060


def test_global_properties():
    # T test_400 .. test_450
    names = ok('admin.property.List', 'dom0').split()
    lines = ok('admin.property.GetAll', 'dom0').splitlines()
    want = [
        'check_updates_vm default=True type=bool True',
        'clockvm default=True type=vm ',
        'default_audiovm default=True type=vm dom0',
        'default_dispvm default=True type=vm ',
        'default_guivm default=True type=vm dom0',
        'default_kernel default=False type=str 1.0',
        'default_netvm default=False type=vm ',
        'default_pool_kernel default=False type=str linux-kernel',
        'default_pool_private default=True type=str varlibqubes',
        'default_pool_root default=True type=str varlibqubes',
        'default_pool_volatile default=True type=str varlibqubes',
        'default_qrexec_timeout default=True type=int 60',
        'default_shutdown_timeout default=True type=int 60',
        'default_template default=False type=vm test-template',
        'management_dispvm default=True type=vm ',
        'stats_interval default=True type=int 3',
        'updatevm default=True type=vm ',
    ]
    for w in want:
        assert w in lines, (w, lines)
    assert [line.split(' ', 1)[0] for line in lines] == sorted(names)
    # S app.py: default_rebootable and its threshold are gone
    assert 'default_rebootable' not in names
    assert 'default_rebootable_threshold' not in names
    assert any(re.fullmatch(r'maxmem default=True type=int \d+', line)
               for line in lines), lines
    assert any(re.fullmatch(r'no_cpus default=True type=int \d+', line)
               for line in lines), lines
    ok('admin.property.Get', 'dom0', 'default_kernel',
       want='default=False type=str 1.0')
    ok('admin.property.GetDefault', 'dom0', 'default_template', want='')
    ok('admin.property.GetDefault', 'dom0', 'updatevm', want='type=vm ')
    ok('admin.property.Set', 'dom0', 'default_kernel', b'1.0', want='')
    ok('admin.property.Help', 'dom0', 'clockvm',
       want='Which VM to use as NTP proxy for updating AdminVM')
    ok('admin.property.Reset', 'dom0', 'clockvm', want='')
    exc('admin.property.Set', 'dom0', 'maxmem', b'1',
        name='QubesPropertyValueError',
        msg="property 'maxmem' on Qubes instance cannot be set")
    # S app.py _setter_default_netvm and clockvm's service.clocksync
    ok('admin.property.Set', 'dom0', 'clockvm', TPL.encode())
    ok('admin.vm.feature.Get', TPL, 'service.clocksync', want='1')
    ok('admin.property.Reset', 'dom0', 'clockvm')
    ok('admin.vm.feature.Remove', TPL, 'service.clocksync')


# ---- features and tags ----

def test_features():
    # T test_280 .. test_325
    ok('admin.vm.feature.Set', VM, 'test-feature', b'some-value', want='')
    ok('admin.vm.feature.List', VM, want='test-feature\n')
    ok('admin.vm.feature.Get', VM, 'test-feature', want='some-value')
    ok('admin.vm.feature.CheckWithTemplate', VM, 'test-feature',
       want='some-value')
    ok('admin.vm.feature.CheckWithNetvm', VM, 'test-feature',
       want='some-value')
    ok('admin.vm.feature.Remove', VM, 'test-feature', want='')
    exc('admin.vm.feature.Get', VM, 'test-feature',
        name='QubesFeatureNotFoundError')
    exc('admin.vm.feature.Remove', VM, 'test-feature',
        name='QubesFeatureNotFoundError')
    exc('admin.vm.feature.CheckWithTemplate', VM, 'test-feature',
        name='QubesFeatureNotFoundError')
    exc('admin.vm.feature.CheckWithNetvm', VM, 'test-feature',
        name='QubesFeatureNotFoundError')
    ok('admin.vm.feature.Set', TPL, 'test-feature', b'some-value')
    ok('admin.vm.feature.CheckWithTemplate', VM, 'test-feature',
       want='some-value')
    ok('admin.vm.feature.Remove', TPL, 'test-feature')
    ok('admin.vm.feature.Set', 'dom0', 'test-feature', b'some-value')
    ok('admin.vm.feature.CheckWithAdminVM', VM, 'test-feature',
       want='some-value')
    ok('admin.vm.feature.CheckWithTemplateAndAdminVM', VM, 'test-feature',
       want='some-value')
    ok('admin.vm.feature.Set', TPL, 'test-feature', b'some-value2')
    ok('admin.vm.feature.CheckWithTemplateAndAdminVM', VM, 'test-feature',
       want='some-value2')
    ok('admin.vm.feature.Remove', TPL, 'test-feature')
    ok('admin.vm.feature.Remove', 'dom0', 'test-feature')
    ok('admin.vm.feature.Set', VM, 'test-feature', b'', want='')
    ok('admin.vm.feature.Get', VM, 'test-feature', want='')
    ok('admin.vm.feature.Remove', VM, 'test-feature')
    exc('admin.vm.feature.Set', VM, 'test-feature', b'\x02\x03\xffsome-value',
        name='ProtocolError')
    exc('admin.vm.feature.Set', VM, 'test-feature', '\u00f6'.encode(),
        name='ProtocolError', match='non-ASCII characters')
    exc('admin.vm.feature.Set', VM, 'a/b', b'', name='ProtocolError',
        match='illegal characters')
    exc('admin.vm.feature.Set', VM, 'x', b'a\nb', name='ProtocolError',
        msg='x value contains illegal characters')
    exc('admin.vm.feature.Set', VM, 'service.' + 'a' * 49, b'1',
        name='QubesValueError')
    exc('admin.vm.feature.Set', VM, 'service.', b'', name='QubesValueError')
    ok('admin.vm.feature.List', VM, want='')


def test_tags():
    # T test_530 .. test_562
    ok('admin.vm.tag.Set', VM, 'tag1', want='')
    ok('admin.vm.tag.Set', VM, 'tag2', want='')
    ok('admin.vm.tag.List', VM,
       want='audiovm-dom0\ncreated-by-dom0\nguivm-dom0\ntag1\ntag2\n')
    ok('admin.vm.tag.Get', VM, 'tag1', want='1')
    ok('admin.vm.tag.Remove', VM, 'tag1', want='')
    ok('admin.vm.tag.Get', VM, 'tag1', want='0')
    exc('admin.vm.tag.Remove', VM, 'tag1', name='QubesTagNotFoundError')
    exc('admin.vm.tag.Set', VM, '', name='ProtocolError',
        msg='expected an argument')
    exc('admin.vm.tag.Set', VM, '+', name='QubesInvalidTagError')
    ok('admin.vm.tag.Remove', VM, 'tag2')
    # S ext/gui.py: the tag follows guivm
    ok('admin.vm.property.Set', VM, 'guivm', TPL.encode())
    assert 'guivm-test-template' in ok('admin.vm.tag.List', VM).split()
    ok('admin.vm.property.Reset', VM, 'guivm')
    tags = ok('admin.vm.tag.List', VM).split()
    assert 'guivm-dom0' in tags and 'guivm-test-template' not in tags


# ---- labels ----

def test_labels():
    # T test_180 .. test_211
    ok('admin.label.List', 'dom0', want='red\norange\nyellow\ngreen\ngray\n'
       'blue\npurple\nblack\n')
    ok('admin.label.Get', 'dom0', 'red', want='0xcc0000')
    ok('admin.label.Index', 'dom0', 'red', want='1')
    ok('admin.label.Create', 'dom0', 'cyan', b'0x00ffff', want='')
    ok('admin.label.Index', 'dom0', 'cyan', want='9')
    for colour, why in (('\u00f6'.encode(), 'encoded in ASCII'),
                        (b'0x00fffff', 'length of 8'),
                        (b'0X00ffff', 'must start with: 0x'),
                        (b'0x00fffg', 'hexadecimal digits after prefix')):
        exc('admin.label.Create', 'dom0', 'cyan2', colour,
            name='QubesInvalidLabelValueError', match=why)
    # T test_200 asserts ProtocolError: master answers its subclass
    for name in ('01', '../xxx', 'strange-name!@#$'):
        exc('admin.label.Create', 'dom0', name, b'0xff0000',
            name='QubesInvalidLabelError')
    exc('admin.label.Create', 'dom0', 'red', b'0xff0000',
        name='QubesLabelInUseError')
    ok('admin.vm.property.Set', VM, 'label', b'cyan')
    exc('admin.label.Remove', 'dom0', 'cyan', name='QubesLabelInUseError')
    ok('admin.vm.property.Set', VM, 'label', b'red')
    ok('admin.label.Remove', 'dom0', 'cyan', want='')
    exc('admin.label.Remove', 'dom0', 'no-such-label',
        name='QubesLabelNotFoundError')
    exc('admin.label.Remove', 'dom0', 'blue', name='ProtocolError')
    exc('admin.label.Get', 'dom0', 'no-such-label',
        name='QubesLabelNotFoundError')


# ---- pools ----

def test_pools():
    # T test_130 .. test_170, test_700 .. test_704, test_800
    ok('admin.pool.List', 'dom0', want='varlibqubes\nlinux-kernel\n')
    # S storage/__init__.py driver_parameters: __init__'s keyword order
    ok('admin.pool.ListDrivers', 'dom0', want='file-reflink revisions_to_keep '
       'dir_path setup_check ephemeral_volatile\nlinux-kernel dir_path\n')
    # T test_152, S storage/kernels.py included_in: vm-kernels is in
    # varlibqubes' folder
    info = ok('admin.pool.Info', 'dom0', 'linux-kernel')
    assert info == 'dir_path=%s/vm-kernels\ndriver=linux-kernel\n' \
        'name=linux-kernel\nincluded_in=varlibqubes\n' % state['base'], info
    info = ok('admin.pool.Info', 'dom0', 'varlibqubes').splitlines()
    assert info[:2] == ['dir_path=%s' % state['base'],
                        'driver=file-reflink'], info
    keys = [line.split('=', 1)[0] for line in info]
    assert keys[:-2] == sorted(keys[:-2]) and keys[-2:] == ['size', 'usage']
    usage = ok('admin.pool.UsageDetails', 'dom0', 'varlibqubes')
    assert re.fullmatch(r'data_size=\d+\ndata_usage=\d+\n', usage), usage
    exc('admin.pool.Info', 'dom0', 'no-such-pool', name='PermissionDenied')
    path = os.path.join(state['fs'].mnt, 'pools', 'test-pool')
    ok('admin.pool.Add', 'dom0', 'file-reflink',
       ('name=test-pool\ndir_path=%s\n' % path).encode(), want='')
    # T test_150: a pool in no other's folder has no included_in
    assert 'included_in' not in ok('admin.pool.Info', 'dom0', 'test-pool')
    # S storage/__init__.py search_pool_containing_dir: links resolved
    inner = os.path.join(state['base'], 'inner-pool')
    link = os.path.join(state['fs'].mnt, 'pools', 'inner-link')
    os.makedirs(inner)
    os.symlink(inner, link)
    ok('admin.pool.Add', 'dom0', 'file-reflink',
       ('name=inner\ndir_path=%s\n' % link).encode(), want='')
    assert ok('admin.pool.Info', 'dom0', 'inner').endswith(
        'included_in=varlibqubes\n')
    ok('admin.pool.Remove', 'dom0', 'inner', want='')
    os.unlink(link)
    exc('admin.pool.Add', 'dom0', 'no-such-driver',
        b'name=test-pool2\nparam1=some-value\n', name='PermissionDenied')
    exc('admin.pool.Add', 'dom0', 'file-reflink',
        b'name=test-pool2\nparam3=some-value\n', name='ProtocolError')
    exc('admin.pool.Add', 'dom0', 'file-reflink', b'name=test-pool2\n',
        name='QubesException')
    exc('admin.pool.Add', 'dom0', 'file-reflink',
        ('name=test-pool\ndir_path=%s\n' % path).encode(),
        name='QubesPoolInUseError')
    exc('admin.pool.Add', 'dom0', 'file-reflink',
        b'name=test-pool2\nparam 1=value\n_param2\n', name='ProtocolError')
    exc('admin.pool.Add', 'dom0', 'file-reflink', b'dir_path=/x\n',
        name='ProtocolError')
    exc('admin.pool.Add', 'dom0', 'file-reflink',
        'name=test-pool2\ndir_path=\u00f6\n'.encode(), name='ProtocolError')
    ok('admin.pool.Set.revisions_to_keep', 'dom0', 'test-pool', b'2',
       want='')
    ok('admin.pool.Set.revisions_to_keep', 'dom0', 'test-pool', b'-1')
    exc('admin.pool.Set.revisions_to_keep', 'dom0', 'test-pool', b'-2',
        name='ProtocolError', msg='Invalid value for revisions_to_keep')
    exc('admin.pool.Set.revisions_to_keep', 'dom0', 'test-pool', b'abc',
        name='ProtocolError')
    ok('admin.pool.Set.ephemeral_volatile', 'dom0', 'test-pool', b'true',
       want='')
    exc('admin.pool.Set.ephemeral_volatile', 'dom0', 'test-pool', b'abc',
        name='ProtocolError', msg='Payload is not boolean ASCII')
    # S storage/kernels.py: the kernel pool (LinuxKernel) keeps no
    # revisions
    exc('admin.pool.Set.revisions_to_keep', 'dom0', 'linux-kernel', b'1',
        name='QubesValueError',
        msg='LinuxKernel supports only revisions_to_keep=0')
    ok('admin.pool.volume.List', 'dom0', 'test-pool', want='')
    ok('admin.vm.CreateInPool.StandaloneVM', 'dom0', '',
       b'name=inpool label=red pool=test-pool')
    ok('admin.pool.volume.List', 'dom0', 'test-pool',
       want='appvms/inpool/root\nappvms/inpool/private\n'
       'appvms/inpool/volatile\n')
    # S app.py remove_pool
    exc('admin.pool.Remove', 'dom0', 'test-pool', name='QubesPoolInUseError')
    ok('admin.vm.Remove', 'inpool')
    ok('admin.pool.Remove', 'dom0', 'test-pool', want='')
    exc('admin.pool.Remove', 'dom0', 'no-such-pool', name='PermissionDenied')
    exc('admin.pool.Remove', 'dom0', 'varlibqubes', name='QubesPoolInUseError')


# ---- volumes ----

def test_volumes():
    # T test_070 .. test_120, test_710 .. test_726, test_810
    ok('admin.vm.volume.List', VM, want='root\nprivate\nvolatile\nkernel\n')
    info = ok('admin.vm.volume.Info', VM, 'private').splitlines()
    assert info[:12] == [
        'pool=varlibqubes', 'vid=appvms/test-vm1/private',
        'size=%d' % (2 << 30), 'usage=0', 'rw=True', 'source=',
        # S storage/reflink.py: a volume's path is its dirty image's
        'path=%s/appvms/test-vm1/private-dirty.img' % state['base'],
        'save_on_stop=True', 'snap_on_start=False', 'revisions_to_keep=1',
        'ephemeral=False', 'is_outdated=False'], info
    # D shared= and exclusive= follow (reflink space accounting)
    assert [line.split('=')[0] for line in info[12:]] == ['shared',
                                                          'exclusive']
    # S storage/kernels.py LinuxModules: size and usage 0, read-only
    ok('admin.vm.volume.Info', VM, 'kernel', want=(
        'pool=linux-kernel\nvid=1.0\nsize=0\nusage=0\nrw=False\nsource=\n'
        'path=%s/vm-kernels/1.0/modules.img\nsave_on_stop=False\n'
        'snap_on_start=False\nrevisions_to_keep=0\nephemeral=False\n'
        'is_outdated=False\n' % state['base']))
    # S vm/appvm.py: root is a writable snapshot of the template's;
    # config.defaults: volatile is 10 GiB
    root = ok('admin.vm.volume.Info', VM, 'root').splitlines()
    assert 'rw=True' in root and 'snap_on_start=True' in root
    assert 'source=vm-templates/test-template/root' in root
    assert 'size=%d' % (10 << 30) in \
        ok('admin.vm.volume.Info', VM, 'volatile').splitlines()
    exc('admin.vm.volume.Info', VM, 'no-such-volume',
        name='PermissionDenied', msg="Argument not in 'test-vm1 volumes'")
    ok('admin.vm.volume.ListSnapshots', VM, 'private', want='')
    exc('admin.vm.volume.ListSnapshots', VM, 'no-such-volume',
        name='PermissionDenied')
    exc('admin.vm.volume.Resize', VM, 'private', b'no-int-size',
        name='ProtocolError', msg='Volume size contains non ASCII digits')
    exc('admin.vm.volume.Resize', VM, 'private', b'-1',
        name='ProtocolError', msg='Volume size contains non ASCII digits')
    exc('admin.vm.volume.Resize', VM, 'private', b'10000000000000000000',
        name='ProtocolError', msg='Volume size is bigger than 19 decimal digits')
    exc('admin.vm.volume.Resize', VM, 'private', b'01',
        name='ProtocolError', msg='Volume size contains spurious leading zeros')
    ok('admin.vm.volume.Resize', VM, 'private', b'%d' % (3 << 30), want='')
    assert 'size=%d' % (3 << 30) in \
        ok('admin.vm.volume.Info', VM, 'private').splitlines()
    ok('admin.vm.volume.Set.revisions_to_keep', VM, 'private', b'2', want='')
    ok('admin.vm.volume.Set.revisions_to_keep', VM, 'private', b'-1')
    exc('admin.vm.volume.Set.revisions_to_keep', VM, 'private', b'-2',
        name='QubesValueError', msg='Invalid value for revisions_to_keep')
    exc('admin.vm.volume.Set.revisions_to_keep', VM, 'private', b'abc',
        name='ProtocolError')
    ok('admin.vm.volume.Set.revisions_to_keep', VM, 'private', b'1')
    ok('admin.vm.volume.Set.rw', VM, 'private', b'True', want='')
    exc('admin.vm.volume.Set.rw', VM, 'private', b'abc',
        name='ProtocolError', msg='Payload is not boolean ASCII')
    ok('admin.vm.volume.Set.ephemeral', VM, 'volatile', b'True', want='')
    assert 'ephemeral=True' in \
        ok('admin.vm.volume.Info', VM, 'volatile').splitlines()
    ok('admin.vm.volume.Set.ephemeral', VM, 'volatile', b'False')
    exc('admin.vm.volume.Set.ephemeral', VM, 'volatile', b'abc',
        name='ProtocolError', msg='Payload is not boolean ASCII')
    exc('admin.vm.volume.Set.rw', VM, 'kernel', b'True',
        name='QubesValueError',
        msg='LinuxModules supports only read-only volumes')
    exc('admin.vm.volume.Set.revisions_to_keep', VM, 'kernel', b'1',
        name='QubesValueError',
        msg='LinuxModules supports only revisions_to_keep=0')
    ok('admin.vm.volume.Clear', VM, 'private', want='')
    revs = ok('admin.vm.volume.ListSnapshots', VM, 'private').split()
    assert len(revs) == 1, revs
    ok('admin.vm.volume.Revert', VM, 'private', revs[0].encode(), want='')
    # D master drops the connection (a KeyError there)
    exc('admin.vm.volume.Revert', VM, 'private', b'no-such-rev',
        name='QubesVolumeRevisionNotFoundError',
        msg="No such revision of volume private of test-vm1: 'no-such-rev'")


def test_clone():
    # T test_520 .. test_525
    ok('admin.vm.Create.StandaloneVM', 'dom0', '', b'name=test-vm2 label=red')
    token = ok('admin.vm.volume.CloneFrom', VM, 'private')
    assert re.fullmatch(r'[A-Za-z0-9]{32}', token), token
    ok('admin.vm.volume.CloneTo', 'test-vm2', 'private', token.encode(),
       want='')
    exc('admin.vm.volume.CloneFrom', VM, 'private123',
        name='PermissionDenied')
    token = ok('admin.vm.volume.CloneFrom', VM, 'private')
    exc('admin.vm.volume.CloneTo', VM, 'private123', token.encode(),
        name='PermissionDenied')
    exc('admin.vm.volume.CloneTo', VM, 'private',
        token.encode() + '\u00f6'.encode(), name='ProtocolError')
    exc('admin.vm.volume.CloneTo', VM, 'private', b'no-such-token',
        name='QubesVolumeCopyTokenNotFoundError',
        msg="'Token to clone volume of qube was not found'")
    ok('admin.vm.Remove', 'test-vm2')


# ---- notes ----

def test_notes():
    # T test_notes_get, test_notes_set
    ok('admin.vm.notes.Get', VM, want='')
    ok('admin.vm.notes.Set', VM, '', b'For Your Eyes Only', want='')
    ok('admin.vm.notes.Get', VM, want='For Your Eyes Only')
    text = b'def python_example_function():\n\tpass'
    ok('admin.vm.notes.Set', VM, '', text)
    ok('admin.vm.notes.Get', VM, want=text.decode())
    ok('admin.vm.notes.Set', VM, '', '\b\xa0\u200b\u200c\u200d'.encode())
    ok('admin.vm.notes.Get', VM, want='_____')
    exc('admin.vm.notes.Set', VM, '', b'\xd8', name='ProtocolError',
        match='^Unable to sanitise qube notes: ')
    ok('admin.vm.notes.Set', VM, '', b'')


# ---- firewall ----

def events_during(action, until, timeout=30):
    """The events admin.Events streams while @action runs, read until
    @until(events) holds."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(state['d'].sock)
    s.sendall(b'admin.Events+ dom0 name dom0\0')
    s.shutdown(socket.SHUT_WR)
    head = b'1\0\0connection-established\0\0'
    buf = b''
    while len(buf) < len(head):
        chunk = s.recv(4096)
        assert chunk, buf
        buf += chunk
    assert buf.startswith(head), buf
    buf = buf[len(head):]
    action()
    events = []
    while not until(events):
        chunk = s.recv(4096)
        assert chunk, events
        buf += chunk
        got, buf = parse_events(buf)
        events += got
    s.close()
    return events


def firewall_file():
    return os.path.join(state['base'], 'appvms', VM, 'firewall.xml')


def test_firewall():
    # T test_570_firewall_get: the default rules, no file written
    ok('admin.vm.firewall.Get', VM, want='action=accept\n')
    assert not os.path.exists(firewall_file())
    # T test_570_firewall_get_invalid_dest
    exc('admin.vm.firewall.Get', 'dom0', name='ProtocolError',
        msg='expected destination to not be AdminVM')
    # T test_580_firewall_set_simple
    ok('admin.vm.firewall.Set', VM, '', b'action=accept\n', want='')
    ok('admin.vm.firewall.Get', VM, want='action=accept\n')
    # T test_581_firewall_set_multi, test_571_firewall_get_non_default:
    # the reference's order (action, expire; dsthost, proto,
    # specialtarget; dstports, icmptype), comment last, an expired rule
    # not shown
    ok('admin.vm.firewall.Set', VM, '',
       b'action=accept proto=tcp dstports=1-1024\n'
       b'action=drop proto=icmp comment=No ICMP\n'
       b'action=drop expire=1499450306 proto=udp\n'
       b'action=drop proto=udp expire=2099450306\n'
       b'action=accept\n', want='')
    ok('admin.vm.firewall.Get', VM,
       want='action=accept proto=tcp dstports=1-1024\n'
            'action=drop proto=icmp comment=No ICMP\n'
            'action=drop expire=2099450306 proto=udp\n'
            'action=accept\n')
    # S firewall.py: an address with its prefix (DstHost.rule names its
    # type), a single port as a range, the options in the reference's
    # order
    ok('admin.vm.firewall.Set', VM, '',
       b'action=accept dstports=443 proto=tcp dst4=192.168.0.1\n'
       b'action=accept dst6=2001:db8::/32 proto=udp dstports=53-53\n'
       b'action=accept specialtarget=dns\n'
       b'action=accept proto=icmp icmptype=8 dsthost=example.com\n'
       b'action=drop\n')
    ok('admin.vm.firewall.Get', VM,
       want='action=accept dst4=192.168.0.1/32 proto=tcp '
            'dstports=443-443\n'
            'action=accept dst6=2001:db8::/32 proto=udp '
            'dstports=53-53\n'
            'action=accept specialtarget=dns\n'
            'action=accept dsthost=example.com proto=icmp icmptype=8\n'
            'action=drop\n')
    with open(firewall_file(), 'rb') as f:
        saved = f.read()
    # T test_582..584 (ValueError there, answered here: the README's
    # deliberate differences): an unknown option, no action, a rule
    # running into the next; nothing saved
    for bad, why in [
            (b'action=accept protoxyz=tcp dst4=127.0.0.1\naction=drop\n',
             'Unknown firewall option'),
            (b'proto=tcp dstports=1-1024\naction=drop\n',
             "Required property 'action' not set"),
            (b'action=accept proto=tcp dstports=1-1024 action=drop\n',
             "Option 'action' already set"),
            (b'action=accept dstports=1-1024\n', 'dstports'),
            (b'action=accept proto=udp icmptype=8\n', 'icmptype'),
            (b'action=accept dst4=10.0.0.1/33\n',
             '^netmask for IPv4 must be <= 32$'),
            (b'action=accept dstports=0-65537 proto=tcp\n', ''),
            (b'action=accept  proto=tcp\n', ''),
            (b'action=accept comment=a\x07b\n', 'strange characters'),
            (b'action=accept dsthost=../../etc\n', ''),
    ]:
        exc('admin.vm.firewall.Set', VM, '', bad, name='QubesValueError',
            match=why)
        with open(firewall_file(), 'rb') as f:
            assert f.read() == saved, bad
    # T test_585_firewall_set_invalid: not ASCII
    exc('admin.vm.firewall.Set', VM, '',
        'action=accept dstports=1-1024 comment=ążźł\naction=drop\n'
        .encode(), name='ProtocolError')
    exc('admin.vm.firewall.Set', VM, 'arg', b'action=accept\n',
        name='ProtocolError', msg='unexpected argument')
    with open(firewall_file(), 'rb') as f:
        assert f.read() == saved
    # T test_590_firewall_reload: firewall-changed, nothing saved; Set
    # fires it too (Firewall.save)
    for method, payload in [('admin.vm.firewall.Reload', b''),
                            ('admin.vm.firewall.Set', b'action=accept\n')]:
        events = events_during(
            lambda: ok(method, VM, '', payload, want=''),
            lambda ev: any(e[:2] == (VM, 'firewall-changed') for e in ev))
        assert [e for e in events if e[1] == 'firewall-changed'] == \
            [(VM, 'firewall-changed', {})], events
    exc('admin.vm.firewall.Reload', VM, '', b'x', name='ProtocolError',
        msg='unexpected payload')
    # S firewall.py Firewall.save: version 2 of firewall.xml
    with open(firewall_file(), 'rb') as f:
        assert f.read() == (
            b"<?xml version='1.0' encoding='UTF-8'?>\n"
            b'<firewall version="2">\n'
            b'  <rules>\n'
            b'    <rule>\n'
            b'      <properties>\n'
            b'        <property name="action">accept</property>\n'
            b'      </properties>\n'
            b'    </rule>\n'
            b'  </rules>\n'
            b'</firewall>\n')


# ---- devices ----

def loop_device():
    """A loop device of the host (dom0's block device), made once."""
    if 'loop' not in state:
        # outside the test filesystem, which goes before after() runs
        state['loop_dir'] = tempfile.mkdtemp(prefix='qubes-test-dev-')
        img = os.path.join(state['loop_dir'], 'dev.img')
        subprocess.run(['truncate', '-s', '8M', img], check=True)
        loop = subprocess.run(['losetup', '-f', '--show', img],
                              capture_output=True, text=True,
                              check=True).stdout.strip()
        state['loop'] = loop
        state['loop_img'] = img
    return os.path.basename(state['loop'])


def after():
    if state.get('loop'):
        subprocess.run(['losetup', '-d', state['loop']])
    if state.get('loop_dir'):
        subprocess.run(['rm', '-rf', state['loop_dir']])


def test_devices():
    port = loop_device()
    img = state['loop_img']
    dev = 'dom0+' + port
    # S setup.py (qubes.devices entry points): pci, block
    ok('admin.deviceclass.List', 'dom0', want='pci\nblock\n')
    exc('admin.deviceclass.List', VM, name='ProtocolError')
    # T test_460..462, S ext/block.py: dom0's loop device, its identity
    # the file behind it; one port; no such port
    line = ('%s:%s device_id=\'%s\' port_id=\'%s\' devclass=\'block\' '
            'backend_domain=\'dom0\' name=\'%s\' interfaces=\'b******\' '
            "_size='8388608' _mode='w'\n" % (port, img, img, port, img))
    assert line in ok('admin.vm.device.block.Available', 'dom0')
    ok('admin.vm.device.block.Available', 'dom0', port, want=line)
    ok('admin.vm.device.block.Available', 'dom0', 'no-such-device', want='')
    # a qube exposes nothing (no agents here)
    ok('admin.vm.device.block.Available', VM, want='')
    # T test_470, 471, 473: assigned, with options, one of them
    ok('admin.vm.device.block.Assign', VM, dev, b"mode='required'", want='')
    ok('admin.vm.device.block.Assigned', VM,
       want="dom0+%s:* device_id='*' port_id='%s' devclass='block' "
            "backend_domain='dom0' mode='required'\n" % (port, port))
    exc('admin.vm.device.block.Assign', VM, dev, b"mode='required'",
        name='DeviceAlreadyAssigned')
    # T test_489, 4890: several identities on one port, any port
    ok('admin.vm.device.block.Assign', VM, dev + '+dead',
       b"mode='auto-attach' _read-only='yes'")
    ok('admin.vm.device.block.Assign', VM, 'dom0+_+dead',
       b"mode='auto-attach'")
    # sorted by BACKEND+PORT:ID ('*' before letters)
    got = ok('admin.vm.device.block.Assigned', VM)
    assert got.splitlines() == [
        "dom0+*:dead device_id='dead' port_id='*' devclass='block' "
        "backend_domain='dom0' mode='auto-attach'",
        "dom0+%s:* device_id='*' port_id='%s' devclass='block' "
        "backend_domain='dom0' mode='required'" % (port, port),
        "dom0+%s:dead device_id='dead' port_id='%s' devclass='block' "
        "backend_domain='dom0' mode='auto-attach' _read-only='yes'"
        % (port, port)], got
    ok('admin.vm.device.block.Assigned', VM, 'dom0+*',
       want="dom0+*:dead device_id='dead' port_id='*' devclass='block' "
            "backend_domain='dom0' mode='auto-attach'\n")
    # T test_481: the device's own identity written the qrexec way
    ok('admin.vm.device.block.Unassign', VM, dev)
    enc = img.replace(':', '+')
    enc = ''.join(c if c.isalnum() or c in '._-+' else '_' for c in enc)
    ok('admin.vm.device.block.Assign', VM, dev + '+' + enc,
       b"mode='auto-attach'")
    assert "device_id='%s'" % img in ok('admin.vm.device.block.Assigned',
                                          VM, dev)
    # S devices.py: Set.assignment
    ok('admin.vm.device.block.Set.assignment', VM, dev + '+' + enc,
       b'required')
    assert "mode='required'" in ok('admin.vm.device.block.Assigned', VM, dev)
    exc('admin.vm.device.block.Set.assignment', VM, dev + '+' + enc,
        b'manual', name='PermissionDenied')
    # T test_654: QubesValueError
    exc('admin.vm.device.block.Set.assignment', VM, dev + '+beef',
        b'required', name='QubesValueError',
        msg='Device %s:beef not assigned to %s' % (dev.replace('+', ':'),
                                                      VM))
    # the payload must name the device the argument names
    for payload, why in [
            (b"mode='required' backend_domain='other'", 'exposed by'),
            (b"mode='required' port_id='loop99'", 'expected port'),
            (b"mode='required' devclass='pci'", 'when expected block'),
            (b"mode='wanted'", 'AssignmentMode'),
            (b"mode='required' color='red'", 'unexpected keyword'),
            (b"mode='required\x07'", 'Invalid chars'),
            ('mode=\'r\u00e9quired\''.encode(), 'codec'),
    ]:
        exc('admin.vm.device.block.Assign', VM, dev + '+other', payload,
            name='ProtocolError', match=why)
    exc('admin.vm.device.block.Assign', VM, dev + '+other',
        b"mode='required' _speed='fast'", name='QubesValueError',
        msg='Unsupported option speed')
    exc('admin.vm.device.block.Assign', VM, dev + '+other',
        b"mode='required' _frontend-dev='hda'", name='QubesValueError',
        msg='Invalid frontend-dev option value: hda')
    exc('admin.vm.device.block.Assign', VM, dev + '+other',
        b"mode='manual'", name='QubesValueError')
    # hostile identities: no traversal (a control byte in an argument
    # is refused with the request, as for every method)
    for arg in ('dom0+../../etc', 'dom0+loop0/..', 'dom0+..', 'dom0',
                'dom0+', 'nosuch+loop0'):
        r = call('admin.vm.device.block.Assign', VM, arg, b"mode='required'")
        assert r[0] == 'exc' and r[1] in ('ProtocolError',
                                          'QubesVMNotFoundError'), (arg, r)
    assert call('admin.vm.device.block.Assign', VM, 'dom0+lo\x01op',
                b"mode='required'")[0] in ('drop', 'exc')
    # T test_484: attach to a halted qube
    exc('admin.vm.device.block.Attach', VM, dev + '+' + enc, b'',
        name='QubesVMNotRunningError',
        msg='VM not running, cannot attach device, do you mean `assign`?')
    # T test_495, 497: detach what is not attached
    exc('admin.vm.device.block.Detach', VM, dev + '+_',
        name='DeviceNotAssigned')
    exc('admin.vm.device.block.Detach', VM, dev, name='DeviceNotAssigned')
    ok('admin.vm.device.block.Attached', VM, want='')
    # T test_490..493: unassign; not assigned
    ok('admin.vm.device.block.Unassign', VM, dev + '+dead')
    ok('admin.vm.device.block.Unassign', VM, 'dom0+_+dead')
    exc('admin.vm.device.block.Unassign', VM, 'dom0+_+dead',
        name='DeviceNotAssigned')
    # kept in qubes.xml as master's <devices> and loaded back
    with open(os.path.join(state['base'], 'qubes.xml')) as f:
        xml = f.read()
    assert ('<devices class="block">\n        <device backend-domain="dom0" '
            'id="%s" device_id="%s" mode="required"/>\n      </devices>'
            % (port, img)) in xml, xml
    before = ok('admin.vm.device.block.Assigned', VM)
    state['d'].stop()
    state['d'].start()
    assert ok('admin.vm.device.block.Assigned', VM) == before
    ok('admin.vm.device.block.Unassign', VM, dev + '+' + enc)
    # pci: dom0's PCI devices from sysfs; assigned, hvm follows (seed)
    pcis = sorted(os.listdir('/sys/bus/pci/devices'))
    avail = ok('admin.vm.device.pci.Available', 'dom0')
    assert len(avail.splitlines()) == len(pcis), (avail, pcis)
    first = pcis[0]
    dom_, bus, rest = first.split(':')
    pport = ('%s_%s' % (bus, rest)) if dom_ == '0000' else \
        '%s_%s_%s' % (dom_, bus, rest)
    with open('/sys/bus/pci/devices/%s/vendor' % first) as f:
        vendor = f.read().strip()[2:]
    assert avail.startswith(pport + ':' + vendor + ':'), avail
    assert ok('admin.vm.property.Get', VM, 'virt_mode') == \
        'default=True type=str pvh'
    ok('admin.vm.device.pci.Assign', VM, 'dom0+' + pport,
       b"mode='required' _no-strict-reset='yes'")
    assert ok('admin.vm.property.Get', VM, 'virt_mode') == \
        'default=True type=str hvm'
    assert "_no-strict-reset='True'" in ok('admin.vm.device.pci.Assigned',
                                           VM)
    exc('admin.vm.property.Set', VM, 'virt_mode', b'pvh',
        name='QubesPropertyValueError')
    ok('admin.vm.device.pci.Attached', VM, want='')
    exc('admin.vm.device.pci.Attach', VM, 'dom0+' + pport, b'',
        name='QubesVMNotRunningError')
    exc('admin.vm.device.pci.Detach', VM, 'dom0+' + pport,
        name='DeviceNotAssigned')
    ok('admin.vm.device.pci.Set.assignment', VM, 'dom0+' + pport,
       b'auto-attach')
    assert "mode='auto-attach'" in ok('admin.vm.device.pci.Assigned', VM)
    ok('admin.vm.device.pci.Unassign', VM, 'dom0+' + pport)
    assert ok('admin.vm.property.Get', VM, 'virt_mode') == \
        'default=True type=str pvh'
    # T test_502: a qube whose devices are assigned elsewhere stays
    ok('admin.vm.Create.AppVM', 'dom0', TPL, b'name=backend label=red')
    ok('admin.vm.device.block.Assign', VM, 'backend+xvdz',
       b"mode='auto-attach'")
    exc('admin.vm.Remove', 'backend', name='QubesVMInUseError',
        msg='VM has devices assigned to other VMs: xvdz')
    ok('admin.vm.device.block.Unassign', VM, 'backend+xvdz')
    ok('admin.vm.Remove', 'backend')
    # S admin.py vm_device_denied_*: the deny list
    ok('admin.vm.device.denied.List', VM, want='')
    ok('admin.vm.device.denied.Add', VM, '', b'u03**01b******')
    ok('admin.vm.device.denied.List', VM, want='b******\nu03**01')
    ok('admin.vm.device.denied.Add', VM, '', b'b******')
    exc('admin.vm.device.denied.Add', VM, '', b'p0e****p0e****',
        name='QubesValueError', msg='Duplicated device interfaces in payload.')
    ok('admin.vm.device.denied.Remove', VM, '', b'u03**01p0e****')
    ok('admin.vm.device.denied.List', VM, want='b******')
    ok('admin.vm.device.denied.Remove', VM, '', b'all')
    ok('admin.vm.device.denied.List', VM, want='')


def test_keyboard_layout_follows_the_guivm():
    # S ext/gui.py: a GUI qube's keyboard_layout changed fires
    # property-reset:keyboard_layout (with the old value) on the qubes
    # whose guivm it is and whose own layout is the default, which
    # follows the GUI qube's; one with a layout of its own hears nothing
    ok('admin.vm.Create.AppVM', 'dom0', TPL, b'name=kbd-gui label=red')
    ok('admin.vm.Create.AppVM', 'dom0', TPL, b'name=kbd-own label=red')
    try:
        for vm in (VM, 'kbd-own'):
            ok('admin.vm.property.Set', vm, 'guivm', b'kbd-gui')
        ok('admin.vm.property.Set', 'kbd-own', 'keyboard_layout', b'fr++')
        events = events_during(
            lambda: ok('admin.vm.property.Set', 'kbd-gui', 'keyboard_layout',
                       b'de++'),
            lambda ev: any(e[1] == 'property-set:keyboard_layout'
                           for e in ev))
        got = [e for e in events if 'keyboard_layout' in e[1]]
        assert got == [
            ('kbd-gui', 'property-pre-set:keyboard_layout',
             {'name': 'keyboard_layout', 'newvalue': 'de++',
              'oldvalue': 'us++'}),
            (VM, 'property-reset:keyboard_layout',
             {'name': 'keyboard_layout', 'oldvalue': 'us++'}),
            ('kbd-gui', 'property-set:keyboard_layout',
             {'name': 'keyboard_layout', 'newvalue': 'de++',
              'oldvalue': 'us++'})], got
        ok('admin.vm.property.Get', VM, 'keyboard_layout',
           want='default=True type=str de++')
        # the same value again: nothing told
        events = events_during(
            lambda: ok('admin.vm.property.Set', 'kbd-gui', 'keyboard_layout',
                       b'de++'),
            lambda ev: any(e[1] == 'property-set:keyboard_layout'
                           for e in ev))
        assert [e for e in events if e[1].startswith('property-reset')] == []
    finally:
        ok('admin.vm.property.Reset', VM, 'guivm')
        for vm in ('kbd-own', 'kbd-gui'):
            ok('admin.vm.Remove', vm)


def test_device_events():
    port = loop_device()
    dev = 'dom0+' + port
    # S devices.py: device-assign:CLASS, device-unassign:CLASS with the
    # device as str() gives it (BACKEND:PORT:ID) and the options as a dict
    events = events_during(
        lambda: (ok('admin.vm.device.block.Assign', VM, dev,
                    b"mode='required' _read-only='yes'"),
                 ok('admin.vm.device.block.Unassign', VM, dev)),
        lambda ev: any(e[1] == 'device-unassign:block' for e in ev))
    got = [e for e in events if e[1].startswith('device-')]
    assert got == [
        (VM, 'device-assign:block',
         {'device': 'dom0:%s:*' % port, 'options': "{'read-only': 'yes'}"}),
        (VM, 'device-unassign:block', {'device': 'dom0:%s:*' % port})], got
    # S ext/block.py: a new block device of dom0 is
    # device-list-change:block on dom0 (qubesd looks every 2 s)
    img = os.path.join(state['loop_dir'], 'second.img')
    subprocess.run(['truncate', '-s', '4M', img], check=True)
    made = []

    def plug():
        made.append(subprocess.run(['losetup', '-f', '--show', img],
                                   capture_output=True, text=True,
                                   check=True).stdout.strip())
    # S ext/utils.py device_list_change: then device-added:block with the
    # device, and device-removed:block with the port when it goes (other
    # loop devices of the host may come and go meanwhile)
    def added(ev):
        return made and ('dom0', 'device-added:block', {
            'device': 'dom0:%s:%s' % (os.path.basename(made[0]), img)}) in ev

    try:
        events = events_during(plug, added, timeout=30)
        new = os.path.basename(made[0])
        dom0 = [e for e in events if e[0] == 'dom0']
        assert dom0[0] == ('dom0', 'device-list-change:block', {}), events
        assert added(dom0), events
        gone = ('dom0', 'device-removed:block', {'port': 'dom0:' + new})
        events = events_during(
            lambda: subprocess.run(['losetup', '-d', made.pop()],
                                   check=True),
            lambda ev: gone in ev, timeout=30)
        dom0 = [e for e in events if e[0] == 'dom0']
        assert dom0[0] == ('dom0', 'device-list-change:block', {}), events
        assert gone in dom0, events
    finally:
        for m in made:
            subprocess.run(['losetup', '-d', m])


# ---- events ----

def test_events():
    # T test_270_events: the confirmation first, then the qubes' events;
    # S app.py: the qubes following default_netvm hear property-reset:netvm
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(state['d'].sock)
    covered.add('admin.Events')
    s.sendall(b'admin.Events+ dom0 name dom0\0')
    s.shutdown(socket.SHUT_WR)
    buf = b''
    while not buf.startswith(b'1\0\0connection-established\0\0'):
        chunk = s.recv(4096)
        assert chunk, buf
        buf += chunk
        if len(buf) > 64:
            break
    assert buf.startswith(b'1\0\0connection-established\0\0'), buf
    buf = buf[len(b'1\0\0connection-established\0\0'):]
    ok('admin.vm.property.Set', VM, 'provides_network', b'True')
    # (itself it must not follow: that would be a loop, refused)
    ok('admin.vm.property.Set', VM, 'netvm', b'')
    ok('admin.vm.Create.AppVM', 'dom0', TPL, b'name=follower label=red')
    ok('admin.property.Set', 'dom0', 'default_netvm', VM.encode())
    ok('admin.vm.property.Set', 'follower', 'label', b'green')
    events = []
    while not any(e[0] == 'follower' and e[1] == 'property-set:label'
                  for e in events):
        chunk = s.recv(4096)
        assert chunk, events
        buf += chunk
        got, buf = parse_events(buf)
        events += got
    s.close()
    ev = [e for e in events if e[0] == 'follower'
          and e[1] == 'property-reset:netvm'][0]
    # str(None) is what the reference sends for the old default
    assert ev[2] == {'name': 'netvm', 'oldvalue': 'None'}, ev
    assert any(e[0] == 'follower' and e[1] == 'property-pre-set:netvm'
               for e in events), events
    # S vm/mix/net.py on_property_set_provides and core_features: the
    # extension's servicevm and icon, then the mixin's gateway resets
    seq = [e[1] for e in events if e[0] == VM and e[1] in (
        'domain-feature-set:servicevm', 'property-reset:icon',
        'property-reset:gateway', 'property-reset:gateway6',
        'property-set:provides_network')]
    assert seq[:5] == ['domain-feature-set:servicevm', 'property-reset:icon',
                       'property-reset:gateway', 'property-reset:gateway6',
                       'property-set:provides_network'], seq
    # S events.py: master's dispatcher is each qube's own handler, so it
    # hears what the class handlers fired (the icon reset) before the
    # event that caused it
    names = [e[1] for e in events if e[0] == 'follower' and
             e[1] in ('property-pre-set:label', 'property-reset:icon',
                      'property-set:label')]
    assert names == ['property-pre-set:label', 'property-reset:icon',
                     'property-set:label'], names
    ok('admin.property.Set', 'dom0', 'default_netvm', b'')
    ok('admin.vm.Remove', 'follower')
    ok('admin.vm.property.Reset', VM, 'netvm')
    ok('admin.vm.property.Reset', VM, 'provides_network')


def stream(method, dest, until, timeout=30):
    covered.add(method)
    return state['d'].stream(method, dest, until, timeout)


def test_stats():
    # S admin.py vm_stats/_send_stats_single, app.py get_vm_stats: the
    # confirmation, then each stats_interval one vm-stats per running
    # qube (here dom0 only), cpu_usage 0 in the first round
    ok('admin.property.Set', 'dom0', 'stats_interval', b'1')
    try:
        buf = stream('admin.vm.Stats', 'dom0',
                     lambda b: b.count(b'vm-stats') >= 2)
    finally:
        ok('admin.property.Reset', 'dom0', 'stats_interval')
    assert buf.startswith(b'1\0\0connection-established\0\0'), buf
    events, rest = parse_events(buf)
    stats = [e for e in events if e[1] == 'vm-stats']
    assert [e[0] for e in stats] == ['dom0', 'dom0'], events
    first = buf.split(b'vm-stats\0', 1)[1].split(b'\0\0', 1)[0]
    assert first.split(b'\0')[0::2] == [
        b'memory_kb', b'cpu_time', b'cpu_usage', b'cpu_usage_raw'], first
    assert stats[0][2]['cpu_usage'] == '0', stats
    assert stats[0][2]['cpu_usage_raw'] == '0', stats
    for e in stats:
        assert all(v.isdigit() for v in e[2].values()), e
        assert int(e[2]['memory_kb']) > 0, e
    # a halted qube: the stream ends with the reference's exception
    buf = stream('admin.vm.Stats', VM, lambda b: False)
    assert buf == (b'1\0\0connection-established\0\0'
                   b'2\0QubesVMNotRunningError\0\0Domain not running '
                   b'(either powered off or paused): \'test-vm1\'\0'), buf
    exc('admin.vm.Stats', 'dom0', 'x', name='ProtocolError')
    exc('admin.vm.Stats', 'dom0', '', b'x', name='ProtocolError')


def test_create_disposable():
    # S admin.py create_disposable, dispvm.py from_appvm/__init__: of the
    # destination, or of the source's default_dispvm for dom0; named
    # dispDISPID, auto_cleanup, tagged by its creator; "uuid" answers
    # uuid:UUID
    refuse = ('Refusing to create disposable out of app qube which has '
              'template_for_dispvms=False')
    exc('admin.vm.CreateDisposable', 'dom0', name='QubesException',
        msg=refuse)
    exc('admin.vm.CreateDisposable', VM, name='QubesException', msg=refuse)
    exc('admin.vm.CreateDisposable', VM, 'x', name='ProtocolError')
    exc('admin.vm.CreateDisposable', VM, '', b'name', name='QubesValueError',
        msg='Invalid payload for admin.vm.CreateDisposable: expected the '
        "empty string or 'uuid'")
    ok('admin.vm.property.Set', VM, 'template_for_dispvms', b'True')
    made = []
    try:
        name = ok('admin.vm.CreateDisposable', VM)
        made.append(name)
        assert re.fullmatch(r'disp[0-9]{1,4}', name), name
        dispid = ok('admin.vm.property.Get', name, 'dispid').split()[-1]
        assert name == 'disp' + dispid, (name, dispid)
        ok('admin.vm.property.Get', name, 'auto_cleanup',
           want='default=False type=bool True')
        ok('admin.vm.property.Get', name, 'template',
           want='default=False type=vm ' + VM)
        tags = ok('admin.vm.tag.List', name).split()
        assert 'created-by-dom0' in tags and \
            'disp-created-by-dom0' in tags, tags
        assert os.path.isdir(os.path.join(state['base'], 'appvms', name))
        # default rules: no firewall.xml, as for any new qube
        assert not os.path.exists(
            os.path.join(state['base'], 'appvms', name, 'firewall.xml'))
        # S dispvm.py __init__: firewall.clone(template.firewall), the
        # features but preload-dispvm*
        rules = (b'action=drop dst4=192.0.2.0/24\n'
                 b'action=accept expire=%d proto=tcp dstports=443-443\n'
                 b'action=accept\n' % (time.time() + 3600))
        ok('admin.vm.firewall.Set', VM, '', rules, want='')
        ok('admin.vm.feature.Set', VM, 'preload-dispvm-delay', b'1')
        ok('admin.vm.feature.Set', VM, 'fw-copied', b'yes')
        fwd = ok('admin.vm.CreateDisposable', VM)
        made.append(fwd)
        ok('admin.vm.firewall.Get', fwd, want=rules.decode())
        ok('admin.vm.feature.Get', fwd, 'fw-copied', want='yes')
        exc('admin.vm.feature.Get', fwd, 'preload-dispvm-delay',
            name='QubesFeatureNotFoundError')
        # the DispVM's own file: the template's later changes are not its
        ok('admin.vm.firewall.Set', VM, '', b'action=accept\n', want='')
        ok('admin.vm.firewall.Get', fwd, want=rules.decode())
        ok('admin.vm.feature.Remove', VM, 'preload-dispvm-delay')
        ok('admin.vm.feature.Remove', VM, 'fw-copied')
        ok('admin.property.Set', 'dom0', 'default_dispvm', VM.encode())
        r = ok('admin.vm.CreateDisposable', 'dom0', '', b'uuid')
        assert r.startswith('uuid:'), r
        made.append(r)
        assert ok('admin.vm.List', r).split()[1] == 'class=DispVM', r
        # the source's default_dispvm, which cannot preload
        # (test_preload_bookkeeping)
        exc('admin.vm.CreateDisposable', 'dom0', 'preload',
            name='QubesValueError', match='qubes.WaitForRunningSystem')
    finally:
        for n in made:
            ok('admin.vm.Remove', n)
            # the whole folder goes, firewall.xml included
            if not n.startswith('uuid:'):
                assert not os.path.exists(
                    os.path.join(state['base'], 'appvms', n)), n
        ok('admin.property.Reset', 'dom0', 'default_dispvm')
        ok('admin.vm.property.Reset', VM, 'template_for_dispvms')


def test_preload_bookkeeping():
    # S mix/dvmtemplate.py (the domain-feature-pre-set handlers of
    # preload-dispvm-max, preload-dispvm and preload-dispvm-delay,
    # supports_preload, get_feat_preload_max) and dispvm.py (__init__,
    # _setter_template, is_preload, _preload_cleanup); admin.py
    # create_disposable with the argument "preload"
    V = 'Invalid preload-dispvm value:'
    exc('admin.vm.Create.DispVM', 'dom0', VM, b'name=pd1 label=red',
        name='QubesValueError',
        msg='template for disposable (test-vm1) needs to be an AppVM with '
        'template_for_dispvms=True')
    exc('admin.vm.CreateDisposable', VM, 'preload', name='QubesValueError',
        msg="Qube does not support the RPC 'qubes.WaitForRunningSystem' but "
        'tried to preload, check if template is outdated')
    # a TemplateVM has no preload handler: nothing is refused
    ok('admin.vm.CreateDisposable', TPL, 'preload', want='')
    ok('admin.vm.property.Set', VM, 'template_for_dispvms', b'True')
    try:
        exc('admin.vm.feature.Set', VM, 'preload-dispvm-max', b'1',
            name='QubesValueError', msg='Qube does not support qrexec')
        # both looked up along the template
        ok('admin.vm.feature.Set', TPL, 'qrexec', b'1')
        exc('admin.vm.feature.Set', VM, 'preload-dispvm-max', b'1',
            name='QubesValueError',
            msg="Qube does not support the RPC 'qubes.WaitForRunningSystem'")
        ok('admin.vm.feature.Set', TPL,
           'supported-rpc.qubes.WaitForRunningSystem', b'1')
        for bad in (b'x', b'-1', b'1.5', b' 1'):
            exc('admin.vm.feature.Set', VM, 'preload-dispvm-max', bad,
                name='QubesValueError',
                msg='Invalid preload-dispvm-max value: not a digit')
        ok('admin.vm.feature.Set', VM, 'preload-dispvm-max', b'', want='')
        ok('admin.vm.feature.Set', VM, 'preload-dispvm-max', b'2', want='')
        for bad in (b'x', b'0x10', b'1,5'):
            exc('admin.vm.feature.Set', VM, 'preload-dispvm-delay', bad,
                name='QubesValueError',
                msg='Invalid preload-dispvm-delay value: not an integer or '
                'float')
        for good in (b'-1', b'2.5', b'1e1', b''):
            ok('admin.vm.feature.Set', VM, 'preload-dispvm-delay', good)
        ok('admin.vm.Create.DispVM', 'dom0', VM, b'name=pd1 label=red')
        ok('admin.vm.Create.DispVM', 'dom0', VM, b'name=pd2 label=red')
        ok('admin.vm.Create.AppVM', 'dom0', TPL, b'name=pd-other label=red')
        exc('admin.vm.feature.Set', VM, 'preload-dispvm', b'pd1 pd2 pd1',
            name='QubesValueError',
            msg="%s can't increment: qube count (3) is either bigger than "
            'old count (0) or preload-dispvm-max (2)' % V)
        exc('admin.vm.feature.Set', VM, 'preload-dispvm', b'pd1 pd1',
            name='QubesValueError', msg="%s contain duplicates: 'pd1'" % V)
        exc('admin.vm.feature.Set', VM, 'preload-dispvm', b'nope',
            name='QubesValueError', msg="%s non qube(s): 'nope'" % V)
        exc('admin.vm.feature.Set', VM, 'preload-dispvm', b'pd-other',
            name='QubesValueError',
            msg="%s qube(s) not based on test-vm1: 'pd-other'" % V)
        # S dispvm.py is_preload: a stateless property, typed bool by its
        # annotation (__init__.py stateless_property)
        ok('admin.vm.property.Get', 'pd1', 'is_preload',
           want='default=True type=bool False')
        ok('admin.vm.property.Help', 'pd1', 'is_preload',
           want='Check if qube is a preloaded disposable. :rtype: bool')
        exc('admin.vm.property.Set', 'pd1', 'is_preload', b'True',
            name='QubesPropertyValueError',
            msg="property 'is_preload' on DispVM instance cannot be set")
        assert 'is_preload' in ok('admin.vm.property.List', 'pd1').split()
        ok('admin.vm.property.Help', 'pd1', 'template',
           want='AppVM, on which this disposable is based.')
        # the list changing tells each qube it adds or drops
        events = events_during(
            lambda: ok('admin.vm.feature.Set', VM, 'preload-dispvm',
                       b'pd1 pd2'),
            lambda ev: sum(e[1] == 'property-reset:is_preload'
                           for e in ev) >= 2)
        got = sorted((e[0], e[2]) for e in events
                     if e[1] == 'property-reset:is_preload')
        assert got == [('pd1', {'name': 'is_preload'}),
                       ('pd2', {'name': 'is_preload'})], got
        # and domain-preload-dispvm-start for +preload, with its reason
        events = events_during(
            lambda: ok('admin.vm.CreateDisposable', VM, 'preload', want=''),
            lambda ev: any(e[1] == 'domain-preload-dispvm-start'
                           for e in ev))
        assert (VM, 'domain-preload-dispvm-start',
                {'reason': 'autostart was requested'}) in events, events
        ok('admin.vm.property.Get', 'pd2', 'is_preload',
           want='default=True type=bool True')
        # the same names in another order need no room
        ok('admin.vm.feature.Set', VM, 'preload-dispvm-max', b'0')
        ok('admin.vm.feature.Set', VM, 'preload-dispvm', b'pd2 pd1')
        # a DispVM that goes leaves the list
        ok('admin.vm.Remove', 'pd1')
        ok('admin.vm.feature.Get', VM, 'preload-dispvm', want='pd2')
        ok('admin.vm.CreateDisposable', VM, 'preload', want='')
    finally:
        for n in ('pd1', 'pd2', 'pd-other'):
            call('admin.vm.Remove', n)
        for f in ('preload-dispvm', 'preload-dispvm-max',
                  'preload-dispvm-delay'):
            call('admin.vm.feature.Remove', VM, f)
        for f in ('qrexec', 'supported-rpc.qubes.WaitForRunningSystem'):
            call('admin.vm.feature.Remove', TPL, f)
        ok('admin.vm.property.Reset', VM, 'template_for_dispvms')


def test_preload_global_features():
    # S adminvm.py (tests/vm/adminvm.py test_800..803): dom0's
    # preload-dispvm-max, -threshold and -delay are the system's, checked
    # as a disposable template's
    try:
        for f in ('preload-dispvm-max', 'preload-dispvm-threshold'):
            for bad in (b'a', b'-1', b'1 1'):
                exc('admin.vm.feature.Set', 'dom0', f, bad,
                    name='QubesValueError',
                    msg='Invalid %s value: not a digit' % f)
            for good in (b'', b'0', b'1'):
                ok('admin.vm.feature.Set', 'dom0', f, good)
        for bad in (b'a', b'.2.', b'1 1'):
            exc('admin.vm.feature.Set', 'dom0', 'preload-dispvm-delay', bad,
                name='QubesValueError',
                msg='Invalid preload-dispvm-delay value: not an integer or '
                'float')
        for good in (b'', b'0', b'1', b'-1', b'3.14'):
            ok('admin.vm.feature.Set', 'dom0', 'preload-dispvm-delay', good)
        # a refused value changed nothing
        ok('admin.vm.feature.Get', 'dom0', 'preload-dispvm-delay',
           want='3.14')
        # the global maximum is the default_dispvm's: it must be able to
        # preload (test_800: the qube hears the pre-set event)
        ok('admin.vm.feature.Remove', 'dom0', 'preload-dispvm-max')
        ok('admin.vm.property.Set', VM, 'template_for_dispvms', b'True')
        ok('admin.property.Set', 'dom0', 'default_dispvm', VM.encode())
        exc('admin.vm.feature.Set', 'dom0', 'preload-dispvm-max', b'1',
            name='QubesValueError', msg='Qube does not support qrexec')
        exc('admin.vm.feature.Get', 'dom0', 'preload-dispvm-max',
            name='QubesFeatureNotFoundError',
            msg='Feature not set for domain dom0: preload-dispvm-max')
        for f in ('qrexec', 'supported-rpc.qubes.WaitForRunningSystem'):
            ok('admin.vm.feature.Set', TPL, f, b'1')
        events = events_during(
            lambda: ok('admin.vm.feature.Set', 'dom0', 'preload-dispvm-max',
                       b'1'),
            lambda ev: any(e[1].startswith('domain-feature-pre-set')
                           for e in ev))
        assert (VM, 'domain-feature-pre-set:preload-dispvm-max',
                {'feature': 'preload-dispvm-max', 'value': '1'}) in events, \
            events
        ok('admin.vm.feature.Remove', 'dom0', 'preload-dispvm-max')
        # without a default_dispvm, only the count is checked
        ok('admin.property.Reset', 'dom0', 'default_dispvm')
        for f in ('qrexec', 'supported-rpc.qubes.WaitForRunningSystem'):
            ok('admin.vm.feature.Remove', TPL, f)
        ok('admin.vm.feature.Set', 'dom0', 'preload-dispvm-max', b'1')
    finally:
        for f in ('qrexec', 'supported-rpc.qubes.WaitForRunningSystem'):
            call('admin.vm.feature.Remove', TPL, f)
        call('admin.property.Reset', 'dom0', 'default_dispvm')
        call('admin.vm.property.Reset', VM, 'template_for_dispvms')
        for f in ('preload-dispvm-max', 'preload-dispvm-threshold',
                  'preload-dispvm-delay'):
            call('admin.vm.feature.Remove', 'dom0', f)


def test_master_tests_all_placed():
    """Each place MASTER_ELSEWHERE names exists: a case of this file, or
    FILE:CASE of another test file."""
    here = os.path.dirname(os.path.abspath(__file__))
    tests = os.path.dirname(here)
    for name, where in sorted(MASTER_ELSEWHERE.items()):
        path, _, case = where.rpartition(':')
        path = os.path.join(tests, path) if path else os.path.abspath(__file__)
        with open(path) as f:
            assert ('\ndef %s(' % case) in f.read(), (name, where)


def test_every_served_method_is_covered():
    """Runs last (the name sorts after the others in the file's order):
    each served method had at least one case."""
    missing = [m for m in SERVED if m not in covered]
    assert not missing, missing


if __name__ == '__main__':
    sys.exit(run_file(globals(), setup, state, after))
