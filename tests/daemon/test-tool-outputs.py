#!/usr/bin/python3
"""Our qvm-* tools against what the Qubes client's tools print: each
case of tests/tools/cases/TOOL.json (recorded from the client by
scripts/record-tool-outputs, against the same fixed qubes,
tool_fixture.py) is run with our tool, at 80 columns; standard output,
standard error and the exit status must be the client's, after the
fixture's normalisation (uuids). A case marked "deliberate" holds our
output, for a difference the README lists with its reason.

    test-tool-outputs.py PATH/TO/qubesd TOOLS_DIR
"""
import glob
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qubesd_harness import run_file  # noqa: E402
from qubesd_harness import Daemon, LoopFS  # noqa: E402
import tool_fixture  # noqa: E402

QUBESD = os.path.abspath(sys.argv[1])
TOOLS = os.path.abspath(sys.argv[2])
CASES = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'tools', 'cases')
state = {}


def setup():
    state['fs'] = LoopFS('xfs')
    # the made-up host's devices, for every qubesd of the test
    os.environ.update(tool_fixture.fake_host(
        os.path.join(state['fs'].top, 'host')))


def fresh_daemon(tool):
    """A qubesd of its own for each tool's cases, with the fixed qubes
    (the cases of one file may change them; those of the next start from
    the same state as when they were recorded)."""
    if state.get('d'):
        state['d'].stop()
        state['d'].cleanup()
    state['d'] = Daemon(QUBESD, os.path.join(state['fs'].mnt, tool)).start()
    tool_fixture.prepare(state['d'])
    state['ids'] = tool_fixture.uuids(state['d'])


def check_file(path):
    with open(path) as f:
        doc = json.load(f)
    tool = doc['tool']
    fresh_daemon(tool)
    env = dict(os.environ, QUBESD_SOCKET=state['d'].sock, COLUMNS='80')
    tool_fixture.make_files(doc, state['d'].base_dir)
    bad = []
    for case in doc['cases']:
        # a case may give environment variables (an $EDITOR) and what
        # standard input holds (an answer to a question)
        r = subprocess.run([os.path.join(TOOLS, tool)] +
                           tool_fixture.expand(case['args'],
                                               state['d'].base_dir),
                           capture_output=True, text=True,
                           env=dict(env, **case.get('env', {})),
                           input=case.get('stdin'),
                           stdin=None if 'stdin' in case
                           else subprocess.DEVNULL, timeout=120)
        base = state['d'].base_dir
        got = (r.returncode,
               tool_fixture.normalize(r.stdout, state['ids'], base),
               tool_fixture.normalize(r.stderr, state['ids'], base))
        want = (case['exit'], case['stdout'], case['stderr'])
        if got != want:
            bad.append((case['args'], want, got))
    msg = []
    for args, want, got in bad[:5]:
        msg.append('%s %s\n  client: %r\n  ours:   %r' % (tool, args, want,
                                                         got))
    assert not bad, '%d of %d cases differ:\n%s' % (
        len(bad), len(doc['cases']), '\n'.join(msg))
    state['count'] = state.get('count', 0) + len(doc['cases'])


def options_of_help(text):
    """The options a --help lists, each as the set of its names."""
    out, section = [], False
    for line in text.splitlines():
        if re.match(r'^(options|optional arguments):', line):
            section = True
            continue
        if section and line and not line.startswith(' '):
            section = False
        m = re.match(r'^  (-[^ ].*?)(  |$)', line) if section else None
        if m:
            out.append(set(re.findall(r'(?<![\w-])(--?[\w-]+)', m.group(1))))
    return out


def test_every_option_covered():
    """Every option the client's help lists, of every tool and
    subcommand, is given in at least one case (by one of its names, a
    short one maybe among others, -vq); and there are at least 300
    cases."""
    total = 0
    missing = []
    for path in sorted(glob.glob(os.path.join(CASES, '*.json'))):
        with open(path) as f:
            doc = json.load(f)
        total += len(doc['cases'])
        used = set()
        options = []
        for case in doc['cases']:
            for a in case['args']:
                if not a.startswith('-'):
                    continue
                used.add(a.split('=')[0])
                if re.match(r'^-[a-zA-Z].', a):
                    used.add(a[:2])
                if re.match(r'^-[a-zA-Z]+$', a):
                    used |= {'-' + ch for ch in a[1:]}
            if case['exit'] == 0 and ('-h' in case['args'] or
                                      '--help' in case['args']):
                options += options_of_help(case['stdout'])
        for names in options:
            if not names & used:
                missing.append((doc['tool'], sorted(names)))
    assert not missing, missing
    assert total >= 300, total


for _path in sorted(glob.glob(os.path.join(CASES, '*.json'))):
    _name = os.path.basename(_path)[:-5].replace('-', '_')
    globals()['test_' + _name] = (lambda p: lambda: check_file(p))(_path)


if __name__ == '__main__':
    sys.exit(run_file(globals(), setup, state))
