#!/usr/bin/python3
"""The demo's hypervisor: a private libvirtd (QEMU; TCG without /dev/kvm)
and a small guest kernel, as the VM tests use them (tests/vm/vmenv.py).

    demo-vm.py start DEMO_DIR   # prints shell assignments: uri, enter,
                                # kernel (the version installed in
                                # DEMO_DIR/qubes/vm-kernels)
    demo-vm.py stop DEMO_DIR    # ends libvirtd, its guests and netns
"""
import os
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'vm'))
import vmenv  # noqa: E402


def start(demo):
    cache = os.path.join(demo, 'vm-cache')
    version, kdir = vmenv.guest_kernel(cache)
    vmenv.install_kernel(os.path.join(demo, 'qubes'), version, kdir)
    lv = vmenv.private_libvirtd(cache, prefix='qvdemo')
    with open(os.path.join(demo, 'libvirtd-dir'), 'w') as f:
        f.write('%s\n' % lv.work)
    with open(os.path.join(demo, 'libvirtd-netns'), 'w') as f:
        f.write('%s\n' % lv.netns)
    print("uri='%s'" % lv.uri)
    print("enter='%s'" % ' '.join(lv.enter()))
    print("kernel='%s'" % version)


def stop(demo):
    try:
        with open(os.path.join(demo, 'libvirtd-dir')) as f:
            work = f.read().strip()
        with open(os.path.join(demo, 'libvirtd-netns')) as f:
            netns = f.read().strip()
    except FileNotFoundError:
        return
    lvdir = os.path.join(work, 'lv')
    try:
        with open(os.path.join(lvdir, 'libvirtd.pid')) as f:
            os.kill(int(f.read().strip()), signal.SIGKILL)
    except (OSError, ValueError):
        pass
    vmenv.kill_leftovers(lvdir, netns)
    subprocess.run(['rm', '-rf', work])


if __name__ == '__main__':
    {'start': start, 'stop': stop}[sys.argv[1]](os.path.abspath(sys.argv[2]))
