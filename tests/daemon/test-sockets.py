#!/usr/bin/python3
"""qubesd's internal and misc sockets, as master serves them
(qubes/api/internal.py, qubes/api/misc.py and the extensions that handle
a qube's features request: core_features, services, supported_features,
windows):

- each socket serves its own methods and no other;
- internal.GetSystemInfo answers master's JSON byte for byte (Python's
  json.dumps of master's structure, built here from what the Admin API
  says), follows every change, and resolves qrexec policy's @tag:, @type:,
  @dispvm:, @default and @adminvm as qrexec's policy would;
- internal.SuspendPre and SuspendPost with nothing running;
- qubes.FeaturesRequest, qubes.NotifyTools (a qube's QubesDB entries, in
  qubesd's --qubesdb-dir) and qubes.NotifyUpdates change exactly what
  master changes; hostile requests (values outside the safe set, not
  ASCII, too long, a link, a qube speaking for another) are refused with
  nothing changed.

    test-sockets.py PATH/TO/qubesd
"""
import json
import os
import re
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qubesd_harness import run_file  # noqa: E402
from qubesd_harness import Daemon, LoopFS, make_kernel  # noqa: E402

QUBESD = os.path.abspath(sys.argv[1])
state = {}


def setup():
    fs = LoopFS('xfs')
    state['fs'] = fs
    base = os.path.join(fs.mnt, 'qubes')
    make_kernel(base, '6.1', ('vmlinuz',))
    qdb = os.path.join(fs.mnt, 'qubesdb')
    paused = os.path.join(fs.mnt, 'run', 'previously-paused.list')
    os.makedirs(os.path.dirname(paused))
    d = Daemon(QUBESD, base, args=['--qubesdb-dir', qdb,
                                   '--suspend-list', paused]).start()
    state.update(d=d, qdb=qdb, paused=paused)
    d.ok('admin.property.Set', arg='default_kernel', payload='6.1')
    d.ok('admin.vm.Create.TemplateVM', payload='name=tpl label=black')
    d.ok('admin.property.Set', arg='default_template', payload='tpl')
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=work label=blue')
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=net label=red')
    d.ok('admin.vm.property.Set', 'net', 'provides_network', 'True')
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=dvm label=gray')
    d.ok('admin.vm.property.Set', 'dvm', 'template_for_dispvms', 'True')
    d.ok('admin.vm.Create.StandaloneVM', payload='name=sa label=green')
    d.ok('admin.vm.Create.RemoteVM', payload='name=rem label=orange')


def d():
    return state['d']


def call(sock, method, src='dom0', dest='dom0', arg='', payload=b''):
    return d().call(method, dest, arg, payload, src=src, which=sock)


# ---- the sockets ----

def test_each_socket_serves_its_own():
    for sock, method in (('internal', 'admin.vm.List'),
                         ('misc', 'admin.vm.List'),
                         ('admin', 'internal.GetSystemInfo'),
                         ('misc', 'internal.GetSystemInfo'),
                         ('admin', 'qubes.NotifyUpdates'),
                         ('internal', 'qubes.FeaturesRequest'),
                         ('admin', 'internal.vm.volume.ImportEnd')):
        r = call(sock, method)
        assert r == ('exc', 'ProtocolError',
                     "no such method: '%s'" % method), (sock, method, r)
    # master's checks of each method's options, in its words
    assert call('internal', 'internal.GetSystemInfo', dest='work') == (
        'exc', 'ProtocolError', 'expected destination to be AdminVM')
    assert call('internal', 'internal.GetSystemInfo', arg='x') == (
        'exc', 'ProtocolError', 'unexpected argument')
    assert call('internal', 'internal.SuspendPre', payload=b'x') == (
        'exc', 'ProtocolError', 'unexpected payload')
    assert call('misc', 'qubes.NotifyUpdates', src='tpl') == (
        'exc', 'ProtocolError', 'expected payload')
    assert call('misc', 'qubes.FeaturesRequest', src='nosuch') == (
        'exc', 'QubesVMNotFoundError', "No such domain: 'nosuch'")
    # the misc socket as the admin one (qrexec's services run as dom0's
    # user), the internal one root's only
    assert stat.S_IMODE(os.stat(d().socket_path('misc')).st_mode) == 0o660
    assert stat.S_IMODE(
        os.stat(d().socket_path('internal')).st_mode) == 0o600


