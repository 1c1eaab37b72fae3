#!/usr/bin/python3
"""The cost of qubesd around a qube's start and stop.

    bench/vm-cycle.py QUBESD CACHE_DIR [CYCLES]

A qube (256 MiB, the test guest of tests/vm/vmenv.py) on a loop-mounted
btrfs pool under a private libvirtd (QEMU; TCG here), started and killed
CYCLES times (default 10) through qubesd's socket (admin.vm.Start, then
admin.vm.Kill, which answers once the qube stopped and its storage is
stopped), interleaved with the same domain XML (qubesd's own, on reflink
copies of its images) created and destroyed with the libvirt API alone.
Both answer when the domain runs (the guest's boot is not waited for) and
when it is gone. Prints the medians, qubesd's overhead per start and per
stop (ms) and its share of a start.
"""
import os
import re
import subprocess
import sys
import time

from benchvm import ms, qubesd_on_libvirt

try:
    import libvirt  # python3-libvirt
except ImportError:
    sys.exit('python3-libvirt is missing (scripts/install-deps installs it)')


def alone_xml(xml, copies_dir):
    """qubesd's domain XML for a domain of its own: another name, no
    uuid, its disks on reflink copies of qubesd's running images."""
    xml = re.sub(r'<name>[^<]*</name>', '<name>bench-alone</name>', xml, 1)
    xml = re.sub(r'<uuid>[^<]*</uuid>', '', xml, 1)
    xml = re.sub(r"<log file='[^']*'", "<log file='%s'"
                 % os.path.join(copies_dir, 'console.log'), xml)

    def copy(m):
        dst = os.path.join(copies_dir, os.path.basename(m.group(1)))
        subprocess.run(['cp', '--reflink=auto', '--sparse=always',
                        m.group(1), dst], check=True)
        return "<source file='%s'" % dst
    return re.sub(r"<source file='([^']*)'", copy, xml)


def main():
    qubesd = os.path.abspath(sys.argv[1])
    cache = os.path.abspath(sys.argv[2])
    cycles = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    with qubesd_on_libvirt(qubesd, cache) as (d, lv, fs, logs):
        d.ok('admin.vm.Create.AppVM', arg='tpl',
             payload='name=bench label=red')
        for k, v in (('memory', '256'), ('maxmem', '256'), ('netvm', '')):
            d.ok('admin.vm.property.Set', 'bench', k, v)
        conn = libvirt.open(lv.uri)
        copies = os.path.join(fs.mnt, 'alone')
        os.makedirs(copies)
        # a first cycle warms both up and gives qubesd's XML
        d.ok('admin.vm.Start', 'bench')
        xml = alone_xml(conn.lookupByName('bench').XMLDesc(
            libvirt.VIR_DOMAIN_XML_INACTIVE), copies)
        d.ok('admin.vm.Kill', 'bench')
        conn.createXML(xml, 0).destroy()
        q_start, q_stop, l_start, l_stop = [], [], [], []
        for _ in range(cycles):
            t0 = time.perf_counter()
            d.ok('admin.vm.Start', 'bench')
            t1 = time.perf_counter()
            d.ok('admin.vm.Kill', 'bench')
            t2 = time.perf_counter()
            dom = conn.createXML(xml, 0)
            t3 = time.perf_counter()
            dom.destroy()
            t4 = time.perf_counter()
            q_start.append(t1 - t0)
            q_stop.append(t2 - t1)
            l_start.append(t3 - t2)
            l_stop.append(t4 - t3)
        conn.close()
        over_start = ms(q_start) - ms(l_start)
        over_stop = ms(q_stop) - ms(l_stop)
        print('cycles=%d (medians, ms)' % cycles)
        print('%-32s %8s %8s' % ('', 'start', 'stop'))
        print('%-32s %8.1f %8.1f' % ('qubesd (Start, Kill)', ms(q_start),
                                      ms(q_stop)))
        print('%-32s %8.1f %8.1f' % ('libvirt alone (create, destroy)',
                                      ms(l_start), ms(l_stop)))
        print('%-32s %8.1f %8.1f' % ('qubesd overhead', over_start,
                                      over_stop))
        print('start_overhead_ms=%.1f stop_overhead_ms=%.1f '
              'start_ratio=%.3f' % (over_start, over_stop,
                                    ms(q_start) / ms(l_start)))


if __name__ == '__main__':
    main()
