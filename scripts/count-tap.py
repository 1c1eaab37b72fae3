#!/usr/bin/env python3
"""Counts the TAP results of meson test logs and prints 'N passed, N failed'.

A test program that crashed or timed out before reporting its plan counts
as one failure on top of the results it printed.
"""
import json
import re
import sys

passed = failed = 0
for path in sys.argv[1:]:
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
print(f'{passed} passed, {failed} failed')
sys.exit(1 if failed else 0)