# ---- internal.GetSystemInfo ----

def master_system_info():
    """What master's SystemInfoCache.get_system_info gives for this system,
    built from the Admin API's answers."""
    def prop(vm, name):
        r = d().call('admin.vm.property.Get', vm, name)
        if r[0] != 'ok':
            return None
        return r[1].split(' ', 2)[2] if r[1].count(' ') >= 2 else ''

    labels = {}
    for name in d().ok('admin.label.List').split():
        labels[name] = d().ok('admin.label.Get', arg=name)
    out = {}
    for line in d().ok('admin.vm.List').splitlines():
        name, rest = line.split(' ', 1)
        fields = dict(kv.split('=', 1) for kv in rest.split())
        klass = fields['class']
        feats = d().ok('admin.vm.feature.List', name).split()
        label = prop(name, 'label')
        tags = sorted(d().ok('admin.vm.tag.List', name).split())
        out[name] = {
            'internal': (d().ok('admin.vm.feature.Get', name, 'internal')
                         if 'internal' in feats else None),
            'tags': tags,
            'type': klass,
            'template_for_dispvms':
                prop(name, 'template_for_dispvms') == 'True',
            'default_dispvm': prop(name, 'default_dispvm') or None,
            'icon': 'appvm-' + label,
            'label': labels[label],
            'guivm': prop(name, 'guivm') or None,
            'relayvm': prop(name, 'relayvm') or None,
            'transport_rpc': prop(name, 'transport_rpc') or None,
            'power_state': fields['state'],
            'uuid': fields['uuid'],
        }
    return {'domains': out}


def system_info():
    r = call('internal', 'internal.GetSystemInfo')
    assert r[0] == 'ok', r
    return r[1]


def test_system_info_is_masters():
    want = json.dumps(master_system_info())
    got = system_info()
    assert got == want, (got, want)
    info = json.loads(got)['domains']
    assert list(info)[:2] == ['dom0', 'dvm'], list(info)
    assert info['dom0'] == {
        'internal': None, 'tags': [], 'type': 'AdminVM',
        'template_for_dispvms': False, 'default_dispvm': None,
        'icon': 'appvm-black', 'label': '0x000000', 'guivm': None,
        'relayvm': None, 'transport_rpc': None, 'power_state': 'Running',
        'uuid': '00000000-0000-0000-0000-000000000000'}, info['dom0']
    assert info['dvm']['template_for_dispvms'] is True
    assert info['work']['guivm'] == 'dom0'
    assert info['rem']['power_state'] == 'Running'


