#!/usr/bin/python3
"""Randomized model test: whatever sequence of Admin API calls qubesd
answered, the qubes.xml it leaves loads in a fresh qubesd that gives the
same answers.

Thousands of random calls (creates, removes, clones, property sets and
resets with good and bad values, features, tags, notes, volume changes,
pool and label changes) go through the socket. Every call must be
answered (a value or an exception, never a dropped connection); at each
checkpoint the daemon is stopped (cleanly, or killed: every answered
change is on disk already) and a fresh one started on the same folder,
which must load without a warning and answer every property, feature,
tag, note, volume, pool and label exactly as before.

    test-model.py PATH/TO/qubesd [--calls N] [--checkpoints K] [--seed S]

CI runs a bounded number of calls; scripts/long-tests runs many more.
The seed is printed; a failure is replayed by passing it back.
"""
import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qubesd_harness import run_file  # noqa: E402
from qubesd_harness import Daemon, LoopFS, make_kernel  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument('qubesd')
ap.add_argument('--calls', type=int,
                default=int(os.environ.get('QUBES_MODEL_CALLS', '1500')))
ap.add_argument('--checkpoints', type=int, default=6)
ap.add_argument('--seed', type=int, default=None)
opts = ap.parse_args()
QUBESD = os.path.abspath(opts.qubesd)
SEED = opts.seed if opts.seed is not None else int(time.time() * 1000) % 10**9

state = {}
CLASSES = ['AppVM', 'TemplateVM', 'StandaloneVM', 'DispVM', 'RemoteVM']
VOLUMES = ['root', 'private', 'volatile', 'kernel']
WRITES = ('Set', 'Create', 'Remove', 'Reset', 'Clone', 'Add', 'Resize',
          'Revert', 'Clear')
COLOURS = ['0xcc0000', '0x73d216', '#123456', 'red', '0x1234567', '']


def setup():
    fs = LoopFS('xfs', size='4G')
    state['fs'] = fs
    os.mkdir(os.path.join(fs.mnt, 'pools'))
    base = os.path.join(fs.mnt, 'qubes')
    make_kernel(base, '6.1.0', ('vmlinuz', 'initramfs', 'modules.img'))
    state['d'] = Daemon(QUBESD, base).start()


