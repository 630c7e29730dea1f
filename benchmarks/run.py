# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""blockyard.storage benchmarks (`make bench`).

Every figure measures a baseline and our code in the same run (interleaved,
several repetitions, medians), prints a table and merges its entry into
benchmarks/results.json: {"figures": {name: {...}}, "machine": {...}, "date"}.

  .venv/bin/python benchmarks/run.py                 all figures
  .venv/bin/python benchmarks/run.py --only NAME     one figure (repeatable)
  .venv/bin/python benchmarks/run.py --quick         short smoke run (no results.json
                                                     unless --output is given)
  .venv/bin/python benchmarks/run.py --list

Scratch files go to a directory under /var/tmp (BLOCKYARD_BENCH_DIR), removed
at the end; loop mounts are unmounted and detached even on failure."""

import argparse
import collections
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback

sys.dont_write_bytecode = True   # no __pycache__ in the shared tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fig_ansible  # noqa: E402
import fig_chain  # noqa: E402
import fig_clone  # noqa: E402
import fig_rbd  # noqa: E402
import fig_snapshot  # noqa: E402
import fig_thick  # noqa: E402
from lib import PYTHON, ROOT, Scratch, fs_type, log  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results.json')

# figure name -> function(ctx) returning [(name, result), ...]; a function may
# report several figures (thick_create reports the written-zeros path too).
FIGURES = collections.OrderedDict([
    ('idempotent_volume_vs_stat', fig_ansible.idempotent_volume_vs_stat),
    ('chain_info_vs_qemu_img', fig_chain.chain_info_vs_qemu_img),
    ('thick_create_vs_dd', fig_thick.thick_create_vs_dd),
    ('snapshot_delete_vs_bare_qemu', fig_snapshot.snapshot_delete_vs_bare_qemu),
    ('reflink_clone_vs_copy', fig_clone.reflink_clone_vs_copy),
    ('rbd_cycle_vs_cli', fig_rbd.rbd_cycle_vs_cli),
])
ALIASES = {'thick_create_zeros_vs_dd': 'thick_create_vs_dd', 'rbd_cycle_vs_bare_librbd': 'rbd_cycle_vs_cli'}


class Context:
    def __init__(self, quick, root):
        self.quick = quick
        self.root = root

    def scratch(self, tag):
        path = os.path.join(self.root, tag)
        os.makedirs(path)
        return path


def _cmd_out(argv):
    try:
        return subprocess.run(argv, check=False, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True).stdout.strip()
    except OSError:
        return None


def machine(scratch):
    cpu = None
    try:
        with open('/proc/cpuinfo') as handle:
            for line in handle:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except IOError:
        pass
    mem = None
    try:
        with open('/proc/meminfo') as handle:
            mem = int(handle.readline().split()[1]) * 1024
    except (IOError, ValueError, IndexError):
        pass
    qemu = _cmd_out(['qemu-img', '--version'])
    ansible = _cmd_out([os.path.join(ROOT, '.venv', 'bin', 'ansible'), '--version'])
    return {
        'hostname': platform.node(),
        'kernel': platform.release(),
        'cpus': os.cpu_count(),
        'cpu_model': cpu,
        'memory_bytes': mem,
        'python': platform.python_version(),
        'python_executable': PYTHON,
        'ansible': ansible.splitlines()[0] if ansible else None,
        'qemu_img': qemu.splitlines()[0] if qemu else None,
        'scratch_dir': scratch,
        'scratch_fs': fs_type(scratch),
        'repo_fs': fs_type(ROOT),
        'loadavg_start': _loadavg(),
    }


def _loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _fmt_s(value):
    if value is None:
        return '-'
    if value < 0.01:
        return '%.5f' % value
    if value < 10:
        return '%.3f' % value
    return '%.1f' % value


def table(figures):
    rows = [('figure', 'baseline s', 'ours s', 'ratio', 'target', 'met')]
    for name, fig in figures:
        if 'error' in fig:
            rows.append((name, '-', '-', '-', fig.get('target', '-'), 'ERROR'))
            continue
        met = {True: 'yes', False: 'NO', None: '-'}[fig['met']]
        if fig.get('informational'):
            met += ' (info)'
        ratio = '-' if fig['ratio'] is None else '%.2f' % fig['ratio']
        rows.append((name, _fmt_s(fig['baseline_s']), _fmt_s(fig['ours_s']),
                     '%s (%s)' % (ratio, fig['ratio_def']), fig['target'], met))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        lines.append(' | '.join(cell.ljust(widths[j]) for j, cell in enumerate(row)).rstrip())
        if i == 0:
            lines.append('-+-'.join('-' * w for w in widths))
    return '\n'.join(lines)


def merge(path, figures, mach):
    data = {}
    if os.path.exists(path):
        try:
            with open(path) as handle:
                data = json.load(handle)
        except (IOError, ValueError):
            data = {}
    if not isinstance(data.get('figures'), dict):
        data['figures'] = {}
    data['figures'].update(dict(figures))
    data['machine'] = mach
    data['date'] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    tmp = path + '.tmp'
    with open(tmp, 'w') as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.write('\n')
    os.rename(tmp, path)


def _terminate(signum, _frame):
    # turn SIGTERM/SIGHUP into an exception so that every finally (unmount,
    # detach, remove scratch files) runs
    raise SystemExit(128 + signum)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--only', action='append', metavar='NAME',
                        help='run only this figure (repeatable, or comma-separated)')
    parser.add_argument('--quick', action='store_true', help='short smoke run: small sizes, one repetition')
    parser.add_argument('--output', help='results file to merge into (default %s; none with --quick)' % RESULTS)
    parser.add_argument('--list', action='store_true', help='list the figures and exit')
    parser.add_argument('--strict', action='store_true', help='exit 1 when a target is missed, not only on errors')
    args = parser.parse_args(argv)
    if args.list:
        for name in FIGURES:
            print(name)
        for alias, name in ALIASES.items():
            print('%s (reported by %s)' % (alias, name))
        return 0
    wanted = list(FIGURES)
    if args.only:
        wanted = []
        for item in args.only:
            for name in item.split(','):
                name = ALIASES.get(name.strip(), name.strip())
                if name not in FIGURES:
                    parser.error('unknown figure %r; --list shows them' % name)
                if name not in wanted:
                    wanted.append(name)
    output = args.output or (None if args.quick else RESULTS)
    if os.geteuid() != 0:
        log('not root: figures needing loop mounts will fail')
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)

    results, errors = [], 0
    started = time.time()
    with Scratch('run') as root:
        mach = machine(root)
        ctx = Context(args.quick, root)
        for name in wanted:
            print('== %s%s' % (name, ' (quick)' if args.quick else ''), file=sys.stderr, flush=True)
            t0 = time.time()
            try:
                produced = FIGURES[name](ctx)
            except Exception as exc:  # noqa: one broken figure does not hide the others
                errors += 1
                traceback.print_exc()
                produced = [(name, {'error': '%s: %s' % (type(exc).__name__, exc), 'met': False})]
            for fig_name, fig in produced:
                fig['quick'] = args.quick
                fig['wall_s'] = round(time.time() - t0, 1)
                fig['loadavg_after'] = _loadavg()
                results.append((fig_name, fig))
        mach['loadavg_end'] = _loadavg()
        mach['bench_wall_s'] = round(time.time() - started, 1)
    print()
    print(table(results))
    print()
    for name, fig in results:
        for note in fig.get('notes', []):
            print('%s: %s' % (name, note))
    if output:
        merge(output, results, mach)
        print('\nresults merged into %s (%.0f s)' % (output, time.time() - started))
    missed = sum(1 for _n, f in results if f.get('met') is False and not f.get('informational'))
    if errors:
        return 1
    return 1 if (args.strict and missed) else 0


if __name__ == '__main__':
    sys.exit(main())
