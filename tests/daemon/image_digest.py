"""Digests of sparse images that read only their data (the pool's images
are gigabytes of holes):

- data_pieces(f, step, align): (offset, bytes) of an open file's data;
- sha256_sparse(path): the sha256 of the whole file, holes hashed as
  zeros without being read;
- content_digest(path): a digest of the logical content (the size, then
  each 4 KiB block that is not all zeros with its offset), equal for
  equal content whatever the holes.
"""
import hashlib
import os


def data_pieces(f, step, align=1):
    """(offset, bytes) of the data of the open file @f, its holes skipped
    (never read), in reads of at most @step bytes, each run of data from
    an offset rounded down to @align."""
    fd = f.fileno()
    size = os.fstat(fd).st_size
    pos = 0
    while pos < size:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            return  # only a hole is left
        hole = os.lseek(fd, data, os.SEEK_HOLE)
        off = data - data % align
        f.seek(off)
        while off < hole:
            b = f.read(min(step, hole - off))
            if not b:
                return
            yield off, b
            off += len(b)
        pos = hole


def sha256_sparse(path):
    """sha256 of the whole file, its holes hashed as zeros without being
    read."""
    h = hashlib.sha256()
    zeros = bytes(8 << 20)
    pos = 0

    def zeros_to(end):
        nonlocal pos
        while pos < end:
            n = min(len(zeros), end - pos)
            h.update(zeros[:n])
            pos += n
    with open(path, 'rb') as f:
        for off, b in data_pieces(f, 8 << 20):
            zeros_to(off)
            h.update(b)
            pos = off + len(b)
        zeros_to(os.fstat(f.fileno()).st_size)
    return h.hexdigest()


def content_digest(path):
    """A digest of the file's logical content that reads only its data:
    its size, then each 4 KiB block that is not all zeros with its
    offset (holes and zero blocks alike are skipped)."""
    h = hashlib.sha256()
    h.update(os.path.getsize(path).to_bytes(8, 'little'))
    zero = bytes(4096)
    with open(path, 'rb') as f:
        for off, b in data_pieces(f, 1 << 20, align=4096):
            for i in range(0, len(b), 4096):
                blk = b[i:i + 4096]
                if blk != zero[:len(blk)]:
                    h.update((off + i).to_bytes(8, 'little'))
                    h.update(blk)
    return h.hexdigest()
