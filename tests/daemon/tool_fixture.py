"""The fixed set of qubes the tools' differential cases run against
(tests/daemon/test-tool-outputs.py, and scripts/record-tool-outputs,
which records what the Qubes client's tools print for the same cases):
a template, a network qube and a firewall qube behind it as the default
netvm, two AppVMs (one with no network), an hvm standalone, a disposable
template marked internal, tags, features and properties set.

Answers are compared after normalize(): each qube's uuid as UUID(NAME),
the random part of a temporary file's name as RANDOM, qubesd's base
folder as BASE, a pool's size and usage as N."""
import re

CALLS = [
    ('admin.vm.Create.TemplateVM', 'dom0', '', b'name=fedora label=black'),
    ('admin.vm.Create.AppVM', 'dom0', 'fedora', b'name=sys-net label=red'),
    ('admin.vm.property.Set', 'sys-net', 'provides_network', b'True'),
    ('admin.vm.property.Set', 'sys-net', 'netvm', b''),
    ('admin.vm.Create.AppVM', 'dom0', 'fedora',
     b'name=sys-firewall label=green'),
    ('admin.vm.property.Set', 'sys-firewall', 'provides_network', b'True'),
    ('admin.vm.property.Set', 'sys-firewall', 'netvm', b'sys-net'),
    ('admin.property.Set', 'dom0', 'default_netvm', b'sys-firewall'),
    ('admin.vm.Create.AppVM', 'dom0', 'fedora', b'name=work label=blue'),
    ('admin.vm.Create.AppVM', 'dom0', 'fedora',
     b'name=personal label=yellow'),
    ('admin.vm.property.Set', 'personal', 'netvm', b''),
    ('admin.vm.Create.StandaloneVM', 'dom0', '', b'name=sa label=purple'),
    ('admin.vm.property.Set', 'sa', 'virt_mode', b'hvm'),
    ('admin.vm.Create.AppVM', 'dom0', 'fedora', b'name=dvm label=gray'),
    ('admin.vm.property.Set', 'dvm', 'template_for_dispvms', b'True'),
    ('admin.vm.feature.Set', 'dvm', 'internal', b'1'),
    ('admin.vm.feature.Set', 'fedora', 'updates-available', b'1'),
    ('admin.vm.tag.Set', 'work', 'mytag', b''),
    ('admin.vm.tag.Set', 'personal', 'other', b''),
    ('admin.vm.property.Set', 'work', 'autostart', b'True'),
    ('admin.vm.property.Set', 'work', 'debug', b'True'),
]


def fake_host(top):
    """A sysfs and a procfs of a made-up host under @top, for qubesd's
    QUBES_SYSFS and QUBES_PROCFS: three PCI devices (an Ethernet
    controller, a USB controller, a wireless adapter) and three block
    devices (a disk with a partition, a loop device on a file), none in
    use, so that the device tools' cases list the same on any machine.
    Returns the environment to start qubesd with."""
    import os
    sysfs = os.path.join(top, 'sys')
    procfs = os.path.join(top, 'proc')

    def write(path, text):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text + '\n')
    for sbdf, vendor, device, klass in [
            ('0000:00:19.0', '0x8086', '0x1502', '0x020000'),
            ('0000:00:14.0', '0x8086', '0x1e31', '0x0c0330'),
            ('0000:03:00.0', '0x8086', '0x4237', '0x028000')]:
        d = os.path.join(sysfs, 'bus', 'pci', 'devices', sbdf)
        write(os.path.join(d, 'vendor'), vendor)
        write(os.path.join(d, 'device'), device)
        write(os.path.join(d, 'class'), klass)
    devices = os.path.join(sysfs, 'devices', 'virtual', 'block')
    blocks = os.path.join(sysfs, 'class', 'block')
    os.makedirs(blocks, exist_ok=True)
    for name, parent, attrs in [
            ('sdx', None, {'dev': '8:224', 'size': '2097152', 'ro': '0',
                           'device/model': 'FAKE DISK',
                           'device/vendor': 'ACME',
                           'device/serial': 'ACME123'}),
            ('sdx1', 'sdx', {'dev': '8:225', 'size': '1048576', 'ro': '0',
                             'partition': '1'}),
            ('loop9', None, {'dev': '7:9', 'size': '4096', 'ro': '1',
                             'loop/backing_file': '/srv/data.img'})]:
        d = os.path.join(devices, parent, name) if parent else \
            os.path.join(devices, name)
        for k, v in attrs.items():
            write(os.path.join(d, k), v)
        os.makedirs(os.path.join(d, 'holders'), exist_ok=True)
        os.symlink(os.path.relpath(d, blocks), os.path.join(blocks, name))
    write(os.path.join(procfs, 'self', 'mountinfo'), '')
    write(os.path.join(procfs, 'swaps'),
          'Filename\tType\tSize\tUsed\tPriority')
    return {'QUBES_SYSFS': sysfs, 'QUBES_PROCFS': procfs}


def make_files(doc, base):
    """The files a case file's "files" asks for, under qubesd's base
    folder @base (a template package's folder for
    qvm-template-postprocess): PATH -> {"text": T} (a text file),
    {"size": N} (N bytes, sparse, "root" at its start) or {"tar": {NAME:
    N}} (a tar of such files)."""
    import io
    import os
    import tarfile
    for rel, spec in doc.get('files', {}).items():
        path = os.path.join(base, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if 'text' in spec:
            with open(path, 'w') as f:
                f.write(spec['text'])
        elif 'size' in spec:
            with open(path, 'wb') as f:
                f.write(b'root')
                f.truncate(spec['size'])
        elif 'tar' in spec:
            with tarfile.open(path, 'w') as t:
                for name, size in spec['tar'].items():
                    info = tarfile.TarInfo(name)
                    info.size = size
                    info.mtime = 0
                    data = b'root'.ljust(size, b'\0')
                    t.addfile(info, io.BytesIO(data))


def expand(args, base):
    """A case's arguments, BASE standing for qubesd's base folder."""
    return [a.replace('BASE', base) for a in args]


def prepare(daemon):
    """Makes the fixed qubes through @daemon (a qubesd_harness.Daemon)."""
    for method, dest, arg, payload in CALLS:
        r = daemon.call(method, dest, arg, payload)
        assert r[0] == 'ok', (method, dest, arg, r)


def uuids(daemon):
    """Each qube's uuid, by name."""
    out = {}
    listing = daemon.call('admin.vm.List', 'dom0')[1]
    for line in listing.splitlines():
        name = line.split(' ', 1)[0]
        r = daemon.call('admin.vm.property.Get', name, 'uuid')
        if r[0] == 'ok':
            out[name] = r[1].split(' ')[-1]
    return out


def normalize(text, ids, base=None):
    if base:
        text = text.replace(base, 'BASE')
    # a pool's size and usage (qvm-pool info): the filesystem's, which
    # changes from run to run; the last column, so alignment holds
    text = re.sub(r'^((?:size|usage) +)\d+$', r'\1N', text, flags=re.M)
    for name, u in ids.items():
        if u:
            text = text.replace(u, 'UUID(%s)' % name)
    # qvm-notes' temporary file for the editor: a random part in its name
    return re.sub(r'(/tmp/[\w.-]+_qube_)\w+(_notes\.txt)', r'\1RANDOM\2',
                  text)
