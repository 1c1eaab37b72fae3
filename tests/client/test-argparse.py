#!/usr/bin/python3
"""src/client/argparse.c against Python's own argparse (Debian's
/usr/bin/python3, 3.11, as the Qubes client's tools run on it): each
parser of argparse-specs/*.json is built by both, from the same
description, and every command line of its "cases" is parsed by both at
each terminal width of its "columns"; standard output (the namespace as
JSON, or the help), standard error and the exit status must be the
same."""
import contextlib
import glob
import io
import json
import os
import subprocess
import sys

REF_PYTHON = '/usr/bin/python3'
if os.path.realpath(sys.executable) != os.path.realpath(REF_PYTHON) and \
        os.path.exists(REF_PYTHON):
    os.execv(REF_PYTHON, [REF_PYTHON] + sys.argv)

import argparse  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE = sys.argv[1]

NARGS = {'?': argparse.OPTIONAL, '*': argparse.ZERO_OR_MORE,
         '+': argparse.ONE_OR_MORE, '...': argparse.REMAINDER}


def formatter(spec):
    return {'raw_text': argparse.RawTextHelpFormatter,
            'raw_description': argparse.RawDescriptionHelpFormatter}.get(
                spec.get('formatter'), argparse.HelpFormatter)


def fill(parser, spec):
    sections = [parser.add_argument_group(s.get('title'),
                                          s.get('description'))
                for s in spec.get('sections', [])]
    mutexes = []
    for m in spec.get('mutexes', []):
        container = sections[m['section'] - 1] if m.get('section') \
            else parser
        mutexes.append(container.add_mutually_exclusive_group(
            required=m.get('required', False)))
    if 'version' in spec:
        parser.version = spec['version']
    for a in spec.get('arguments', []):
        names = a['names'].split()
        kw = {}
        for key in ('action', 'dest', 'metavar', 'help', 'const',
                    'default', 'choices', 'required'):
            if key in a:
                kw[key] = a[key]
        if 'help_suppress' in a:
            kw['help'] = argparse.SUPPRESS
        if 'metavars' in a:
            kw['metavar'] = tuple(a['metavars'])
        if 'nargs' in a:
            kw['nargs'] = NARGS.get(a['nargs'], a['nargs'])
        if a.get('type') == 'int':
            kw['type'] = int
        if 'mutex' in a:
            container = mutexes[a['mutex'] - 1]
        elif 'section' in a:
            container = sections[a['section'] - 1]
        else:
            container = parser
        container.add_argument(*names, **kw)
    if 'defaults' in spec:
        parser.set_defaults(**spec['defaults'])
    if 'subparsers' in spec:
        s = spec['subparsers']
        kw = {k: s[k] for k in ('dest', 'title', 'description', 'metavar',
                                'help', 'required') if k in s}
        sub = parser.add_subparsers(**kw)
        for c in s['parsers']:
            ckw = {k: c[k] for k in ('help', 'description', 'epilog')
                   if k in c}
            child = sub.add_parser(c['name'], aliases=c.get('aliases', ()),
                                   add_help=False,
                                   formatter_class=formatter(c), **ckw)
            fill(child, c)


def python_run(spec, args):
    parser = argparse.ArgumentParser(
        prog=spec['prog'], usage=spec.get('usage'),
        description=spec.get('description'), epilog=spec.get('epilog'),
        formatter_class=formatter(spec), add_help=spec.get('add_help', False),
        argument_default=(argparse.SUPPRESS
                          if spec.get('argument_default') == 'SUPPRESS'
                          else None),
        allow_abbrev=spec.get('allow_abbrev', True))
    fill(parser, spec)
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            ns = parser.parse_args(args)
            print(json.dumps(vars(ns), sort_keys=True))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return out.getvalue(), err.getvalue(), code


def probe_run(path, args):
    r = subprocess.run([PROBE, path] + args, capture_output=True, text=True)
    return r.stdout, r.stderr, r.returncode


def same_stdout(a, b):
    if a == b:
        return True
    try:
        return json.loads(a) == json.loads(b)
    except ValueError:
        return False


def main():
    specs = sorted(glob.glob(os.path.join(HERE, 'argparse-specs', '*.json')))
    n = 0
    failures = []
    for path in specs:
        with open(path) as f:
            doc = json.load(f)
        for cols in doc.get('columns', [80]):
            os.environ['COLUMNS'] = str(cols)
            for args in doc['cases']:
                n += 1
                want = python_run(doc['parser'], args)
                got = probe_run(path, args)
                if not same_stdout(want[0], got[0]) or want[1:] != got[1:]:
                    failures.append((os.path.basename(path), cols, args,
                                     want, got))
    print('1..1')
    if failures:
        print('not ok 1 - %d of %d command lines differ from argparse'
              % (len(failures), n))
        for name, cols, args, want, got in failures[:15]:
            print('# %s COLUMNS=%s %r' % (name, cols, args))
            for label, v in (('argparse', want), ('ours', got)):
                for line in ('%s: exit %s\n--stdout--\n%s--stderr--\n%s'
                             % (label, v[2], v[0], v[1])).splitlines():
                    print('#   ' + line)
        return 1
    print('ok 1 - %d command lines parsed as argparse parses them' % n)
    return 0


if __name__ == '__main__':
    sys.exit(main())
