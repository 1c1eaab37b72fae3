"""What the real-guest benchmarks share: a loop-mounted btrfs pool, a
private libvirtd (QEMU; TCG here), qubesd driving it with the test
guest's kernel as default_kernel and a TemplateVM "tpl", all torn down
after."""
import contextlib
import os
import shutil
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'daemon'))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'vm'))
from qubesd_harness import Daemon, LoopFS  # noqa: E402
import vmenv  # noqa: E402


def ms(values):
    """The median of @values (seconds), in ms."""
    return statistics.median(values) * 1000


@contextlib.contextmanager
def qubesd_on_libvirt(qubesd, cache):
    """Yields (daemon, libvirtd, pool filesystem, guest log folder)."""
    version, kdir = vmenv.guest_kernel(cache)
    fs = LoopFS('btrfs', '4G')
    lv = d = None
    try:
        lv = vmenv.private_libvirtd(cache, keep=[fs.mnt])
        logs = os.path.join(lv.work, 'logs')
        base = os.path.join(fs.mnt, 'qubes')
        os.makedirs(base)
        vmenv.install_kernel(base, version, kdir)
        d = Daemon(qubesd, base, offline=False,
                   args=['--libvirt-uri', lv.uri, '--domain-type', 'qemu',
                         '--log-dir', logs],
                   wrapper=lv.enter()).start()
        d.ok('admin.property.Set', arg='default_kernel', payload=version)
        d.ok('admin.vm.Create.TemplateVM', payload='name=tpl label=black')
        yield d, lv, fs, logs
    finally:
        if d:
            d.stop(check=False)
        if lv:
            lv.stop()
            shutil.rmtree(lv.work, ignore_errors=True)
        fs.close()
