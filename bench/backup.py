#!/usr/bin/python3
"""Backup and restore: ours against the reference's pipeline, in one run.

    bench/backup.py QUBESD [RUNS]

One qube whose private image is 10 GiB holding 2 GiB of data (1 GiB
random, 1 GiB of compressible text, in 64 MiB runs spread over the
image), on a loop-mounted XFS (the loop device in direct I/O, as a disk). Each run (default 1) times, on the same
machine and with the same key derivation cost (scrypt log2 N 19, r 8,
p 1, the scrypt tool's own choice on this machine class):

- ours, backup: admin.backup.Execute of a profile (gzip) through qubesd;
- reference, backup: the reference's pipeline from Debian's tools,
  `tar --sparse -c | gzip | split -b 100M --filter 'scrypt enc'` (gzip
  runs beside the encryption of the chunk before, as master's does);
- ours, restore: qvm-backup-restore into a fresh qubesd (the image made,
  written at its data's offsets);
- reference, restore: `scrypt dec` of each chunk in order | gunzip |
  `tar -x --sparse`.

Each timed step begins after a `sync`, so that none pays for the
writeback of the one before.

Prints the medians in MB/s of data (2 GiB / seconds), the ratios, the
peak memory of qubesd and of qvm-backup-restore, and the KDF parameters.
"""
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'daemon'))
from qubesd_harness import Daemon, LoopFS, make_kernel  # noqa: E402

MiB = 1 << 20
DATA = 2 << 30
PASS = 'bench pass phrase'