class Model:
    """Drives random calls and remembers what a later call can use: qube,
    pool and label names, clone tokens."""

    def __init__(self, d, rnd, base_mnt):
        self.d = d
        self.rnd = rnd
        self.mnt = base_mnt
        self.log = []      # the last calls
        self.changes = []  # the last answered changes
        self.tokens = []
        self.pool_seq = 0
        self.counts = {}

    # -- what exists now (asked, not assumed: the daemon is the model)

    def vms(self):
        out = self.ok('admin.vm.List')
        return [line.split(' ', 1)[0] for line in out.splitlines()]

    def classes(self):
        """{name: class} of every qube."""
        out = {}
        for line in self.ok('admin.vm.List').splitlines():
            name, rest = line.split(' ', 1)
            out[name] = rest.split('class=', 1)[1].split(' ', 1)[0]
        return out

    def pools(self):
        return self.ok('admin.pool.List').split()

    def labels(self):
        return self.ok('admin.label.List').split()

    def ok(self, method, dest='dom0', arg='', payload=b''):
        r = self.call(method, dest, arg, payload)
        assert r[0] == 'ok', (method, dest, arg, r)
        return r[1]

    def call(self, method, dest='dom0', arg='', payload=b''):
        r = self.d.call(method, dest, arg, payload)
        self.log.append((method, dest, arg, payload, r))
        del self.log[:-10]
        if r[0] == 'ok' and any(w in method for w in WRITES):
            self.changes.append((method, dest, arg, payload, r))
            del self.changes[:-150]
        assert r[0] in ('ok', 'exc'), \
            'not answered: %s+%s %s %r: %r' % (method, arg, dest, payload, r)
        key = method.split('+')[0]
        if os.environ.get('QUBES_MODEL_DEBUG') and r[0] == 'exc':
            print('# refused %s+%s %s %r: %s %s' % (method, arg, dest,
                                                   payload, r[1], r[2]))
        self.counts.setdefault(key, [0, 0])[r[0] != 'ok'] += 1
        return r

    # -- random values

    def name(self):
        r = self.rnd.random()
        vms = self.vms()
        if r < 0.15 and vms:
            return self.rnd.choice(vms)      # exists already
        if r < 0.2:
            return self.rnd.choice(['dom0', 'Domain-0', '-x', '', 'a' * 32,
                                    'x y', 'none', 'default', '..', 'é'])
        return 'q%d' % self.rnd.randrange(60)

    def value(self, vms):
        r = self.rnd.random()
        if r < 0.35 and vms:
            return self.rnd.choice(vms)
        if r < 0.45:
            return self.rnd.choice(self.labels() + ['nolabel'])
        if r < 0.5:
            return self.rnd.choice(self.pools() + ['nopool'])
        return self.rnd.choice(
            ['', 'True', 'False', 'yes', '0', '1', '-1', '2', '400',
             '4096', '100000', '0x10', ' 5', 'abc', '6.1.0', '../x', 'hvm',
             'pv', 'pvh', 'swiotlb=4096', '10.137.0.5', '10.0.0.300',
             'fd09:24ef:4179::a89:5', '00:16:3e:5e:6c:99', 'user', 'a' * 600,
             'é', 'none', 'default', 'nonexistent'])

    TYPED = {
        'bool': ['True', 'False', 'true', '0', '1', '', 'yes', 'maybe'],
        'int': ['0', '1', '2', '400', '4000', '-1', '5000', ' 7', '0x10',
                '99999999999999999999', ''],
        'str': [''],
    }
    BY_NAME = {
        'kernel': ['6.1.0', '', 'nokernel', '../6.1.0'],
        'virt_mode': ['pv', 'pvh', 'hvm', 'bad'],
        'ip': ['10.137.0.9', '10.0.0.300', ''],
        'ip6': ['fd09:24ef:4179::a89:9', 'fd09::zz', ''],
        'mac': ['00:16:3e:5e:6c:99', '00:16:3e', ''],
        'kernelopts': ['swiotlb=4096', 'nopat', '', 'x' * 600],
        'default_user': ['user', 'root', 'bad user', ''],
        'keyboard_layout': ['us++', 'de+neo+', 'bad', ''],
        'bootmode': ['default', 'bad', ''],
        'devices_denied': ['', 'b******', 'u0a0b0cp012345', 'x', 'B******'],
        'appvm_default_bootmode': ['default', 'x', ''],
    }

    def typed_value(self, ptype, prop, vms):
        """A value likely to fit @prop (of API type @ptype), often not."""
        if prop in self.BY_NAME and self.rnd.random() < 0.7:
            return self.rnd.choice(self.BY_NAME[prop])
        if ptype == 'vm':
            return self.rnd.choice(vms + ['', 'nosuchvm'])
        if ptype == 'label':
            return self.rnd.choice(self.labels() + ['nolabel', 'label-1'])
        if ptype in self.TYPED and self.rnd.random() < 0.8:
            return self.rnd.choice(self.TYPED[ptype])
        return self.value(vms)

    def vm(self, vms, with_dom0=True):
        pick = vms if with_dom0 else [v for v in vms if v != 'dom0']
        if not pick or self.rnd.random() < 0.03:
            return 'nosuchvm'
        return self.rnd.choice(pick)

    # -- the operations

    def op_create(self, vms):
        cls = self.rnd.choice(CLASSES + ['AdminVM', 'Bogus'])
        params = ['name=' + self.name()]
        if self.rnd.random() < 0.95:
            params.append('label=' + self.rnd.choice(
                self.labels() + ['nolabel']))
        templ = ''
        classes = self.classes()
        want = {'AppVM': ['TemplateVM'],
                'DispVM': ['AppVM', 'StandaloneVM']}.get(cls)
        fitting = [v for v, c in classes.items() if want and c in want]
        if fitting and self.rnd.random() < 0.85:
            templ = self.rnd.choice(fitting)
        elif cls in ('AppVM', 'DispVM') or self.rnd.random() < 0.1:
            templ = self.vm(vms)
        if cls == 'StandaloneVM' and self.rnd.random() < 0.5:
            templ = ''
        if self.rnd.random() < 0.3:
            method = 'admin.vm.CreateInPool.' + cls
            if self.rnd.random() < 0.5:
                params.append('pool=' + self.rnd.choice(self.pools()))
            else:
                params.append('pool:%s=%s' % (
                    self.rnd.choice(VOLUMES),
                    self.rnd.choice(self.pools() + ['nopool'])))
        else:
            method = 'admin.vm.Create.' + cls
            if self.rnd.random() < 0.1:
                params.append('pool=' + self.rnd.choice(self.pools()))
        self.rnd.shuffle(params)
        self.call(method, 'dom0', templ, ' '.join(params))

    def op_remove(self, vms):
        self.call('admin.vm.Remove', self.vm(vms))

    def op_prop_set(self, vms):
        vm = self.vm(vms)
        r = self.call('admin.vm.property.GetAll', vm)
        if r[0] != 'ok':
            self.call('admin.vm.property.Set', vm, 'netvm', '')
            return
        types = {}
        for line in r[1].splitlines():
            name, _, ptype = line.split(' ', 3)[:3]
            types[name] = ptype[len('type='):]
        prop = self.rnd.choice(sorted(types) + ['nosuchprop'])
        value = self.typed_value(types.get(prop, 'str'), prop, vms)
        self.call('admin.vm.property.Set', vm, prop, value)

    def op_prop_reset(self, vms):
        vm = self.vm(vms)
        r = self.call('admin.vm.property.List', vm)
        props = r[1].split() if r[0] == 'ok' else ['netvm']
        self.call('admin.vm.property.Reset', vm, self.rnd.choice(props))

    def op_global(self, vms):
        types = {}
        for line in self.ok('admin.property.GetAll').splitlines():
            name, _, ptype = line.split(' ', 3)[:3]
            types[name] = ptype[len('type='):]
        prop = self.rnd.choice(sorted(types))
        if self.rnd.random() < 0.25:
            self.call('admin.property.Reset', 'dom0', prop)
        elif prop.startswith('default_pool'):
            self.call('admin.property.Set', 'dom0', prop,
                      self.rnd.choice(self.pools() + ['nopool', '']))
        else:
            self.call('admin.property.Set', 'dom0', prop,
                      self.typed_value(types[prop], prop, vms))

    def op_feature(self, vms):
        vm = self.vm(vms)
        name = self.rnd.choice(['f1', 'f2', 'service.clocksync',
                                'template_for_dispvms', 'gui', 'a/b',
                                'internal', 'os', 'x' * 70])
        if self.rnd.random() < 0.3:
            self.call('admin.vm.feature.Remove', vm, name)
            return
        value = self.rnd.choice(['1', '', 'value', 'two words', 'a\nb',
                                 'tab\there', '0'])
        r = self.call('admin.vm.feature.Set', vm, name, value)
        if r[0] == 'ok':
            got = self.ok('admin.vm.feature.Get', vm, name)
            assert got == value, ('feature read back', vm, name, got, value)

    def op_tag(self, vms):
        vm = self.vm(vms)
        # (not the guivm-/audiovm- tags: derived from the properties, a
        # removed one comes back at the next load, as in the reference)
        tag = self.rnd.choice(['t1', 't2', 'created-by-x',
                               'bad*tag', 'ok-tag_2', ''])
        method = self.rnd.choice(['admin.vm.tag.Set', 'admin.vm.tag.Set',
                                  'admin.vm.tag.Remove'])
        r = self.call(method, vm, tag)
        if r[0] == 'ok' and method.endswith('Set'):
            assert self.ok('admin.vm.tag.Get', vm, tag) == '1'

    def op_notes(self, vms):
        vm = self.vm(vms, with_dom0=False)
        text = self.rnd.choice(['', 'a note\nline two\n', 'x' * 300,
                                '\x01bad', 'tab\there'])
        r = self.call('admin.vm.notes.Set', vm, '', text)
        if r[0] == 'ok':  # characters unsafe to show come back as '_'
            assert self.ok('admin.vm.notes.Get', vm) == \
                text.replace('\x01', '_')

    def op_volume(self, vms):
        vm = self.vm(vms)
        vol = self.rnd.choice(VOLUMES + ['nosuchvol'])
        kind = self.rnd.choice(['resize', 'revs', 'rw', 'ephemeral',
                                'clear', 'revert', 'info'])
        if kind == 'resize':
            size = self.rnd.choice([0, 1, 512, 2 << 30, 3 << 30, 10 << 30,
                                    (2 << 30) + 512, -1])
            self.call('admin.vm.volume.Resize', vm, vol, str(size))
        elif kind == 'revs':
            self.call('admin.vm.volume.Set.revisions_to_keep', vm, vol,
                      self.rnd.choice(['-1', '0', '1', '3', '-2', 'x']))
        elif kind == 'rw':
            self.call('admin.vm.volume.Set.rw', vm, vol,
                      self.rnd.choice(['True', 'False', 'maybe']))
        elif kind == 'ephemeral':
            self.call('admin.vm.volume.Set.ephemeral', vm, vol,
                      self.rnd.choice(['True', 'False', 'x']))
        elif kind == 'clear':
            self.call('admin.vm.volume.Clear', vm, vol)
        elif kind == 'revert':
            r = self.call('admin.vm.volume.ListSnapshots', vm, vol)
            revs = r[1].split() if r[0] == 'ok' else []
            self.call('admin.vm.volume.Revert', vm, vol,
                      self.rnd.choice(revs + ['123-back']))
        else:
            self.call('admin.vm.volume.Info', vm, vol)

    def op_clone(self, vms):
        if self.tokens and self.rnd.random() < 0.6:
            vol, token = self.tokens.pop(self.rnd.randrange(len(self.tokens)))
            self.call('admin.vm.volume.CloneTo',
                      self.vm(vms, with_dom0=self.rnd.random() < 0.1),
                      vol if self.rnd.random() < 0.9 else 'root', token)
            return
        vm = self.vm(vms, with_dom0=self.rnd.random() < 0.1)
        vol = 'private' if self.rnd.random() < 0.9 else 'root'
        r = self.call('admin.vm.volume.CloneFrom', vm, vol)
        if r[0] == 'ok':
            self.tokens.append((vol, r[1]))

    def op_dvm(self, vms):
        """Makes a disposable template, so that DispVMs can be made."""
        cands = [v for v, c in self.classes().items()
                 if c in ('AppVM', 'StandaloneVM')]
        if cands:
            self.call('admin.vm.property.Set', self.rnd.choice(cands),
                      'template_for_dispvms', 'True')

    def op_pool(self, vms):
        r = self.rnd.random()
        pools = self.pools()
        if r < 0.4:
            self.pool_seq += 1
            name = self.rnd.choice(['p%d' % self.pool_seq, 'varlibqubes',
                                    'bad/name'])
            path = os.path.join(self.mnt, 'pools', name.replace('/', '_'))
            args = ['dir_path=' + path]
            if self.rnd.random() < 0.5:
                args.append('revisions_to_keep=' +
                            self.rnd.choice(['1', '-1', '3', 'x']))
            self.call('admin.pool.Add', 'dom0', 'file-reflink',
                      ''.join('%s\n' % a for a in ['name=' + name] + args))
        elif r < 0.7:
            self.call('admin.pool.Remove', 'dom0',
                      self.rnd.choice(pools + ['nopool']))
        else:
            self.call('admin.pool.Set.revisions_to_keep', 'dom0',
                      self.rnd.choice(pools),
                      self.rnd.choice(['-1', '0', '2', '-3']))

    def op_label(self, vms):
        labels = self.labels()
        if self.rnd.random() < 0.5:
            name = self.rnd.choice(['l1', 'l2', 'red', 'bad*label', 'l_3'])
            self.call('admin.label.Create', 'dom0', name,
                      self.rnd.choice(COLOURS))
        else:
            self.call('admin.label.Remove', 'dom0',
                      self.rnd.choice(labels + ['l1', 'nolabel']))

    OPS = [('op_create', 12), ('op_remove', 5), ('op_prop_set', 28),
           ('op_prop_reset', 8), ('op_global', 8), ('op_feature', 8),
           ('op_tag', 5), ('op_notes', 2), ('op_volume', 12),
           ('op_clone', 5), ('op_pool', 4), ('op_label', 3),
           ('op_dvm', 2)]

    def step(self):
        names = [n for n, _ in self.OPS]
        weights = [w for _, w in self.OPS]
        op = self.rnd.choices(names, weights)[0]
        getattr(self, op)(self.vms())

    # -- the invariant

    def snapshot(self):
        """Every answer a restart must give back."""
        snap = {'vm.List': self.ok('admin.vm.List'),
                'property.GetAll': self.ok('admin.property.GetAll'),
                'pools': {}, 'labels': {}}
        for pool in self.pools():
            # the filesystem's usage is not the pool's state
            info = [line for line in self.ok('admin.pool.Info', 'dom0',
                                             pool).splitlines()
                    if not line.startswith('usage=')]
            snap['pools'][pool] = (
                info,
                self.ok('admin.pool.volume.List', 'dom0', pool))
        for label in self.labels():
            snap['labels'][label] = (
                self.ok('admin.label.Get', 'dom0', label),
                self.ok('admin.label.Index', 'dom0', label))
        for vm in self.vms():
            feats = self.ok('admin.vm.feature.List', vm).split()
            vols = self.ok('admin.vm.volume.List', vm).split()
            snap[vm] = {
                'props': self.ok('admin.vm.property.GetAll', vm),
                'features': {f: self.ok('admin.vm.feature.Get', vm, f)
                             for f in feats},
                'tags': self.ok('admin.vm.tag.List', vm),
                'volumes': {v: (self.ok('admin.vm.volume.Info', vm, v),
                                self.ok('admin.vm.volume.ListSnapshots',
                                        vm, v))
                            for v in vols},
            }
            if vm != 'dom0':  # (a RemoteVM answers that it keeps none)
                snap[vm]['notes'] = self.call('admin.vm.notes.Get', vm)
        return snap


