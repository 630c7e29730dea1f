# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers shared by the benchmark figures: timing, commands, the core,
scratch directories and the shape of one figure's result."""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, '.venv', 'bin')
# Python of the venv (the interpreter running this script under `make bench`).
PYTHON = os.path.join(VENV_BIN, 'python') if os.path.exists(os.path.join(VENV_BIN, 'python')) else sys.executable
SCRATCH_BASE = os.environ.get('BLOCKYARD_BENCH_DIR', '/var/tmp')
GiB = 1024 ** 3
MiB = 1024 ** 2

# Import the core without writing __pycache__ into the shared tree.
sys.dont_write_bytecode = True


def core():
    """(volumes, fileio) of the collection: the installed link
    (.venv site-packages/ansible_collections/blockyard/storage -> repo)."""
    from ansible_collections.blockyard.storage.plugins.module_utils import fileio, volumes
    return volumes, fileio


def log(msg):
    print('  .. %s' % msg, file=sys.stderr, flush=True)


def run(argv, **kwargs):
    """Run argv (no shell); raise with its stderr when it fails."""
    kwargs.setdefault('stdout', subprocess.PIPE)
    kwargs.setdefault('stderr', subprocess.PIPE)
    proc = subprocess.run([str(a) for a in argv], check=False, **kwargs)
    if proc.returncode != 0:
        err = proc.stderr.decode('utf-8', 'replace') if isinstance(proc.stderr, bytes) else (proc.stderr or '')
        out = proc.stdout.decode('utf-8', 'replace') if isinstance(proc.stdout, bytes) else (proc.stdout or '')
        detail = (err.strip() or out.strip())[-2000:]
        raise RuntimeError('%s exited %s: %s' % (' '.join(str(a) for a in argv), proc.returncode, detail))
    return proc


def timed(fn, *args, **kwargs):
    """(seconds, return value) of one call."""
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - start, value


def timed_cmd(argv, **kwargs):
    return timed(run, argv, **kwargs)[0]


def median(values):
    return statistics.median(values) if values else None


def drop_dirty():
    """Write back dirty pages (so the next timed step does not pay for the
    preparation's writeback). Never inside a timing."""
    os.sync()


class Scratch:
    """A scratch directory under SCRATCH_BASE, removed on exit. Mounts made
    below it must be unmounted by their owner first; rmtree never crosses a
    mount point."""

    def __init__(self, tag):
        self.tag = tag
        self.path = None

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix='blockyard-bench-%s.' % self.tag, dir=SCRATCH_BASE)
        return self.path

    def __exit__(self, *exc):
        remove_tree(self.path)
        return False


def remove_tree(path):
    if not path or not os.path.exists(path):
        return
    for dirpath, dirnames, _files in os.walk(path):
        for name in dirnames:
            if os.path.ismount(os.path.join(dirpath, name)):
                log('not removing %s: %s is still mounted' % (path, os.path.join(dirpath, name)))
                return
    shutil.rmtree(path, ignore_errors=True)


def fs_type(path):
    proc = subprocess.run(['findmnt', '-n', '-o', 'FSTYPE', '-T', path], check=False, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, universal_newlines=True)
    return proc.stdout.strip() or None


def figure(name, title, baseline_label, ours_label, baseline, ours, ratio_def, op, target, informational=False,
           **extra):
    """One figure: medians of both sample lists, the ratio and the verdict.

    ratio_def 'ours/baseline' (smaller is better, op '<=') or
    'baseline/ours' (a speed-up, op '>=')."""
    b, o = median(baseline), median(ours)
    if ratio_def == 'ours/baseline':
        ratio = o / b if b else None
    else:
        ratio = b / o if o else None
    met = None
    if ratio is not None:
        met = ratio <= target if op == '<=' else ratio >= target
    result = {
        'title': title,
        'baseline': baseline_label,
        'ours': ours_label,
        'baseline_s': round(b, 6) if b is not None else None,
        'ours_s': round(o, 6) if o is not None else None,
        'ratio': round(ratio, 4) if ratio is not None else None,
        'ratio_def': ratio_def,
        'target': '%s %s' % (op, target),
        'target_op': op,
        'target_value': target,
        'met': met,
        'informational': informational,
        'samples': {'baseline_s': [round(x, 6) for x in baseline], 'ours_s': [round(x, 6) for x in ours]},
    }
    result.update(extra)
    return name, result