def test_system_info_follows_changes():
    before = system_info()
    assert system_info() == before  # the cache answers the same
    changes = [
        ('admin.vm.tag.Set', 'work', 'project-x', b''),
        ('admin.vm.feature.Set', 'net', 'internal', b'1'),
        ('admin.vm.property.Set', 'work', 'label', b'purple'),
        ('admin.property.Set', 'dom0', 'default_dispvm', b'dvm'),
        ('admin.vm.property.Set', 'sa', 'default_dispvm', b''),
        ('admin.vm.property.Set', 'rem', 'relayvm', b'net'),
        ('admin.vm.property.Set', 'rem', 'transport_rpc', b'qubes.Relay'),
        ('admin.vm.property.Set', 'sa', 'template_for_dispvms', b'True'),
        ('admin.vm.Create.AppVM', 'dom0', 'tpl', b'name=late label=yellow'),
        ('admin.vm.tag.Remove', 'work', 'project-x', b''),
        ('admin.vm.feature.Remove', 'net', 'internal', b''),
        ('admin.vm.property.Reset', 'sa', 'template_for_dispvms', b''),
        ('admin.vm.Remove', 'late', '', b''),
        ('admin.property.Reset', 'dom0', 'default_dispvm', b''),
        ('admin.vm.property.Reset', 'rem', 'relayvm', b''),
        ('admin.vm.property.Reset', 'sa', 'default_dispvm', b''),
    ]
    for method, dest, arg, payload in changes:
        d().ok(method, dest, arg, payload)
        got = system_info()
        want = json.dumps(master_system_info())
        assert got == want, (method, dest, arg, got, want)
    info = json.loads(system_info())['domains']
    assert info['rem']['transport_rpc'] == 'qubes.Relay'
    assert info['work']['label'] == d().ok('admin.label.Get', arg='purple')
    d().ok('admin.vm.property.Set', 'work', 'label', b'blue')
    d().ok('admin.vm.property.Reset', 'rem', 'transport_rpc')


# qrexec's policy (qrexec/policy/parser.py), as far as its resolution of
# a call's target goes: the tokens and what each matches in system_info.
def resolve(info, source, token):
    doms = info['domains']
    if token == '@adminvm':
        return {'dom0'}
    if token == '@anyvm':
        return {n for n, v in doms.items() if v['type'] != 'AdminVM'}
    if token.startswith('@tag:'):
        return {n for n, v in doms.items() if token[5:] in v['tags']}
    if token.startswith('@type:'):
        return {n for n, v in doms.items() if v['type'] == token[6:]}
    if token == '@dispvm':
        dvm = doms[source]['default_dispvm']
        return {'@dispvm:' + dvm} if dvm else set()
    if token.startswith('@dispvm:@tag:'):
        tag = token[len('@dispvm:@tag:'):]
        return {'@dispvm:' + n for n, v in doms.items()
                if tag in v['tags'] and v['template_for_dispvms']}
    if token.startswith('@dispvm:'):
        name = token[8:]
        v = doms.get(name)
        return {token} if v and v['template_for_dispvms'] else set()
    if token == '@default':
        return {'@default'}
    return {token} if token in doms else set()


def test_policy_resolution():
    d().ok('admin.vm.tag.Set', 'work', 'personal')
    d().ok('admin.vm.tag.Set', 'dvm', 'personal')
    d().ok('admin.vm.property.Set', 'work', 'default_dispvm', b'dvm')
    info = json.loads(system_info())
    assert resolve(info, 'work', '@tag:personal') == {'work', 'dvm'}
    assert resolve(info, 'work', '@type:TemplateVM') == {'tpl'}
    assert resolve(info, 'work', '@type:AppVM') == {'work', 'net', 'dvm'}
    assert resolve(info, 'work', '@type:RemoteVM') == {'rem'}
    assert resolve(info, 'work', '@dispvm') == {'@dispvm:dvm'}
    assert resolve(info, 'work', '@dispvm:dvm') == {'@dispvm:dvm'}
    assert resolve(info, 'work', '@dispvm:work') == set()
    assert resolve(info, 'work', '@dispvm:@tag:personal') == {'@dispvm:dvm'}
    assert resolve(info, 'work', '@adminvm') == {'dom0'}
    assert 'dom0' not in resolve(info, 'work', '@anyvm')
    assert resolve(info, 'work', '@default') == {'@default'}
    # created-by-dom0 and the guivm/audiovm tags that master's
    # extensions keep, which policies use too
    assert {'created-by-dom0', 'guivm-dom0', 'audiovm-dom0'} <= \
        set(info['domains']['work']['tags'])
    d().ok('admin.vm.tag.Remove', 'work', 'personal')
    d().ok('admin.vm.tag.Remove', 'dvm', 'personal')
    d().ok('admin.vm.property.Reset', 'work', 'default_dispvm')