def diff(a, b, path=''):
    """The first difference between two snapshots, as text."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return '%s/%s: only %s' % (path, k,
                                           'before' if k in a else 'after')
            d = diff(a[k], b[k], '%s/%s' % (path, k))
            if d:
                return d
        return None
    if a != b:
        if isinstance(a, str) and isinstance(b, str):
            la, lb = a.splitlines(), b.splitlines()
            for x, y in zip(la, lb):
                if x != y:
                    return '%s: %r before, %r after' % (path, x, y)
            return '%s: %d lines before, %d after' % (path, len(la), len(lb))
        return '%s: %r before, %r after' % (path, a, b)
    return None


def restart_and_compare(m, kill):
    before = m.snapshot()
    d = m.d
    if kill:
        d.kill()
    else:
        d.stop()
    # the new daemon appends to the same log: its own part starts here
    log_start = os.path.getsize(d.log)
    nd = Daemon(QUBESD, d.base_dir, sockdir=d.sockdir).start()
    state['d'] = m.d = nd
    after = m.snapshot()
    d_ = diff(before, after)
    assert d_ is None, 'restart changed an answer: %s' % d_
    # loading what was saved must not have repaired or left out anything
    with open(nd.log, 'rb') as f:
        f.seek(log_start)
        for line in f.read().decode(errors='replace').splitlines():
            assert 'WARNING' not in line, \
                'the saved qubes.xml loaded with a warning: ' + line


def test_random_calls_survive_restart():
    """Seeded random calls; at each checkpoint a clean stop or a kill, a
    fresh daemon, the same answers."""
    print('# seed %d, %d calls, %d checkpoints' %
          (SEED, opts.calls, opts.checkpoints))
    rnd = random.Random(SEED)
    m = Model(state['d'], rnd, state['fs'].mnt)
    m.ok('admin.vm.Create.TemplateVM', payload='name=tpl label=black')
    every = max(1, opts.calls // opts.checkpoints)
    try:
        for i in range(1, opts.calls + 1):
            m.step()
            if i % every == 0 or i == opts.calls:
                restart_and_compare(m, kill=rnd.random() < 0.4)
    except Exception:
        print('# seed %d; the last answered changes, then the last calls:'
              % SEED)
        for method, dest, arg, payload, r in m.changes + m.log:
            print('#   %s+%s %s %r -> %r' % (method, arg, dest, payload, r))
        raise
    ok = sum(c[0] for c in m.counts.values())
    refused = sum(c[1] for c in m.counts.values())
    print('# %d calls answered: %d values, %d exceptions; %d qubes at the end'
          % (ok + refused, ok, refused, len(m.vms())))
    for method in sorted(m.counts):
        if any(w in method for w in WRITES):
            print('#   %-45s %5d answered, %5d refused' %
                  ((method,) + tuple(m.counts[method])))
    # the run must have done real work, not only refusals
    made = sum(c[0] for k, c in m.counts.items()
               if k.startswith('admin.vm.Create'))
    assert made > 0 or opts.calls < 500, m.counts
    for method in ('admin.vm.property.Set', 'admin.vm.Remove'):
        assert m.counts.get(method, [0])[0] > 0 or opts.calls < 500, \
            (method, m.counts.get(method))


if __name__ == '__main__':
    sys.exit(run_file(globals(), setup, state))
