#!/usr/bin/python3
"""A backup made by our qubesd, restored by the Qubes client's own,
unchanged qvm-backup-restore into a fresh qubesd of ours (root; not in CI,
which has no copy of the client).

    QCAC_SRC=CHECKOUT_OF_qubes-core-admin-client \\
        scripts/check-client-restore.py [COMPRESSION]

COMPRESSION is the profile's `compression` (True: gzip, the default;
False; or a filter's name such as xz). Needs python3-lxml,
python3-docutils and python3-xdg (the client imports them) and
../shared/reference/client_restore.py. The system backed up: a template,
a netvm and a qube using it with a feature, a tag, notes, firewall rules
and 210 MiB of random data in a 3 GiB private image (several chunks).
Checks that the client's restore makes the qubes with their settings and
that the image comes back byte for byte."""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'daemon'))
from qubesd_harness import Daemon, LoopFS, make_kernel  # noqa: E402

QUBESD = os.path.join(HERE, '..', 'build', 'src', 'qubesd')
CLIENT_RESTORE = os.path.join(HERE, '..', '..', 'shared', 'reference',
                              'client_restore.py')


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def main():
    src = os.environ.get('QCAC_SRC')
    if not src or not os.path.isdir(os.path.join(src, 'qubesadmin')):
        sys.exit('set QCAC_SRC to a qubes-core-admin-client checkout')
    compression = sys.argv[1] if len(sys.argv) > 1 else 'True'
    fs = LoopFS('xfs', size='8G')
    tmp = tempfile.mkdtemp(dir=fs.mnt)
    d = d2 = None
    try:
        prof = os.path.join(tmp, 'profiles')
        os.mkdir(prof)
        base = os.path.join(fs.mnt, 'src')
        make_kernel(base, '6.1.0')
        d = Daemon(QUBESD, base, args=['--backup-dir', prof]).start()
        d.ok('admin.vm.Create.TemplateVM', payload='name=tpl label=black')
        d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=net label=red')
        d.ok('admin.vm.property.Set', 'net', 'provides_network',
             payload='True')
        d.ok('admin.vm.Create.AppVM', arg='tpl',
             payload='name=work label=blue')
        d.ok('admin.vm.property.Set', 'work', 'netvm', payload='net')
        d.ok('admin.vm.feature.Set', 'work', 'service.foo', payload='1')
        d.ok('admin.vm.tag.Set', 'work', 'mytag')
        d.ok('admin.vm.notes.Set', 'work', payload='some notes\n')
        d.ok('admin.vm.firewall.Set', 'work',
             payload='action=accept dst4=10.0.0.1/32\naction=drop\n')
        d.ok('admin.vm.volume.Resize', 'work', 'private', str(3 << 30))
        img = os.path.join(base, 'appvms', 'work', 'private.img')
        with open(img, 'r+b') as f:
            for i in range(3):
                f.seek(i * (300 << 20))
                f.write(os.urandom(70 << 20))
        want = sha256(img)
        out = os.path.join(tmp, 'out')
        os.mkdir(out)
        with open(os.path.join(prof, 'b.conf'), 'w') as f:
            f.write('include: [tpl, net, work]\ndestination_vm: dom0\n'
                    'destination_path: %s/ours.bin\npassphrase_text: pw\n'
                    'compression: %s\n' % (out, compression))
        d.ok('admin.backup.Execute', arg='b', timeout=None)
        d.stop()
        d.cleanup()
        d = None
        pw = os.path.join(tmp, 'pw')
        with open(pw, 'w') as f:
            f.write('pw\n')
        dst = os.path.join(fs.mnt, 'dst')
        make_kernel(dst, '6.1.0')
        d2 = Daemon(QUBESD, dst).start()
        home = os.path.join(tmp, 'home')
        os.mkdir(home)
        meta = os.path.join(tmp, 'meta', 'qubesadmin-4.3.0.dist-info')
        os.makedirs(meta)
        with open(os.path.join(meta, 'METADATA'), 'w') as f:
            f.write('Metadata-Version: 2.1\nName: qubesadmin\n'
                    'Version: 4.3.0\n')
        env = dict(os.environ, QUBESD_SOCKET=d2.sock, HOME=home,
                   QREXEC_SERVICES_DIR=os.path.dirname(QUBESD),
                   CALLLOG=os.path.join(tmp, 'calls.log'),
                   PYTHONPATH=src + ':' + os.path.dirname(meta))
        r = subprocess.run(['/usr/bin/python3', CLIENT_RESTORE, '-p', pw,
                            os.path.join(out, 'ours.bin')],
                           env=env, capture_output=True, text=True,
                           input='y\n', timeout=1800)
        print(r.stdout + r.stderr)
        assert r.returncode == 0, 'the client failed'
        got = os.path.join(dst, 'appvms', 'work', 'private.img')
        assert sha256(got) == want, 'the image differs'
        assert d2.ok('admin.vm.property.Get', 'work',
                     'netvm') == 'default=False type=vm net'
        assert d2.ok('admin.vm.feature.Get', 'work', 'service.foo') == '1'
        assert 'mytag' in d2.ok('admin.vm.tag.List', 'work').split()
        assert d2.ok('admin.vm.firewall.Get', 'work') == \
            'action=accept dst4=10.0.0.1/32\naction=drop\n'
        assert d2.ok('admin.vm.notes.Get', 'work') == 'some notes\n'
        print('ok: the Qubes client restored our backup (compression %s)'
              % compression)
    finally:
        for daemon in (d, d2):
            if daemon:
                daemon.kill()
        shutil.rmtree(tmp, ignore_errors=True)
        fs.close()


if __name__ == '__main__':
    main()