# ---- the host's suspend ----

def test_suspend_with_nothing_running():
    paused = state['paused']
    assert call('internal', 'internal.SuspendPre') == ('ok', '')
    with open(paused) as f:
        assert f.read() == ''  # no qube was paused
    assert call('internal', 'internal.SuspendPost') == ('ok', '')
    assert not os.path.exists(paused)
    # a resume without a list (a suspend that failed before writing it)
    assert call('internal', 'internal.SuspendPost') == ('ok', '')


# ---- the misc socket ----

def write_qdb(qube, folder, entries):
    """@qube's QubesDB entries, as a bridge would write them."""
    path = os.path.join(state['qdb'], qube, folder)
    if os.path.isdir(path):
        for n in os.listdir(path):
            os.unlink(os.path.join(path, n))
    os.makedirs(path, exist_ok=True)
    for name, value in entries.items():
        with open(os.path.join(path, name), 'wb') as f:
            f.write(value if isinstance(value, bytes) else value.encode())


def features(vm):
    out = {}
    for name in d().ok('admin.vm.feature.List', vm).split():
        out[name] = d().ok('admin.vm.feature.Get', vm, name)
    return out


def test_features_request_of_a_template():
    write_qdb('tpl', 'features-request', {
        'os': 'Linux',
        'os-distribution': 'debian',
        'os-distribution-like': 'ubuntu',
        'os-version': '12',
        'os-eol': '2028-06-30',
        'qubes-agent-version': '4.3',
        'qrexec': '1',
        'gui': '1',
        'gui-emulated': '0',
        'vmexec': '1',
        'qubes-firewall': '1',
        'anon-timezone': '1',
        'supported-service.meminfo-writer': '1',
        'supported-service.apparmor': '1',
        'supported-service.off': '0',
        'supported-feature.fancy': '1',
        'supported-rpc.qubes.WaitForRunningSystem': '1',
        'boot-mode.kernelopts.mode1': 'opt1 opt2',
        'boot-mode.name.mode1': 'Mode One',
        'boot-mode.default-user.mode1': 'admin',
        'boot-mode.name.default': 'Standard',
        'boot-mode.active': 'mode1',
        'boot-mode.appvm-default': 'default',
        'unknown-thing': '1',
    })
    before = features('tpl')
    assert call('misc', 'qubes.FeaturesRequest', src='tpl') == ('ok', '')
    got = features('tpl')
    want = dict(before)
    want.update({
        'os': 'Linux',  # windows extension: Windows or Linux
        'os-distribution': 'debian', 'os-distribution-like': 'ubuntu',
        'os-version': '12', 'os-eol': '2028-06-30',
        'qubes-agent-version': '4.3',
        'qrexec': '1', 'gui': '1', 'gui-emulated': '', 'vmexec': '1',
        'qubes-firewall': '1', 'anon-timezone': '1',
        'supported-service.meminfo-writer': '1',
        'supported-service.apparmor': '1', 'apparmor': '1',
        'supported-feature.fancy': '1',
        'supported-rpc.qubes.WaitForRunningSystem': '1',
        'boot-mode.kernelopts.mode1': 'opt1 opt2',
        'boot-mode.name.mode1': 'Mode One',
        'boot-mode.default-user.mode1': 'admin',
        'boot-mode.name.default': 'Standard',
        'boot-mode.active': 'mode1',
        'boot-mode.appvm-default': 'default',
    })
    assert got == want, (got, want)

    # A second request: the supported-* lists are replaced; qrexec and
    # gui, set already, stay; vmexec and qubes-firewall follow; bad
    # versions and dates are ignored; anon-timezone cannot be dropped.
    write_qdb('tpl', 'features-request', {
        'qrexec': '0', 'gui': '0', 'vmexec': '0', 'qubes-firewall': '0',
        'os-version': 'v13', 'os-eol': '2028-02-30',
        'qubes-agent-version': '4.3.1', 'anon-timezone': '0',
        'supported-service.other': '1',
        'supported-feature.fancy': '0',
        'boot-mode.kernelopts.mode2': 'x',
        'boot-mode.name.mode2': 'Two',
    })
    assert call('misc', 'qubes.FeaturesRequest', src='tpl') == ('ok', '')
    got = features('tpl')
    want['vmexec'] = ''
    want['qubes-firewall'] = ''
    del want['supported-service.meminfo-writer']
    del want['supported-service.apparmor']
    want['supported-service.other'] = '1'
    for k in ('boot-mode.kernelopts.mode1', 'boot-mode.name.mode1',
              'boot-mode.default-user.mode1', 'boot-mode.name.default'):
        del want[k]
    want['boot-mode.kernelopts.mode2'] = 'x'
    want['boot-mode.name.mode2'] = 'Two'
    assert got == want, (got, want)
    # boot mode names must be unique: nothing of the boot modes changes
    write_qdb('tpl', 'features-request', {
        'boot-mode.kernelopts.a': 'x', 'boot-mode.name.a': 'Same',
        'boot-mode.kernelopts.b': 'y', 'boot-mode.name.b': 'Same'})
    assert call('misc', 'qubes.FeaturesRequest', src='tpl') == ('ok', '')
    assert features('tpl') == want