def fill_image(path):
    """10 GiB with 2 GiB of data: 16 runs of 64 MiB random, 16 of text."""
    text = (b'The quick brown fox jumps over the lazy dog. 0123456789\n' *
            (MiB // 56 + 1))[:MiB]
    with open(path, 'r+b') as f:
        for i in range(32):
            f.seek(i * (10 << 30) // 32)
            for _ in range(64):
                f.write(os.urandom(MiB) if i % 2 == 0 else text)
        f.flush()
        os.fsync(f.fileno())


def vm_hwm(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    return 0


def run(cmd, **kw):
    t = time.monotonic()
    subprocess.run(cmd, check=True, **kw)
    return time.monotonic() - t


def main():
    qubesd = os.path.abspath(sys.argv[1])
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    tools = os.path.dirname(qubesd)
    # the loop device writes its file directly, as a disk would: else the
    # file's own page cache doubles every write, and the kernel's throttling
    # of dirty pages measures this machine rather than the programs
    fs = LoopFS('xfs', size='40G', direct_io=True)
    tmp = tempfile.mkdtemp(prefix='bench-backup-', dir=fs.mnt)
    times = {k: [] for k in ('ours-backup', 'ref-backup', 'ours-restore',
                             'ref-restore')}
    hwm_qubesd = hwm_restore = 0
    d = d2 = None
    try:
        pw = os.path.join(tmp, 'pw')
        with open(pw, 'w') as f:
            f.write(PASS + '\n')
        profiles = os.path.join(tmp, 'profiles')
        os.mkdir(profiles)
        base = os.path.join(fs.mnt, 'src')
        make_kernel(base, '6.1.0')
        d = Daemon(qubesd, base, args=['--backup-dir', profiles]).start()
        d.ok('admin.vm.Create.TemplateVM', payload='name=tpl label=black')
        d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=work label=red')
        d.ok('admin.vm.volume.Resize', 'work', 'private', str(10 << 30))
        img = os.path.join(base, 'appvms', 'work', 'private.img')
        fill_image(img)
        out = os.path.join(tmp, 'out')
        os.mkdir(out)
        with open(os.path.join(profiles, 'b.conf'), 'w') as f:
            f.write('include: [tpl, work]\ndestination_vm: dom0\n'
                    'destination_path: %s/ours.bin\npassphrase_text: %s\n'
                    % (out, PASS))
        for r in range(runs):
            for n in os.listdir(out):
                os.unlink(os.path.join(out, n))
            subprocess.run(['sync'])
            t = time.monotonic()
            d.ok('admin.backup.Execute', arg='b', timeout=None)
            times['ours-backup'].append(time.monotonic() - t)
            hwm_qubesd = max(hwm_qubesd, vm_hwm(d.proc.pid))
            # the reference's pipeline, the same cost
            ref = os.path.join(out, 'ref')
            os.mkdir(ref)
            enc = ('scrypt enc --logN 19 -r 8 -p 1 --passphrase file:%s - '
                   '"$FILE.enc"' % pw)
            subprocess.run(['sync'])
            times['ref-backup'].append(run(
                'tar --sparse -cf - -C %s private.img | gzip | '
                'split -b 100M -a 3 -d --filter=%s - %s/private.img.'
                % (os.path.dirname(img), shlex_quote(enc), ref),
                shell=True, executable='/bin/bash'))
            # ours, restore into a fresh qubesd
            dst = os.path.join(fs.mnt, 'dst%d' % r)
            make_kernel(dst, '6.1.0')
            prof2 = os.path.join(tmp, 'p%d' % r)
            os.mkdir(prof2)
            d2 = Daemon(qubesd, dst, args=['--backup-dir', prof2]).start()
            env = dict(os.environ, QUBESD_SOCKET=d2.sock)
            subprocess.run(['sync'])
            t = time.monotonic()
            subprocess.run([os.path.join(tools, 'qvm-backup-restore'), '-p',
                            pw, os.path.join(out, 'ours.bin')], check=True,
                           env=env, stdout=subprocess.DEVNULL)
            times['ours-restore'].append(time.monotonic() - t)
            hwm_restore = max(hwm_restore, resource.getrusage(
                resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
            got = os.path.join(dst, 'appvms', 'work', 'private.img')
            same = subprocess.run(['cmp', img, got]).returncode == 0
            if not same:
                sys.exit('the restored image differs')
            alloc = os.stat(got).st_blocks * 512
            d2.stop()
            d2.cleanup()
            d2 = None
            shutil.rmtree(dst)
            # the reference's restore
            xdir = os.path.join(out, 'x')
            os.mkdir(xdir)
            chunks = sorted(n for n in os.listdir(ref) if n.endswith('.enc'))
            script = ('for c in %s; do scrypt dec --passphrase file:%s '
                      '%s/$c; done | gunzip | tar -x --sparse -C %s' %
                      (' '.join(chunks), pw, ref, xdir))
            subprocess.run(['sync'])
            times['ref-restore'].append(run(script, shell=True,
                                            executable='/bin/bash'))
            shutil.rmtree(ref)
            shutil.rmtree(xdir)
        d.stop()
        d.cleanup()
        d = None
    finally:
        for daemon in (d, d2):
            if daemon:
                daemon.kill()
        shutil.rmtree(tmp, ignore_errors=True)
        fs.close()

    def mbs(k):
        return DATA / statistics.median(times[k]) / 1e6
    print('KDF: scrypt log2 N 19, r 8, p 1 (both sides); gzip; %d run(s)'
          % runs)
    print('data: 2 GiB in a 10 GiB image (1 GiB random, 1 GiB text)')
    for k in ('ours-backup', 'ref-backup', 'ours-restore', 'ref-restore'):
        print('%-13s median %6.1f s  %6.1f MB/s  (%s)' % (
            k, statistics.median(times[k]), mbs(k),
            ', '.join('%.1f' % t for t in times[k])))
    print('backup:  ours / reference = %.2fx' %
          (mbs('ours-backup') / mbs('ref-backup')))
    print('restore: ours / reference = %.2fx' %
          (mbs('ours-restore') / mbs('ref-restore')))
    print('restored image allocated: %.0f MiB of 10240 MiB' % (alloc / MiB))
    print('peak memory: qubesd %.0f MiB, qvm-backup-restore %.0f MiB' % (
        hwm_qubesd / MiB, hwm_restore / MiB))


def shlex_quote(s):
    import shlex
    return shlex.quote(s)


if __name__ == '__main__':
    main()
