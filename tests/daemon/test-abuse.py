#!/usr/bin/python3
"""Hostile and unlucky clients of qubesd, through its socket: connection
limits and deadlines, path traversal in every kind of name, links planted
in the pool, over-long and non-ASCII input, a full disk and a dead disk.

    test-abuse.py PATH/TO/qubesd

What must hold: every hostile call is refused (a Qubes exception or a
dropped connection) and changes nothing, neither qubes.xml nor any file
outside the pool; slow, idle and flooding clients are cut off at their
limit while others are served; storage errors reach the client as
StoragePoolException naming the pool, and the same call succeeds once the
disk has room again.
"""
import contextlib
import os
import select
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qubesd_harness import run_file  # noqa: E402
from qubesd_harness import Daemon, LoopFS, parse  # noqa: E402
from image_digest import content_digest  # noqa: E402

QUBESD = os.path.abspath(sys.argv[1])
TIMEOUT = 2        # --request-timeout of the main daemon
MAX_CONN = 48      # --max-connections
BACKLOG = 65536    # --max-event-backlog
MARK = 'qubesevil'

state = {}


def setup():
    fs = LoopFS('xfs')
    state['fs'] = fs
    outside = os.path.join(fs.mnt, 'outside')
    os.makedirs(os.path.join(outside, 'victim'))
    with open(os.path.join(outside, 'secret'), 'wb') as f:
        f.write(b'secret data\n' * 1000)
    base = os.path.join(fs.mnt, 'qubes')
    d = Daemon(QUBESD, base, args=[
        '--request-timeout', str(TIMEOUT), '--max-connections',
        str(MAX_CONN), '--max-event-backlog', str(BACKLOG)]).start()
    state['d'] = d
    d.ok('admin.vm.Create.TemplateVM', payload='name=tpl label=black')
    d.ok('admin.vm.Create.AppVM', arg='tpl', payload='name=work label=blue')
    return d


def D():
    return state['d']


def refused(r):
    assert r[0] in ('drop', 'exc'), r