def test_features_request_of_a_template_based_qube():
    # only supported-rpc.* counts; the template speaks for the rest
    write_qdb('work', 'features-request', {
        'os-distribution': 'evil', 'qrexec': '1',
        'supported-service.x': '1', 'supported-feature.y': '1',
        'supported-rpc.qubes.Filecopy': '1'})
    before = features('work')
    assert call('misc', 'qubes.FeaturesRequest', src='work') == ('ok', '')
    want = dict(before)
    want['supported-rpc.qubes.Filecopy'] = '1'
    assert features('work') == want
    # a qube speaks for itself only: its request changes no other qube
    assert 'supported-rpc.qubes.Filecopy' not in features('tpl')


def test_hostile_features_requests():
    safe = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ' \
        '0123456789-.,_= '
    before = {q: features(q) for q in ('tpl', 'sa')}
    bad_values = [b'a/b', b'semi;colon', b'\xc3\xa9t\xc3\xa9', b'nul\0',
                  b'line\nbreak', b'quote"', b'x' * 3073]
    for value in bad_values:
        write_qdb('sa', 'features-request',
                  {'os-distribution': 'fine', 'qrexec': '1', 'os': value})
        r = call('misc', 'qubes.FeaturesRequest', src='sa')
        assert r[0] == 'exc' and r[1] == 'ProtocolError', (value, r)
        if len(value) <= 3072:
            assert r[2] == 'Value outside safe set: ' + safe, (value, r)
        assert features('sa') == before['sa'], value
    # an entry that is a link, or a folder that is one, is refused
    write_qdb('sa', 'features-request', {'qrexec': '1'})
    folder = os.path.join(state['qdb'], 'sa', 'features-request')
    os.symlink('/etc/hostname', os.path.join(folder, 'os-distribution'))
    r = call('misc', 'qubes.FeaturesRequest', src='sa')
    assert r[0] == 'exc' and r[1] == 'ProtocolError', r
    write_qdb('sa', 'features-request', {})
    os.rmdir(folder)
    os.symlink(os.path.join(state['qdb'], 'tpl', 'features-request'),
               folder)
    r = call('misc', 'qubes.FeaturesRequest', src='sa')
    assert r[0] == 'exc' and r[1] == 'ProtocolError', r
    os.unlink(folder)
    # too many entries
    write_qdb('sa', 'features-request',
              {'supported-rpc.x%d' % i: '1' for i in range(1025)})
    r = call('misc', 'qubes.FeaturesRequest', src='sa')
    assert r[0] == 'exc' and r[1] == 'ProtocolError', r
    write_qdb('sa', 'features-request', {})
    assert features('sa') == before['sa']
    assert features('tpl') == before['tpl']
    # no entries at all: nothing to do
    assert call('misc', 'qubes.FeaturesRequest', src='net') == ('ok', '')


