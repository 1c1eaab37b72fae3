#!/usr/bin/env python3
"""Counts the TAP results of meson test logs and prints 'N passed, N failed'.

A test program that crashed or timed out before reporting its plan counts
as one failure on top of the results it printed. Before that line, the
time each suite took in each log's build, and the five slowest programs.
"""
import json
import os
import re
import sys

passed = failed = 0
suites = {}   # (build, suite) -> seconds
programs = []  # (seconds, build, name)
for path in sys.argv[1:]:
    build = os.path.basename(os.path.dirname(os.path.dirname(path)))
    with open(path) as f:
        for line in f:
            entry = json.loads(line)
            out = entry.get('stdout') or ''
            ok = len(re.findall(r'^ok \d+', out, re.M))
            bad = len(re.findall(r'^not ok \d+', out, re.M))
            if entry.get('result') not in ('OK', 'SKIP', 'EXPECTEDFAIL') and bad == 0:
                bad = 1
            passed += ok
            failed += bad
            for m in re.findall(r'^not ok .*$', out, re.M):
                print(f"FAILED ({entry['name']}): {m}")
            secs = entry.get('duration') or 0
            # 'PROJECT:SUITE / PROGRAM'
            suite, _, name = entry['name'].partition(' / ')
            suite = suite.split(':', 1)[-1]
            suites[(build, suite)] = suites.get((build, suite), 0) + secs
            programs.append((secs, build, name))
print('== time per suite')
for (build, suite), secs in suites.items():
    print(f'{build:<12} {suite:<10} {secs:6.0f} s')
print('== the slowest programs')
for secs, build, name in sorted(programs, reverse=True)[:5]:
    print(f'{build:<12} {name:<26} {secs:6.0f} s')
print(f'{passed} passed, {failed} failed')
sys.exit(1 if failed else 0)