def tree(top, contents=True):
    """{relative path: (kind, what)} under @top: what is a link's target,
    a file's content hash, or without @contents its size, mtime and inode
    (the pool's images are sparse gigabytes)."""
    out = {}
    for root, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(root, n)
            rel = os.path.relpath(p, top)
            if os.path.islink(p):
                out[rel] = ('link', os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ('dir', None)
            elif contents:
                out[rel] = ('file', content_digest(p))
            else:
                st = os.stat(p)
                out[rel] = ('file', (st.st_size, st.st_mtime_ns, st.st_ino))
    return out


def outside_tree():
    """Everything on the test filesystem outside the pool."""
    fs = state['fs']
    return {n: tree(os.path.join(fs.mnt, n)) for n in os.listdir(fs.mnt)
            if n != 'qubes'}


def xml_bytes():
    with open(os.path.join(D().base_dir, 'qubes.xml'), 'rb') as f:
        return f.read()


def connect():
    s = socket.socket(socket.AF_UNIX)
    s.connect(D().sock)
    return s


def closed_by_peer(s, wait):
    """True when @s reaches EOF (or is reset) within @wait seconds; what
    was sent before is read and dropped."""
    end = time.monotonic() + wait
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([s], [], [], left)
        if r:
            try:
                if not s.recv(65536):
                    return True
            except (ConnectionResetError, BrokenPipeError):
                return True


def log_has(text):
    return text in D().read_log()


# ---- connection limits ----

def test_half_sent_requests_time_out():
    """A client that sends nothing, part of a request, or a request one
    byte at a time is closed after --request-timeout; others are served
    meanwhile."""
    d = D()
    t0 = time.monotonic()
    silent = connect()
    partial = connect()
    partial.sendall(b'admin.vm.List+ dom0 name')
    trickle = connect()
    trickled = 0
    head = b'admin.vm.List+ dom0 name dom0\0'
    closed = {}
    while time.monotonic() - t0 < TIMEOUT + 5 and len(closed) < 3:
        for name, s in (('silent', silent), ('partial', partial),
                        ('trickle', trickle)):
            if name not in closed and closed_by_peer(s, 0.05):
                closed[name] = time.monotonic() - t0
        if 'trickle' not in closed:
            try:
                trickle.send(head[trickled % len(head):][:1])
                trickled += 1
            except (BrokenPipeError, ConnectionResetError):
                closed['trickle'] = time.monotonic() - t0
        assert d.ok('admin.vm.List').startswith('dom0 class=AdminVM')
        time.sleep(0.1)
    for s in (silent, partial, trickle):
        s.close()
    assert set(closed) == {'silent', 'partial', 'trickle'}, closed
    for name, t in closed.items():
        # g_timeout_add_seconds fires within the second it is due
        assert TIMEOUT - 1 <= t <= TIMEOUT + 3, (name, t)
    assert trickled > 5, trickled
    assert log_has('did not send its request in time')


def test_unread_answer_times_out():
    """A client that sends its request but does not take a large answer
    is closed after --request-timeout; a reading client gets it whole."""
    d = D()
    tags = ['%s%d' % ('t' * 60000, i) for i in range(5)]
    for t in tags:
        d.ok('admin.vm.tag.Set', 'work', t)
    try:
        whole = d.raw(b'admin.vm.tag.List+ dom0 name work\0')
        assert parse(whole)[0] == 'ok' and len(whole) > 300000
        s = connect()
        s.sendall(b'admin.vm.tag.List+ dom0 name work\0')
        s.shutdown(socket.SHUT_WR)
        time.sleep(TIMEOUT + 2)
        got = 0
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += len(b)
        s.close()
        assert 0 < got < len(whole), (got, len(whole))
        assert log_has('did not take its answer in time')
    finally:
        for t in tags:
            d.ok('admin.vm.tag.Remove', 'work', t)


def test_connection_limit_evicts_oldest_half_sent():
    """Past --max-connections a new connection closes the oldest one still
    sending its request: a flood of half-sent connections cannot keep a
    real client out."""
    d = D()
    flood = []
    try:
        for _ in range(3 * MAX_CONN):
            s = connect()
            s.sendall(b'admin.vm.List+ dom0')
            flood.append(s)
        assert d.ok('admin.vm.List').startswith('dom0 class=AdminVM')
        # the oldest were closed, the newest are still open
        assert all(closed_by_peer(s, 1) for s in flood[:MAX_CONN])
        assert not any(closed_by_peer(s, 0) for s in flood[-MAX_CONN // 2:])
        fds = len(os.listdir('/proc/%d/fd' % d.proc.pid))
        assert fds < MAX_CONN + 40, fds
    finally:
        for s in flood:
            s.close()
    assert log_has('too many connections')


def test_connection_limit_refuses_when_all_are_served():
    """When every open connection has its request in (events subscribers
    here), a new connection is refused rather than one of theirs closed;
    once they leave, calls are served again."""
    d = D()
    subs = []
    try:
        for _ in range(MAX_CONN):
            s = connect()
            s.sendall(b'admin.Events+ dom0 name dom0\0')
            s.shutdown(socket.SHUT_WR)
            subs.append(s)
        for s in subs:  # each is established before the next test
            s.settimeout(10)
            assert s.recv(4096).startswith(b'1\0')
        r = d.call('admin.vm.List')
        assert r == ('drop',), r
        assert not any(closed_by_peer(s, 0) for s in subs)
    finally:
        for s in subs:
            s.close()
    for _ in range(100):
        if d.call('admin.vm.List')[0] == 'ok':
            break
        time.sleep(0.05)
    assert d.ok('admin.vm.List').startswith('dom0 class=AdminVM')


def test_events_client_not_reading_is_dropped():
    """An admin.Events client that stops reading is dropped once its unread
    events pass --max-event-backlog; one that reads gets every event."""
    d = D()
    lazy = connect()
    lazy.sendall(b'admin.Events+ dom0 name dom0\0')
    lazy.shutdown(socket.SHUT_WR)
    lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    busy = connect()
    busy.sendall(b'admin.Events+ dom0 name work\0')
    busy.shutdown(socket.SHUT_WR)
    seen = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            if select.select([busy], [], [], 0.05)[0]:
                b = busy.recv(1 << 20)
                if not b:
                    seen.append(None)  # dropped
                    return
                seen.append(b)

    t = threading.Thread(target=reader)
    t.start()
    value = 'v' * 4000
    n = 0
    try:
        while n < 200 and not log_has('stopped reading its events'):
            d.ok('admin.vm.feature.Set', 'work', 'big', value + str(n))
            n += 1
        assert log_has('stopped reading its events'), n
        assert closed_by_peer(lazy, 5)
        # the reading one is still subscribed and saw every set
        d.ok('admin.vm.feature.Set', 'work', 'big', 'last')
        end = time.monotonic() + 10
        while b''.join(x or b'' for x in seen).count(
                b'domain-feature-set:big') < n + 1 and \
                time.monotonic() < end:
            time.sleep(0.05)
        stop.set()
        t.join()
        assert None not in seen, 'the reading events client was dropped'
        assert b''.join(seen).count(b'domain-feature-set:big') == n + 1
    finally:
        stop.set()
        t.join()
        lazy.close()
        busy.close()
        d.ok('admin.vm.feature.Remove', 'work', 'big')


# ---- hostile names ----

def hostile_names():
    """Traversals that would land in the filesystem's 'outside' folder
    from anywhere in the pool, and other names no kind accepts."""
    out = []
    for depth in range(1, 6):
        out.append('../' * depth + 'outside/' + MARK)
        out.append('../' * depth + 'outside/secret')
    out += ['..', '.', '/', '/tmp/' + MARK, MARK + '/../..',
            'a/' + MARK, MARK + '\\..', '%2e%2e%2f' + MARK, MARK + '\x7f']
    return out


# Names only a qube name may not have.
BAD_QUBE_NAMES = ['-' + MARK, MARK * 4, MARK + '~', '9' + MARK]


def hostile_calls():
    for n in hostile_names() + BAD_QUBE_NAMES:
        # a qube name, as destination and in each create
        yield ('admin.vm.List', n, '', '')
        yield ('admin.vm.property.Get', n, 'name', '')
        for cls in ('AppVM', 'StandaloneVM', 'TemplateVM', 'DispVM'):
            yield ('admin.vm.Create.' + cls, 'dom0',
                   'tpl' if cls == 'AppVM' else '',
                   'name=%s label=red' % n)
        yield ('admin.vm.CreateInPool.StandaloneVM', 'dom0', '',
               'name=%s label=red pool=varlibqubes' % n)
        yield ('admin.vm.property.Set', 'work', 'template', n)
        yield ('admin.vm.property.Set', 'work', 'netvm', n)
        yield ('admin.property.Set', 'dom0', 'default_template', n)
    for n in hostile_names():
        # the kernel names a folder of the linux-kernel pool
        yield ('admin.vm.property.Set', 'work', 'kernel', n)
        yield ('admin.property.Set', 'dom0', 'default_kernel', n)
        # a volume name
        for m in ('Info', 'ListSnapshots', 'Clear', 'CloneFrom'):
            yield ('admin.vm.volume.' + m, 'work', n, '')
        yield ('admin.vm.volume.Resize', 'work', n, str(4 << 30))
        yield ('admin.vm.volume.Revert', 'work', n, '1')
        yield ('admin.vm.volume.Set.revisions_to_keep', 'work', n, '2')
        # a revision
        yield ('admin.vm.volume.Revert', 'work', 'private', n)
        # a clone token
        yield ('admin.vm.volume.CloneTo', 'work', 'private', n)
        # a pool name, and a pool's own folder given as a relative path
        yield ('admin.pool.Add', 'dom0', 'file-reflink',
               'name=%s\ndir_path=%s\n' % (n, os.path.join(
                   state['fs'].mnt, 'outside', MARK)))
        yield ('admin.pool.Add', 'dom0', 'file-reflink',
               'name=%s\ndir_path=%s\n' % (MARK, n))
        for m in ('Info', 'UsageDetails', 'Remove', 'volume.List'):
            yield ('admin.pool.' + m, 'dom0', n, '')
        yield ('admin.pool.Set.revisions_to_keep', 'dom0', n, '2')
        yield ('admin.vm.CreateInPool.AppVM', 'dom0', 'tpl',
               'name=%s label=red pool=%s' % (MARK, n))
        yield ('admin.vm.CreateInPool.AppVM', 'dom0', 'tpl',
               'name=%s label=red pool:private=%s' % (MARK, n))
        # a label (the reference allows '.' and '..': a label is never a
        # path), a tag, a property name
        if n.strip('.'):
            yield ('admin.label.Create', 'dom0', n, '0x123456')
        yield ('admin.label.Get', 'dom0', n, '')
        yield ('admin.label.Remove', 'dom0', n, '')
        yield ('admin.vm.property.Set', 'work', 'label', n)
        yield ('admin.vm.tag.Set', 'work', n, '')
        yield ('admin.vm.tag.Remove', 'work', n, '')
        yield ('admin.vm.property.Set', 'work', n, '1')
        yield ('admin.vm.property.Get', 'work', n, '')
        yield ('admin.property.Set', 'dom0', n, '1')
        # the internal import of a volume, on the admin socket
        yield ('internal.vm.volume.ImportBegin', 'work', n, '')
    # non-ASCII: a qube name in the payload, a feature value
    for bad in ('wörk', 'w\u200bork', 'w\xa0rk', 'work\n', 'wo\0rk'):
        yield ('admin.vm.Create.AppVM', 'dom0', 'tpl',
               'name=%s label=red' % bad)
    # over-long: names, a payload past the 64 KiB request limit
    yield ('admin.vm.Create.AppVM', 'dom0', 'tpl',
           'name=%s label=red' % ('a' * 32))
    yield ('admin.vm.feature.Set', 'work', 'f', 'v' * 70000)


def test_hostile_names_refused_and_change_nothing():
    d = D()
    before_out = outside_tree()
    before_xml = xml_bytes()
    before_pool = tree(d.base_dir, contents=False)
    calls = 0
    for method, dest, arg, payload in hostile_calls():
        r = d.call(method, dest, arg, payload.encode('utf-8',
                                                     'surrogateescape'))
        assert r[0] in ('drop', 'exc'), \
            (method, dest[:80], arg[:80], payload[:80], r)
        calls += 1
    # non-ASCII and control bytes in the header: the framing refuses them
    for raw in ('admin.vm.List+ dom0 name wörk\0'.encode(),
                b'admin.vm.List+ dom0 name w\x01rk\0',
                b'admin.vm.tag.Set+\xff dom0 name work\0',
                b'admin.vm.List+ dom0 name ' + b'a' * 70000 + b'\0'):
        assert d.raw(raw) == b''
        calls += 1
    assert calls > 600, calls
    assert outside_tree() == before_out
    assert xml_bytes() == before_xml
    assert tree(d.base_dir, contents=False) == before_pool
    for top in ('/', '/tmp', '/var/lib', state['fs'].top):
        assert not any(MARK in n for n in os.listdir(top)), top
    assert d.ok('admin.vm.List').count('\n') == 3
    assert d.ok('admin.pool.List') == 'varlibqubes\nlinux-kernel\n'


# ---- a firewall.xml planted in a qube's folder ----

def test_planted_firewall_files():
    """firewall.xml written by someone else: malformed, of an unknown
    version, holding a bad rule, a link out, a FIFO, too large. Each Get
    answers an error naming the file and its cause, at once; nothing
    else about the qube changes; a Set replaces what was planted (never
    writing through a link)."""
    d = D()
    fs = state['fs']
    path = os.path.join(d.base_dir, 'appvms', 'work', 'firewall.xml')
    secret = os.path.join(fs.mnt, 'outside', 'secret')
    before_out = outside_tree()
    props = d.ok('admin.vm.property.GetAll', 'work')
    xml = xml_bytes()
    v2 = ('<firewall version="2"><rules><rule><properties>'
          '<property name="action">%s</property>'
          '</properties></rule></rules></firewall>')
    cases = [
        (b'<firewall version="2"><rules>', 'firewall.xml'),
        (b'<firewall version="3"/>', 'Unsupported firewall.xml version: 3'),
        ((v2 % 'allow').encode(), 'allow'),
        ((v2 % 'accept</property><property name="dstports">99999')
         .encode(), 'Ports out of range'),
        (b'\x00\xff' * 100, 'firewall.xml'),
        (('<firewall version="2"><rules>%s</rules></firewall>' %
          ('<rule/>' * 100000)).encode(), "Required property 'action'"),
    ]
    for content, why in cases:
        with open(path, 'wb') as f:
            f.write(content)
        t0 = time.monotonic()
        r = d.call('admin.vm.firewall.Get', 'work')
        assert r[0] == 'exc' and path in r[2] and why in r[2], (content[:80],
                                                                 r)
        assert time.monotonic() - t0 < 10
    os.unlink(path)
    # a link out: not followed
    os.symlink(secret, path)
    r = d.call('admin.vm.firewall.Get', 'work')
    assert r[0] == 'exc' and path in r[2], r
    d.ok('admin.vm.firewall.Set', 'work', '', b'action=drop\n')
    assert not os.path.islink(path)
    assert d.ok('admin.vm.firewall.Get', 'work') == 'action=drop\n'
    os.unlink(path)
    # a FIFO: refused at once, nothing blocks
    os.mkfifo(path)
    t0 = time.monotonic()
    r = d.call('admin.vm.firewall.Get', 'work')
    assert r[0] == 'exc' and path in r[2], r
    assert time.monotonic() - t0 < 10
    os.unlink(path)
    # too large
    with open(path, 'wb') as f:
        f.truncate(17 << 20)
    r = d.call('admin.vm.firewall.Get', 'work')
    assert r[0] == 'exc' and path in r[2], r
    os.unlink(path)
    # a huge rule list through the API: about as many as a request's
    # 64 KiB hold
    rules = b''.join(b'action=drop dst4=10.%d.%d.1 proto=tcp dstports=%d\n'
                     % (i >> 8, i & 255, i + 1) for i in range(1250))
    assert len(rules) < 65000
    d.ok('admin.vm.firewall.Set', 'work', '', rules)
    got = d.ok('admin.vm.firewall.Get', 'work')
    assert got.count('\n') == 1250, got[-200:]
    d.ok('admin.vm.firewall.Set', 'work', '', b'action=accept\n')
    # nothing else about the qube changed
    assert d.ok('admin.vm.property.GetAll', 'work') == props
    assert xml_bytes() == xml
    assert outside_tree() == before_out


# ---- links planted in the pool ----

def test_planted_links_not_followed():
    """Links put into the pool by someone with access to it: a qube's
    folder, a volume's image and a revision linked to files outside. The
    calls that would follow them fail; the files outside are untouched."""
    d = D()
    fs = state['fs']
    outside = os.path.join(fs.mnt, 'outside')
    secret = os.path.join(outside, 'secret')
    before_out = outside_tree()
    # a qube's folder linked out, before the qube is made
    os.symlink(os.path.join(outside, 'victim'),
               os.path.join(d.base_dir, 'appvms', 'victim'))
    r = d.call('admin.vm.Create.AppVM', arg='tpl',
               payload='name=victim label=red')
    assert r[0] == 'exc' and r[1] == 'StoragePoolException', r
    assert 'victim' not in d.ok('admin.vm.List')
    assert os.listdir(os.path.join(outside, 'victim')) == []
    os.unlink(os.path.join(d.base_dir, 'appvms', 'victim'))

    # a revision linked out: not listed, not reverted to
    d.ok('admin.vm.volume.Set.revisions_to_keep', 'work', 'private', '2')
    vdir = os.path.join(d.base_dir, 'appvms', 'work')
    d.ok('admin.vm.volume.Clear', 'work', 'private')
    revs = d.ok('admin.vm.volume.ListSnapshots', 'work', 'private')
    real = [n for n in os.listdir(vdir) if n.startswith('private.img.')]
    assert len(real) == 1 and revs == '1\n', (real, revs)
    stamp = real[0].split('@', 1)[1]
    planted = os.path.join(vdir, 'private.img.7@' + stamp)
    os.symlink(secret, planted)
    assert d.ok('admin.vm.volume.ListSnapshots', 'work', 'private') == '1\n'
    refused(d.call('admin.vm.volume.Revert', 'work', 'private', '7'))
    os.unlink(planted)

    # the image itself linked out: each call refuses it (revert and clear
    # would keep it as a revision)
    img = os.path.join(vdir, 'private.img')
    os.rename(img, img + '.aside')
    try:
        for method, arg, payload in (
                ('admin.vm.volume.Resize', 'private', str(3 << 30)),
                ('admin.vm.volume.CloneFrom', 'private', ''),
                ('admin.vm.volume.Revert', 'private', '1'),
                ('admin.vm.volume.Clear', 'private', '')):
            if os.path.lexists(img):
                os.unlink(img)
            os.symlink(secret, img)
            r = d.call(method, 'work', arg, payload)
            if method == 'admin.vm.volume.CloneFrom' and r[0] == 'ok':
                d.ok('admin.vm.Create.AppVM', arg='tpl',
                     payload='name=copy label=red')
                r = d.call('admin.vm.volume.CloneTo', 'copy', 'private',
                           r[1])
                d.ok('admin.vm.Remove', 'copy')
            assert r[0] == 'exc' and r[1] == 'StoragePoolException', \
                (method, r)
            # the cause, with the pool's name or the image's path
            assert '(pool varlibqubes)' in r[2] or img in r[2], r
            assert os.path.islink(img)
    finally:
        os.unlink(img)
        os.rename(img + '.aside', img)
    assert outside_tree() == before_out
    # and the qube's storage works again
    d.ok('admin.vm.volume.Clear', 'work', 'private')
    d.ok('admin.vm.volume.Set.revisions_to_keep', 'work', 'private', '1')


# ---- full and dead disks ----

def fill(path):
    """Fills the filesystem of @path (as root, the reserved blocks too);
    returns the filler's path."""
    filler = os.path.join(path, 'filler')
    with open(filler, 'wb') as f:
        for size in (1 << 20, 4096):
            block = b'\xa5' * size
            while True:
                try:
                    f.write(block)
                    f.flush()
                except OSError:
                    break
        try:
            os.fsync(f.fileno())
        except OSError:
            pass
    # space freed by the first failed write's flush is taken again
    with open(filler, 'ab') as f:
        while True:
            try:
                f.write(b'\xa5' * 4096)
                f.flush()
                os.fsync(f.fileno())
            except OSError:
                break
    return filler


def digest(path):
    # the images are 2 GiB of mostly holes: only their data is read
    return content_digest(path)


@contextlib.contextmanager
def own_daemon(kind, size, appvms):
    """A qubesd of its own on a fresh @kind filesystem of @size, with a
    template tpl and the AppVMs @appvms; stopped (cleanly) at the end."""
    fs = LoopFS(kind, size=size)
    d = Daemon(QUBESD, os.path.join(fs.mnt, 'qubes'))
    try:
        d.start()
        d.ok('admin.vm.Create.TemplateVM', payload='name=tpl label=black')
        for name in appvms:
            d.ok('admin.vm.Create.AppVM', arg='tpl',
                 payload='name=%s label=red' % name)
        yield fs, d
    finally:
        d.stop()
        d.cleanup()
        fs.close()


def test_full_disk():
    """On a full ext4 (no reflinks: a clone copies its data), a clone into
    a qube and a qubes.xml save fail with the cause and the pool's name;
    nothing committed changes; both succeed once space is freed."""
    with own_daemon('ext4', '256M', ['src', 'dst']) as (fs, d):
        src = os.path.join(d.base_dir, 'appvms', 'src', 'private.img')
        dst = os.path.join(d.base_dir, 'appvms', 'dst', 'private.img')
        with open(src, 'r+b') as f:
            f.write(os.urandom(64 << 20))
        with open(dst, 'r+b') as f:
            f.write(b'dst data')
        sums = (digest(src), digest(dst))
        dst_dir = sorted(os.listdir(os.path.dirname(dst)))
        filler = fill(fs.mnt)
        token = d.ok('admin.vm.volume.CloneFrom', 'src', 'private')
        r = d.call('admin.vm.volume.CloneTo', 'dst', 'private', token)
        assert r[0] == 'exc' and r[1] == 'StoragePoolException', r
        assert 'No space left on device' in r[2] and \
            '(pool varlibqubes)' in r[2], r
        r = d.call('admin.vm.property.Set', 'dst', 'memory', '1234')
        assert r[0] == 'exc' and 'No space left on device' in r[2], r
        assert (digest(src), digest(dst)) == sums
        assert sorted(os.listdir(os.path.dirname(dst))) == dst_dir
        os.unlink(filler)
        token = d.ok('admin.vm.volume.CloneFrom', 'src', 'private')
        d.ok('admin.vm.volume.CloneTo', 'dst', 'private', token)
        assert digest(dst) == sums[0]
        d.ok('admin.vm.property.Set', 'dst', 'memory', '1235')
        d.stop()
        d.start()
        assert d.ok('admin.vm.property.Get', 'dst', 'memory') == \
            'default=False type=int 1235'


def test_dead_disk():
    """The disk under a running qubesd fails (XFS shut down): storage calls
    answer StoragePoolException naming the pool, changes answer with the
    cause, calls that need no disk are still served; after a restart on
    the recovered filesystem every answered change is there."""
    with own_daemon('xfs', '512M', ['work']) as (fs, d):
        d.ok('admin.vm.volume.Set.revisions_to_keep', 'work', 'private', '2')
        d.ok('admin.vm.volume.Clear', 'work', 'private')
        d.ok('admin.vm.property.Set', 'work', 'memory', '777')
        fs.shut_down()
        for method, arg, payload in (
                ('admin.vm.volume.Clear', 'private', ''),
                ('admin.vm.volume.Revert', 'private', '1'),
                ('admin.vm.volume.Resize', 'private', str(3 << 30)),
                ('admin.vm.volume.ListSnapshots', 'private', '')):
            r = d.call(method, 'work', arg, payload)
            assert r[0] == 'exc' and r[1] == 'StoragePoolException', \
                (method, r)
            assert '(pool varlibqubes)' in r[2], (method, r)
        r = d.call('admin.vm.property.Set', 'work', 'memory', '888')
        assert r[0] == 'exc' and 'cannot save' in r[2], r
        assert 'work class=AppVM' in d.ok('admin.vm.List')
        d.kill()
        fs.remount()
        d.start()
        assert d.ok('admin.vm.property.Get', 'work', 'memory') == \
            'default=False type=int 777'
        assert d.ok('admin.vm.volume.ListSnapshots', 'work', 'private') \
            == '1\n'
        d.ok('admin.vm.volume.Clear', 'work', 'private')


if __name__ == '__main__':
    sys.exit(run_file(globals(), setup, state))