def test_notify_tools():
    # Qubes Windows Tools' legacy request: a Windows qube with qrexec
    write_qdb('sa', 'qubes-tools', {
        'qrexec': '1', 'gui': '1', 'os': 'Windows', 'default-user': 'user',
        'version': '4', 'gui-emulated': ''})
    assert call('misc', 'qubes.NotifyTools', src='sa') == ('ok', '')
    f = features('sa')
    for k, v in {'qrexec': '1', 'gui': '1', 'os': 'Windows',
                 'rpc-clipboard': '1', 'stubdom-qrexec': '1',
                 'audio-model': 'ich6', 'timezone': 'localtime',
                 'no-monitor-layout': '1'}.items():
        assert f.get(k) == v, (k, f)
    assert 'gui-emulated' not in f  # an empty entry is none
    assert d().ok('admin.vm.property.Get', 'sa', 'maxmem') == \
        'default=False type=int 0'
    assert d().ok('admin.vm.property.Get', 'sa', 'qrexec_timeout') == \
        'default=False type=int 6000'
    before = features('sa')
    write_qdb('sa', 'qubes-tools', {'os': 'Windows 10'})
    assert call('misc', 'qubes.NotifyTools', src='sa') == (
        'exc', 'ProtocolError',
        'Value outside safe set: '
        'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789')
    assert features('sa') == before


def test_notify_updates():
    stamp = re.compile(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d')
    for v in ('updates-available', 'last-updates-check', 'last-update'):
        for q in ('tpl', 'sa', 'work'):
            d().call('admin.vm.feature.Remove', q, v)
    # an updateable qube reports for itself
    assert call('misc', 'qubes.NotifyUpdates', src='tpl',
                payload=b' 3\n') == ('ok', '')
    f = features('tpl')
    assert f['updates-available'] == '1'
    assert stamp.fullmatch(f['last-updates-check']), f
    assert 'last-update' not in f
    assert call('misc', 'qubes.NotifyUpdates', src='tpl',
                payload=b'0') == ('ok', '')
    f = features('tpl')
    assert f['updates-available'] == ''
    assert stamp.fullmatch(f['last-update']), f
    # a template-based qube hints its template of new updates only
    d().ok('admin.vm.feature.Remove', 'tpl', 'updates-available')
    assert call('misc', 'qubes.NotifyUpdates', src='work',
                payload=b'0') == ('ok', '')
    assert 'updates-available' not in features('tpl')
    assert 'updates-available' not in features('work')
    assert call('misc', 'qubes.NotifyUpdates', src='work',
                payload=b'12') == ('ok', '')
    assert features('tpl')['updates-available'] == '1'
    assert 'updates-available' not in features('work')
    # refused, nothing changed
    before = features('tpl')
    for bad in (b'x', b'-1', b'1.5', b'\xd9\xa3', b' ', b'1 2'):
        assert call('misc', 'qubes.NotifyUpdates', src='tpl',
                    payload=bad) == (
            'exc', 'ProtocolError', 'Update count is not a digit'), bad
    assert features('tpl') == before
    # dom0 is updateable too
    assert call('misc', 'qubes.NotifyUpdates', src='dom0',
                payload=b'1') == ('ok', '')
    assert features('dom0')['updates-available'] == '1'
    d().ok('admin.vm.feature.Remove', 'dom0', 'updates-available')
    d().ok('admin.vm.feature.Remove', 'dom0', 'last-updates-check')


def test_changes_are_saved():
    # what the misc socket changed is in qubes.xml once answered
    d().stop()
    d().start()
    f = features('tpl')
    assert f['os-distribution'] == 'debian' and f['qrexec'] == '1', f


if __name__ == '__main__':
    sys.exit(run_file(globals(), setup, state))
