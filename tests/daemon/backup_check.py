"""Reading a Qubes backup (format 4) the way the Qubes restore does, with
Debian's tools and Python's tarfile, for the daemon's backup tests: the
outer tar, each member decrypted by the scrypt tool, the chunks of each
file joined, decompressed by the header's filter, its inner tar parsed.
Nothing of qubesd's own reader is used, so a backup that passes here is
one the reference's pipeline reads.
"""
import concurrent.futures
import io
import os
import subprocess
import tarfile
import tempfile


def scrypt_dec(data, passphrase):
    with tempfile.TemporaryDirectory() as t:
        src = os.path.join(t, 'in')
        pw = os.path.join(t, 'pw')
        with open(src, 'wb') as f:
            f.write(data)
        with open(pw, 'w') as f:
            f.write(passphrase + '\n')
        r = subprocess.run(['scrypt', 'dec', '--passphrase', 'file:' + pw,
                            src], capture_output=True)
        if r.returncode != 0:
            raise AssertionError('scrypt dec: %s' % r.stderr.decode())
        return r.stdout


def decompress(data, header):
    if header.get('compressed') != 'True':
        return data
    prog = header.get('compression-filter', 'gzip')
    r = subprocess.run([prog, '-d'], input=data, capture_output=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


class Backup:
    """@path read whole: .header (dict), .names (outer members in order),
    .files (file name -> its inner tar, as a tarfile)."""

    def __init__(self, path, passphrase):
        self.names = []
        enc = {}
        with tarfile.open(path, 'r:') as t:
            for m in t:
                self.names.append(m.name)
                enc[m.name] = t.extractfile(m).read()
        assert self.names[:2] == ['backup-header', 'backup-header.hmac'], \
            self.names[:4]
        text = enc['backup-header'].decode()
        assert scrypt_dec(enc['backup-header.hmac'],
                          'backup-header!' + passphrase).decode() == text
        self.header_text = text
        self.header = dict(line.split('=', 1)
                           for line in text.splitlines() if line)
        bid = self.header['backup-id']
        streams = {}
        order = []
        parts = []
        for name in self.names[2:]:
            assert name.endswith('.enc'), name
            base, num = name[:-4].rsplit('.', 1)
            parts.append((name, base, num))
        # the scrypt tool's derivations, two at a time (one per core)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            plains = list(pool.map(
                lambda p: scrypt_dec(enc[p[0]], '%s!%s.%s!%s' % (
                    bid, p[1], p[2], passphrase)), parts))
        for (name, base, num), plain in zip(parts, plains):
            if base not in streams:
                assert num == '000', name
                streams[base] = []
                order.append(base)
            assert int(num) == len(streams[base]), name
            streams[base].append(plain)
        self.order = order
        self.files = {}
        for base in order:
            raw = decompress(b''.join(streams[base]), self.header)
            self.files[base] = tarfile.open(fileobj=io.BytesIO(raw), mode='r:')

    def member_bytes(self, base, name=None):
        t = self.files[base]
        m = t.getmember(name or base)
        return t.extractfile(m).read()

    def same_sparse(self, base, source):
        """The member @base holds @source's data at its offsets, and only
        holes where @source has holes (compared extent by extent, never
        reading a hole)."""
        t = self.files[base]
        m = t.getmember(base)
        st = os.stat(source)
        assert m.size == st.st_size, (m.size, st.st_size)
        f = t.extractfile(m)
        extents = m.sparse if m.sparse else [(0, m.size)]
        with open(source, 'rb') as src:
            covered = []
            for off, n in extents:
                if not n:
                    continue
                f.seek(off)
                src.seek(off)
                assert f.read(n) == src.read(n), (base, off, n)
                covered.append((off, off + n))
            # every data extent of the source is within what was stored
            pos = 0
            fd = src.fileno()
            while pos < st.st_size:
                try:
                    d = os.lseek(fd, pos, os.SEEK_DATA)
                except OSError:
                    break
                h = os.lseek(fd, d, os.SEEK_HOLE)
                for a in range(d, h, 4096):
                    assert any(lo <= a < hi for lo, hi in covered), \
                        (base, a)
                pos = h
        return True
