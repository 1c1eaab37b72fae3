#!/usr/bin/python3
"""qmemman-sim against the reference's decisions.

    test-sim.py QMEMMAN_SIM REFERENCE_CASES OUR_CASES

Each case file holds one JSON case per line ('#' lines are comments) with
the answer's decision keys the reference gives in "expect"; every key
there must come out equal (same integers, same order), an "exception"
only has to be one. Also: malformed and unknown input answered on its
line without stopping the run. TAP output.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

SIM, REFERENCE, OURS = sys.argv[1:4]
results = []


def check(name, ok, detail=''):
    results.append((name, ok, detail))


def run(lines):
    r = subprocess.run([SIM], input=''.join(l + '\n' for l in lines),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return [json.loads(l) for l in r.stdout.splitlines()]


def check_file(path):
    cases = [l.strip() for l in open(path, encoding='utf-8')
             if l.strip() and not l.startswith('#')]
    answers = run(cases)
    check('%s: one answer per case' % path, len(answers) == len(cases),
          '%d cases, %d answers' % (len(cases), len(answers)))
    for line, ans in zip(cases, answers):
        case = json.loads(line)
        want = case['expect']
        got = ans.get('decision') or {}
        bad = []
        if ans.get('id') != case['id']:
            bad.append('id %r' % ans.get('id'))
        for key, value in want.items():
            if key == 'exception':
                if 'exception' not in got:
                    bad.append('no exception')
            elif got.get(key, '<missing>') != value:
                bad.append('%s: got %r, want %r' % (key, got.get(key), value))
        check(case['id'], not bad, '; '.join(bad))


def check_robustness():
    lines = ['{"id": "a", "op": "balance", "domains": []',  # cut short
             '[1, 2]',
             '{"id": "b", "op": "dance", "domains": []}',
             '{"id": "c", "op": {"algo": "nonsense"}, "domains": []}',
             '{"id": "d", "op": "balance", "domains": [{"mem_used": 1}]}',
             '{"id": "e", "op": {"algo": "prefs"}, "domains": '
             '[{"id": "0", "mem_used": 1073741824, "mem_max": 4294967296, '
             '"mem_actual": 0}]}']
    a = run(lines)
    check('robustness: every line answered', len(a) == len(lines), repr(a))
    check('robustness: malformed lines', 'input_error' in a[0] and
          'input_error' in a[1], repr(a[:2]))
    check('robustness: unknown operations', a[2] == {'id': 'b',
          'unsupported': True} and a[3].get('unsupported') is True,
          repr(a[2:4]))
    check('robustness: a domain without an id', a[4].get('id') == 'd' and
          'input_error' in a[4], repr(a[4]))
    check('robustness: the run goes on', a[5].get('decision') ==
          {'prefs': [['0', 1762865971, 1762865971]]}, repr(a[5]))


def check_config():
    """qmemman.conf's three settings, in the reference's units."""
    d = tempfile.mkdtemp()
    conf = os.path.join(d, 'qmemman.conf')
    case = ('{"id": "c", "op": {"algo": "prefs"}, "domains": ['
            '{"id": "0", "mem_used": 1073741824, "mem_max": 4294967296, '
            '"mem_actual": 0}, {"id": "1", "mem_used": 104857600, '
            '"mem_max": 4294967296, "mem_actual": 0}]}\n')
    with open(conf, 'w') as f:
        f.write('# as the reference ships it, other values\n[global]\n'
                'vm-min-mem = 300MiB\ndom0-mem-boost = 100M\n'
                'cache-margin-factor = 1.5\n')
    r = subprocess.run([SIM, '--config', conf], input=case,
                       capture_output=True, text=True)
    got = json.loads(r.stdout)['decision']['prefs'] if r.stdout else None
    # 1 GiB x 1.5 + 100 MB for dom0; 100 MiB x 1.5 below 300 MiB
    check('config: sizes and factor', got == [
        ['0', 1710612736, 1710612736], ['1', 314572800, 314572800]],
        repr(r.stdout) + r.stderr)
    with open(conf, 'w') as f:
        f.write('[global]\nvm-min-mem = lots\n')
    r = subprocess.run([SIM, '--config', conf], input=case,
                       capture_output=True, text=True)
    check('config: a bad size refused, named', r.returncode == 2 and
          'vm-min-mem' in r.stderr and 'lots' in r.stderr, r.stderr)
    r = subprocess.run([SIM, '--config', os.path.join(d, 'none')],
                       input=case, capture_output=True, text=True)
    check('config: no file, the defaults', r.returncode == 0 and
          json.loads(r.stdout)['decision']['prefs'][1][1] == 209715200,
          r.stdout + r.stderr)
    shutil.rmtree(d)


check_file(REFERENCE)
check_file(OURS)
check_robustness()
check_config()
print('1..%d' % len(results))
failed = 0
for i, (name, ok, detail) in enumerate(results, 1):
    print('%s %d - %s' % ('ok' if ok else 'not ok', i, name))
    if not ok:
        failed += 1
        print('# ' + detail)
sys.exit(1 if failed else 0)
