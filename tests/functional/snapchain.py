# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the snapshot-chain functional tests (no mocks: real qemu-img
and qemu-io on real files).

Data is checked with byte patterns: a Timeline writes a distinct pattern into
its own 64 KiB slot for every write, and the same pattern into a COMMON slot
that every write overwrites. A point in time is the number of writes it
includes, so reading a view (a snapshot's data file, through its backing
chain, or the active file) tells exactly which writes it holds and which one
came last."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import time

from ansible_collections.blockyard.storage.plugins.module_utils import qcow2, volumes
from ansible_collections.blockyard.storage.plugins.module_utils.backends.file.backend import FileBackend

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))

KIB = 1024
MIB = 1024 * 1024
SLOT = 64 * KIB
VOL_SIZE = 4 * MIB
COMMON = 3 * MIB

# What the modules pass for options left at their defaults.
LOCATION = dict(backend='file', mount_point_base='/var/lib/blockyard/mnt', reserved_percentage=0.0)


# ------------------------------------------------------------------ the core
def vparams(directory, name, **kwargs):
    params = dict(LOCATION, volume_dir=directory, name=name, state='present', provisioning=None, mode=None,
                  force=False)
    params.update(kwargs)
    return params


def sparams(directory, volume, name, state='present', **kwargs):
    params = dict(LOCATION, volume_dir=directory, volume=volume, name=name, state=state, mode=None)
    params.update(kwargs)
    return params


def volume(directory, name, check_mode=False, **kwargs):
    """volumes.ensure_volume -> (changed, result, diff)."""
    return volumes.ensure_volume(vparams(directory, name, **kwargs), check_mode)


def snapshot(directory, vol, snap, state='present', check_mode=False, **kwargs):
    """volumes.ensure_snapshot -> (changed, result, diff)."""
    return volumes.ensure_snapshot(sparams(directory, vol, snap, state, **kwargs), check_mode)


def info_of(directory, name):
    """volumes.volume_info for one volume -> its description."""
    return volumes.volume_info(dict(LOCATION, volume_dir=directory, name=name))[1]['volume']


# ------------------------------------------------------------------ qemu-io
def qemu_io(path, fmt, commands, readonly=True):
    argv = ['qemu-io', '-f', fmt]
    if readonly:
        argv.append('-r')
    for command in commands:
        argv += ['-c', command]
    argv.append(path)
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)


def write_patterns(path, fmt, writes):
    """writes: [(pattern, offset, length)]; one qemu-io run."""
    res = qemu_io(path, fmt, ['write -P 0x%02x %d %d' % w for w in writes], readonly=False)
    out = res.stdout + res.stderr
    assert res.returncode == 0 and 'error' not in out.lower() and 'failed' not in out.lower(), \
        'qemu-io write into %s (%s) failed: rc %s\n%s' % (path, fmt, res.returncode, out)


def pattern_problems(path, fmt, expectations):
    """expectations: [(pattern, offset, length)]. Returns a list of problems
    (empty when every range reads back as its pattern)."""
    res = qemu_io(path, fmt, ['read -P 0x%02x %d %d' % e for e in expectations])
    out = res.stdout + res.stderr
    problems = []
    for line in out.splitlines():
        if 'Pattern verification failed' in line:
            match = re.search(r'offset (\d+)', line)
            offset = int(match.group(1)) if match else None
            want = [e for e in expectations if offset is not None and e[1] <= offset < e[1] + e[2]]
            problems.append('%s (%s): %s, expected 0x%02x there'
                            % (os.path.basename(path), fmt, line.strip(), want[0][0] if want else -1))
    if res.returncode != 0 and not problems:
        problems.append('qemu-io read of %s (%s) failed: rc %s\n%s' % (path, fmt, res.returncode, out))
    if res.returncode == 0 and 'Pattern verification failed' in out:
        problems.append('qemu-io reported a mismatch with rc 0:\n%s' % out)
    return problems


def read_bytes(path, fmt, offset, length):
    """Read a range through qemu-io (-v dump) and return it as bytes."""
    res = qemu_io(path, fmt, ['read -v %d %d' % (offset, length)])
    assert res.returncode == 0, res.stdout + res.stderr
    data = bytearray()
    for line in res.stdout.splitlines():
        match = re.match(r'^[0-9a-f]{8}:\s+((?:[0-9a-f]{2} ){1,16})', line)
        if match:
            data.extend(bytes.fromhex(match.group(1).replace(' ', '')))
    return bytes(data)


class Timeline(object):
    """Writes of distinct patterns, each into its own SLOT and into COMMON."""

    def __init__(self, first=0x41, common=COMMON, base_offset=0):
        self.first = first
        self.common = common
        self.base_offset = base_offset
        self.writes = []            # (pattern, offset)

    @property
    def now(self):
        return len(self.writes)

    def next_write(self):
        index = len(self.writes)
        pattern = self.first + index
        offset = self.base_offset + index * SLOT
        assert pattern <= 0xff, 'out of patterns'
        assert offset + SLOT <= self.common or offset >= self.common + SLOT, 'a slot would overlap COMMON'
        return pattern, offset

    def write(self, path, fmt):
        """Write the next pattern into the file (the active one); returns the
        point in time after it."""
        pattern, offset = self.next_write()
        write_patterns(path, fmt, [(pattern, offset, SLOT), (pattern, self.common, SLOT)])
        self.writes.append((pattern, offset))
        return self.now

    def expectations(self, point):
        exp = [(pattern if index < point else 0, offset, SLOT) for index, (pattern, offset) in enumerate(self.writes)]
        exp.append((self.writes[point - 1][0] if point else 0, self.common, SLOT))
        return exp

    def problems(self, path, fmt, point):
        return pattern_problems(path, fmt, self.expectations(point))


# ------------------------------------------------------------------ files
def base_file(vol):
    return 'volume-%s' % vol


def overlay_file(vol, snap):
    return 'volume-%s.%s' % (vol, snap)


def info_path(directory, vol):
    return os.path.join(directory, 'volume-%s.info' % vol)


def cinder_info(mapping):
    """The exact bytes of a Cinder .info file for mapping."""
    return json.dumps(mapping, indent=1, sort_keys=True).encode('utf-8')


def read_info(directory, vol):
    path = info_path(directory, vol)
    if not os.path.exists(path):
        return None
    with open(path, 'rb') as handle:
        return json.loads(handle.read().decode('utf-8'))


def read_json(path):
    with open(path, 'rb') as handle:
        return json.loads(handle.read().decode('utf-8'))


def info_bytes(directory, vol):
    with open(info_path(directory, vol), 'rb') as handle:
        return handle.read()


def assert_info(directory, vol, mapping):
    got = info_bytes(directory, vol)
    want = cinder_info(mapping)
    assert got == want, '.info of %s is\n%r\nexpected exactly\n%r' % (vol, got, want)


def expected_info(vol, snaps):
    """The .info of vol whose remaining snapshots, oldest first, are snaps
    (each keeps its own overlay file)."""
    mapping = dict((s, overlay_file(vol, s)) for s in snaps)
    mapping['active'] = overlay_file(vol, snaps[-1]) if snaps else base_file(vol)
    return mapping


def active_view(directory, vol, base_fmt='raw'):
    """(path, format) of the active file."""
    info = read_info(directory, vol) or {}
    active = info.get('active', base_file(vol))
    return os.path.join(directory, active), ('qcow2' if active != base_file(vol) else base_fmt)


def snapshot_view(directory, vol, snap):
    """(path, format) of the file that holds a snapshot's point in time: the
    backing file of the overlay .info maps it to, as that overlay records it."""
    overlay = read_info(directory, vol)[snap]
    header = qcow2.read_header(os.path.join(directory, overlay))
    assert header.backing_file and '/' not in header.backing_file, \
        'overlay %s of %s has backing %r' % (overlay, snap, header.backing_file)
    return os.path.join(directory, header.backing_file), header.backing_format


def backing_of(directory, filename):
    header = qcow2.read_header(os.path.join(directory, filename))
    return header.backing_file, header.backing_format


def multi_problems(views):
    """views: [(label, path, fmt, expectations)], checked in one qemu-io run
    (open/read/close per view). Returns a list of problems."""
    commands, labels = [], []
    for label, path, fmt, expectations in views:
        commands.append('open -r -o driver=%s %s' % (fmt, path))
        for exp in expectations:
            commands.append('read -P 0x%02x %d %d' % exp)
            labels.append((label, path, fmt, exp))
        commands.append('close')
    argv = ['qemu-io']
    for command in commands:
        argv += ['-c', command]
    res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    problems, done = [], 0
    for line in res.stdout.splitlines():
        if 'Pattern verification failed' in line:
            label, path, fmt, exp = labels[done]
            problems.append('%s: %s (%s): %s, expected 0x%02x at %d'
                            % (label, os.path.basename(path), fmt, line.strip(), exp[0], exp[1]))
        elif re.match(r'^read \d+/\d+ bytes at offset', line):
            done += 1
    if done != len(labels) or (res.returncode != 0 and not problems) or res.stderr.strip():
        problems.append('qemu-io did not read every view (%d of %d reads, rc %s):\n%s\n%s'
                        % (done, len(labels), res.returncode, res.stdout[-2000:], res.stderr[-2000:]))
    return problems


def view_problems(directory, vol, timeline, points, base_fmt='raw'):
    """points: {snapshot name or None (active): point in time}."""
    views = []
    for snap, point in sorted(points.items(), key=lambda kv: (kv[0] is None, kv[0] or '')):
        path, fmt = active_view(directory, vol, base_fmt) if snap is None else snapshot_view(directory, vol, snap)
        views.append(('active data' if snap is None else 'snapshot %s' % snap, path, fmt,
                      timeline.expectations(point)))
    return multi_problems(views)


def volume_files(directory, vol):
    """Every file of vol (base, overlays, sidecars, temp files), sorted."""
    base = base_file(vol)
    entries = os.listdir(directory)
    # volumes named <vol>.<x> (files volume-<vol>.<x>...) are not vol's
    others = [e[:-len('.meta')] for e in entries
              if e.endswith('.meta') and e.startswith(base + '.') and e != base + '.meta']
    names = []
    for entry in entries:
        plain = entry.lstrip('.')
        if any(plain == o or plain.startswith(o + '.') for o in others):
            continue
        if entry == base or plain == base or plain.startswith(base + '.'):
            names.append(entry)
    return sorted(names)


def fingerprint(*paths):
    """{path: sha256 (or a marker)} of every file under the given
    directories/files, to prove that nothing was touched."""
    result = {}

    def one(path):
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            result[path] = 'link:' + os.readlink(path)
        elif stat.S_ISDIR(st.st_mode):
            result[path] = 'dir'
            for entry in sorted(os.listdir(path)):
                one(os.path.join(path, entry))
        elif stat.S_ISREG(st.st_mode):
            digest = hashlib.sha256()
            with open(path, 'rb') as handle:
                for chunk in iter(lambda: handle.read(1024 * 1024), b''):
                    digest.update(chunk)
            result[path] = '%s mode=%o size=%d' % (digest.hexdigest(), st.st_mode & 0o7777, st.st_size)
        else:
            result[path] = 'special'

    for path in paths:
        one(path)
    return result


def load(directory, vol):
    """The file backend's own state of vol (a FileVolume: chain, active...)."""
    return FileBackend(directory).load_state(vol)


def predicted_map(directory, vol, snap, state):
    """The .info map the snapshot planner predicts for (snap, state), the
    plan not run."""
    backend = FileBackend(directory)
    planner = {'present': backend.plan_snapshot_create, 'absent': backend.plan_snapshot_delete,
               'reverted': backend.plan_revert}[state]
    plan, _before = planner(vol, snap)
    return plan.after.details['snapshot_map']


# ------------------------------------------------------------------ processes
CHILD = r'''
import json, sys
from ansible_collections.blockyard.storage.plugins.module_utils import volumes
from ansible_collections.blockyard.storage.plugins.module_utils.errors import StorageError
func = getattr(volumes, sys.argv[1])
params = json.loads(sys.argv[2])
try:
    changed, result, diff = func(params, False)
except StorageError as exc:
    print(json.dumps({'failed': True, 'msg': exc.msg}))
    sys.exit(2)
print(json.dumps({'changed': changed, 'result': result}))
'''


def collection_path():
    """The sys.path entry through which this repository is importable as
    ansible_collections.blockyard.storage (for child processes)."""
    real = os.path.realpath(REPO_ROOT)
    candidates = list(sys.path) + os.environ.get('ANSIBLE_COLLECTIONS_PATH', '').split(os.pathsep)
    for entry in candidates:
        if not entry:
            continue
        target = os.path.join(entry, 'ansible_collections', 'blockyard', 'storage')
        if os.path.isdir(target) and os.path.realpath(target) == real:
            return entry
    raise AssertionError('cannot find how %s is importable as ansible_collections.blockyard.storage' % real)


def child_env(fault=None, skip=0):
    env = dict(os.environ)
    for key in ('BLOCKYARD_FAULT_POINT', 'BLOCKYARD_FAULT_SKIP'):
        env.pop(key, None)
    env['PYTHONPATH'] = os.pathsep.join([collection_path(), HERE] + [p for p in [env.get('PYTHONPATH')] if p])
    if fault:
        env['BLOCKYARD_FAULT_POINT'] = fault
        env['BLOCKYARD_FAULT_SKIP'] = str(skip)
    return env


def run_child(func_name, params, fault=None, skip=0, timeout=300):
    """Run volumes.<func_name>(params, False) in a new Python process, with
    fault injection when fault names a checkpoint. Returns CompletedProcess."""
    return subprocess.run([sys.executable, '-c', CHILD, func_name, json.dumps(params)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          env=child_env(fault, skip), timeout=timeout, check=False)


@contextlib.contextmanager
def recorded_checkpoints(on_hit=None):
    """Record the checkpoints an in-process operation reaches (the names
    runner.checkpoint is called with), in order; on_hit(name) is called at
    each (and what it returns, when not None, is recorded instead)."""
    from ansible_collections.blockyard.storage.plugins.module_utils import runner
    hits = []
    original = runner.checkpoint

    def record(name):
        if on_hit is None:
            hits.append(name)
        else:
            hits.extend(on_hit(name) or [])
        original(name)

    patched = []
    for mod_name, mod in list(sys.modules.items()):
        if mod is not None and mod_name.startswith('ansible_collections.blockyard.storage.') \
                and getattr(mod, 'checkpoint', None) is original:
            setattr(mod, 'checkpoint', record)
            patched.append(mod)
    try:
        yield hits
    finally:
        for mod in patched:
            setattr(mod, 'checkpoint', original)


def kill_points(hits):
    """[(checkpoint, skip)] for every hit: the n-th hit of a name is reached
    with BLOCKYARD_FAULT_SKIP = n - 1."""
    seen = {}
    points = []
    for name in hits:
        points.append((name, seen.get(name, 0)))
        seen[name] = seen.get(name, 0) + 1
    return points


def checkpoint_literals(kind='file'):
    """The named checkpoints (checkpoint('<name>')) in the module files of a
    backend's package, found through the registry."""
    from ansible_collections.blockyard.storage.plugins.module_utils import backends
    found = set()
    for path in backends.modules_of(kind):
        with open(path) as handle:
            found |= set(re.findall(r"checkpoint\(\s*'([^']+)'\s*\)", handle.read()))
    return found


# ------------------------------------------------------------------ whole-volume checks
def check_copy_from_snapshot(directory, vol, snap, timeline, point, size=VOL_SIZE, fmt='raw'):
    """Create a volume from snapshot snap (source_volume + source_snapshot),
    check that it holds exactly the snapshot's point in time, delete it."""
    copy = '%s-from-%s' % (vol, snap)
    changed, result, _diff = volume(directory, copy, source_volume=vol, source_snapshot=snap, format=fmt)
    assert changed, result
    path = os.path.join(directory, base_file(copy))
    assert result['volume']['size_bytes'] == size, result['volume']
    if fmt == 'raw':
        assert os.path.getsize(path) == size
    else:
        assert qcow2.read_header(path).size == size and qcow2.read_header(path).backing_file is None
    problems = ['copy of snapshot %s: %s' % (snap, p) for p in timeline.problems(path, fmt, point)]
    changed, _result, _diff = volume(directory, copy, state='absent')
    assert changed
    assert volume_files(directory, copy) == []
    return problems


def check_volume_state(directory, vol, timeline, snaps, base_fmt='raw', info_expected=True, copies=False,
                       active_point=None):
    """snaps: [(snapshot, point in time)] of the remaining snapshots, oldest
    first. Checks the exact .info bytes, the files of the volume, the chain
    (each overlay backed by the one before, by bare name with its format),
    every snapshot's data and the active data, volume_info's mapping, and
    (copies) a volume created from each snapshot."""
    names = [s for s, _p in snaps]
    if info_expected:
        assert_info(directory, vol, expected_info(vol, names))
    else:
        assert not os.path.exists(info_path(directory, vol))
    want_files = set([base_file(vol), 'volume-%s.meta' % vol, 'volume-%s.lock' % vol])
    want_files |= set(overlay_file(vol, s) for s in names)
    if info_expected:
        want_files.add('volume-%s.info' % vol)
    assert volume_files(directory, vol) == sorted(want_files)
    below, below_fmt = base_file(vol), base_fmt
    for snap in names:
        assert backing_of(directory, overlay_file(vol, snap)) == (below, below_fmt), snap
        below, below_fmt = overlay_file(vol, snap), 'qcow2'
    if not names:
        base = os.path.join(directory, base_file(vol))
        assert qcow2.is_qcow2(base) == (base_fmt == 'qcow2')
        if base_fmt == 'qcow2':
            assert qcow2.read_header(base).backing_file is None
    points = dict(snaps)
    points[None] = timeline.now if active_point is None else active_point
    problems = view_problems(directory, vol, timeline, points, base_fmt)
    desc = info_of(directory, vol)
    details = desc['details']
    assert details['active_file'] == (overlay_file(vol, names[-1]) if names else base_file(vol))
    assert details['active_format'] == ('qcow2' if names else base_fmt)
    assert desc['format'] == base_fmt
    assert [s['name'] for s in desc['snapshots']] == names
    got = dict((s['name'], (s['details']['overlay'], s['details']['data_file'], s['details']['stale']))
               for s in desc['snapshots'])
    want = {}
    previous = base_file(vol)
    for snap in names:
        want[snap] = (overlay_file(vol, snap), previous, False)
        previous = overlay_file(vol, snap)
    assert got == want
    assert [c['file'] for c in details['chain']] == list(reversed([overlay_file(vol, s) for s in names])) + [base_file(vol)]
    if copies:
        for snap, point in snaps:
            problems += check_copy_from_snapshot(directory, vol, snap, timeline, point)
    assert not problems, '\n'.join(problems)


# ------------------------------------------------------------------ scenarios (also run on GlusterFS)
def five_step(directory, base_fmt='raw', vol='1234'):
    """The five steps of Cinder's GlusterFS driver documentation, with our
    fix of step 4 (bug 1468445): each snapshot keeps its own file.

    1. volume-1234                                   (no .info)
    2. volume-1234 <- .aaaa                          {active: .aaaa, aaaa: .aaaa}
    3. volume-1234 <- .aaaa <- .bbbb                 {+ bbbb: .bbbb, active: .bbbb}
    4. delete aaaa: volume-1234 <- .bbbb             {active: .bbbb, bbbb: .bbbb}
    5. delete bbbb: volume-1234                      {active: volume-1234}
    A distinct pattern is written before each snapshot and after the last;
    after every step the exact .info bytes, every remaining snapshot's data
    (through a volume created from it) and the live data are checked."""
    timeline = Timeline()
    base = base_file(vol)

    # step 1
    changed, result, _diff = volume(directory, vol, size='4M', format=base_fmt)
    assert changed and result['volume']['details']['active_file'] == base
    assert result['location'] == result['volume']['location']
    timeline.write(os.path.join(directory, base), base_fmt)                        # point 1
    check_volume_state(directory, vol, timeline, [], base_fmt, info_expected=False)

    # step 2
    changed, result, diff = snapshot(directory, vol, 'aaaa')
    assert changed
    snap = result['snapshot']
    assert (snap['name'], snap['volume'], snap['details']['overlay'], snap['details']['data_file'],
            snap['size_bytes']) == ('aaaa', vol, overlay_file(vol, 'aaaa'), base, VOL_SIZE)
    assert snap['details']['overlay_path'] == os.path.join(directory, overlay_file(vol, 'aaaa'))
    assert result['actions'] and diff['before'] == {'snapshots': []}
    assert diff['after'] == {'snapshots': ['aaaa']}
    assert snap['details']['snapshot_map'] == expected_info(vol, ['aaaa'])
    assert_info(directory, vol, expected_info(vol, ['aaaa']))
    aaaa = timeline.now
    check_volume_state(directory, vol, timeline, [('aaaa', aaaa)], base_fmt, copies=True)
    timeline.write(*active_view(directory, vol, base_fmt))                          # point 2

    # step 3
    changed, result, diff = snapshot(directory, vol, 'bbbb')
    assert changed and result['snapshot']['details']['data_file'] == overlay_file(vol, 'aaaa')
    assert diff['before'] == {'snapshots': ['aaaa']} and diff['after'] == {'snapshots': ['aaaa', 'bbbb']}
    assert result['snapshot']['details']['snapshot_map'] == expected_info(vol, ['aaaa', 'bbbb'])
    assert_info(directory, vol, expected_info(vol, ['aaaa', 'bbbb']))
    bbbb = timeline.now
    timeline.write(*active_view(directory, vol, base_fmt))                          # point 3 (live)
    check_volume_state(directory, vol, timeline, [('aaaa', aaaa), ('bbbb', bbbb)], base_fmt, copies=True)

    # step 4: delete the first (non-active) snapshot
    changed, result, diff = snapshot(directory, vol, 'aaaa', state='absent')
    assert changed and result['snapshot']['state'] == 'absent'
    assert diff['before'] == {'snapshots': ['aaaa', 'bbbb']} and diff['after'] == {'snapshots': ['bbbb']}
    assert_info(directory, vol, {'active': overlay_file(vol, 'bbbb'), 'bbbb': overlay_file(vol, 'bbbb')})
    assert any('commit' in a for a in result['actions'])
    check_volume_state(directory, vol, timeline, [('bbbb', bbbb)], base_fmt, copies=True)
    # volume-X now holds bbbb's point in time
    assert not timeline.problems(os.path.join(directory, base), base_fmt, bbbb)
    timeline.write(*active_view(directory, vol, base_fmt))                          # point 4

    # step 5: delete the last one: back to the base file and its format
    changed, result, diff = snapshot(directory, vol, 'bbbb', state='absent')
    assert changed
    assert diff['before'] == {'snapshots': ['bbbb']} and diff['after'] == {'snapshots': []}
    check_volume_state(directory, vol, timeline, [], base_fmt)
    assert_info(directory, vol, {'active': base})
    return timeline


def clone_scenario(directory, base_fmt='raw', src='src', dest='dst'):
    """Clone a volume that has a snapshot: the clone holds the live data, the
    temporary snapshot is gone, the source's .info and data are unchanged."""
    timeline = Timeline()
    volume(directory, src, size='4M', format=base_fmt)
    timeline.write(os.path.join(directory, base_file(src)), base_fmt)
    snapshot(directory, src, 's1')
    s1 = timeline.now
    timeline.write(*active_view(directory, src, base_fmt))
    before = info_bytes(directory, src)
    changed, result, _diff = volume(directory, dest, source_volume=src)
    assert changed, result
    assert any('tmp-snap-%s' % dest in a for a in result['actions']) or \
        any('reflink' in a for a in result['actions']), result['actions']
    assert info_bytes(directory, src) == before
    assert not [f for f in os.listdir(directory) if 'tmp-snap' in f]
    check_volume_state(directory, src, timeline, [('s1', s1)], base_fmt)
    problems = timeline.problems(os.path.join(directory, base_file(dest)), 'raw', timeline.now)
    assert not problems, '\n'.join(problems)
    assert volume_files(directory, dest) == sorted(['volume-%s' % dest, 'volume-%s.lock' % dest,
                                                   'volume-%s.meta' % dest])
    changed, _result, _diff = volume(directory, dest, source_volume=src)
    assert not changed
    return timeline


def revert_scenario(directory, base_fmt='raw', vol='rev'):
    """Revert to the latest snapshot: the data equals the snapshot's, a
    second revert reports no change, an older snapshot is refused."""
    from ansible_collections.blockyard.storage.plugins.module_utils.errors import Conflict
    timeline = Timeline()
    volume(directory, vol, size='4M', format=base_fmt)
    timeline.write(os.path.join(directory, base_file(vol)), base_fmt)
    snapshot(directory, vol, 'old')
    old = timeline.now
    timeline.write(*active_view(directory, vol, base_fmt))
    snapshot(directory, vol, 'new')
    new = timeline.now
    changed, result, _diff = snapshot(directory, vol, 'new', state='reverted')
    assert not changed, 'nothing written since the snapshot, yet the revert reported a change: %s' % result
    timeline.write(*active_view(directory, vol, base_fmt))
    info_before = info_bytes(directory, vol)
    changed, result, diff = snapshot(directory, vol, 'new', state='reverted')
    assert changed and result['actions']
    assert result['snapshot']['name'] == 'new' and result['snapshot']['state'] == 'reverted'
    assert info_bytes(directory, vol) == info_before
    # the map does not change; the diff says what does
    assert diff['before'] == {'snapshots': ['old', 'new'], 'data_since_snapshot': 'present'}
    assert diff['after'] == {'snapshots': ['old', 'new'], 'data_since_snapshot': 'discarded'}
    assert result['snapshot']['details']['snapshot_map'] == expected_info(vol, ['old', 'new'])
    check_volume_state(directory, vol, timeline, [('old', old), ('new', new)], base_fmt, active_point=new)
    changed, result, _diff = snapshot(directory, vol, 'new', state='reverted')
    assert not changed, result
    listing = fingerprint(directory)
    try:
        snapshot(directory, vol, 'old', state='reverted')
    except Conflict as exc:
        assert 'old' in exc.msg and 'latest' in exc.msg and 'new' in exc.msg, exc.msg
    else:
        raise AssertionError('a revert to a snapshot that is not the latest was not refused')
    assert fingerprint(directory) == listing
    return timeline


# ------------------------------------------------------------------ concurrency
WORKER = r'''
import json, os, random, sys, time
import snapchain as sc
from ansible_collections.blockyard.storage.plugins.module_utils import locks

directory, worker, ops, log_path, go, seed = sys.argv[1:7]
worker, ops = int(worker), int(ops)
rng = random.Random(seed)
mine, report = [], {'creates': [], 'deletes': [], 'sections': []}
while not os.path.exists(go):
    time.sleep(0.002)
report['start'] = time.time()
for i in range(ops):
    # a pause between tasks (outside the lock), as between playbook tasks:
    # the lock is polled, so a worker that never pauses could starve the other
    time.sleep(rng.uniform(0, 0.08))
    if mine and rng.random() < 0.4:
        snap = rng.choice(mine)
        changed, result, diff = sc.snapshot(directory, 'V', snap, state='absent')
        assert changed, result
        mine.remove(snap)
        report['deletes'].append(snap)
    else:
        snap = 'w%d-%02d' % (worker, i)
        index = 2 * i + worker
        pattern, offset = 0x40 + index, index * sc.SLOT
        with locks.volume_lock(directory, 'V'):
            entered = time.time()
            path, fmt = sc.active_view(directory, 'V')
            sc.write_patterns(path, fmt, [(pattern, offset, sc.SLOT), (pattern, sc.COMMON, sc.SLOT)])
            with open(log_path, 'a') as log:
                log.write(json.dumps({'worker': worker, 'snap': snap, 'pattern': pattern, 'offset': offset}) + '\n')
                log.flush()
                os.fsync(log.fileno())
            changed, result, diff = sc.snapshot(directory, 'V', snap)
            assert changed and result['snapshot']['details']['overlay'] == 'volume-V.' + snap, result
            report['sections'].append((entered, time.time()))
        mine.append(snap)
        report['creates'].append(snap)
report['end'] = time.time()
report['mine'] = mine
print(json.dumps(report))
'''


def concurrent_snapshots(vdir, scratch, ops, seed, vol='V'):
    """Two worker processes create and delete snapshots of vol (which must
    exist, 4 MiB, no snapshots) at once; then check every snapshot's data.
    See test_concurrency.py. Returns a short summary."""
    assert vol == 'V'
    log_path = os.path.join(scratch, 'writes-%s.log' % seed)
    go = os.path.join(scratch, 'go-%s' % seed)
    procs = [subprocess.Popen([sys.executable, '-c', WORKER, vdir, str(w), str(ops), log_path, go,
                               '%s-%d' % (seed, w)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                              env=child_env())
             for w in (0, 1)]
    time.sleep(0.3)
    open(go, 'w').close()
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, 'worker failed: rc %s\n%s\n%s' % (proc.returncode, out[-3000:], err[-3000:])
        reports.append(json.loads(out.strip().splitlines()[-1]))

    # they really ran at the same time, and the locked sections never overlapped
    assert reports[0]['start'] < reports[1]['end'] and reports[1]['start'] < reports[0]['end']
    sections = sorted((s, e, w) for w, r in enumerate(reports) for s, e in r['sections'])
    for (_s1, e1, w1), (s2, _e2, w2) in zip(sections, sections[1:]):
        assert e1 <= s2, 'locked sections of workers %d and %d overlap' % (w1, w2)
    switches = sum(1 for a, b in zip(sections, sections[1:]) if a[2] != b[2])
    assert switches >= 2, 'the workers did not interleave (%d switches)' % switches

    # every snapshot holds exactly the writes logged before it
    with open(log_path) as handle:
        log = [json.loads(line) for line in handle]
    assert sorted(e['snap'] for e in log) == sorted(reports[0]['creates'] + reports[1]['creates'])
    timeline = Timeline()
    timeline.writes = [(e['pattern'], e['offset']) for e in log]
    points = dict((e['snap'], index + 1) for index, e in enumerate(log))
    remaining = set(reports[0]['mine']) | set(reports[1]['mine'])
    deleted = set(reports[0]['deletes']) | set(reports[1]['deletes'])
    assert deleted and remaining, 'the workers should both create and delete'
    info = read_info(vdir, vol)
    assert set(info) - set(['active']) == remaining
    ordered = sorted(remaining, key=lambda s: points[s])
    check_volume_state(vdir, vol, timeline, [(s, points[s]) for s in ordered])
    assert not os.path.exists(os.path.join(vdir, 'volume-%s.journal' % vol))

    # and the survivors can all still be deleted, newest first, keeping the data
    for snap in reversed(ordered):
        snapshot(vdir, vol, snap, state='absent')
    check_volume_state(vdir, vol, timeline, [])
    return ('locked sections: %d, worker switches: %d; snapshots created: %d, deleted concurrently: %d, left: %d'
            % (len(sections), switches, len(log), len(deleted), len(remaining)))


def remove_mount(mount_point):
    """Unmount mount_point (lazily if it is busy) and remove the directory."""
    if os.path.ismount(mount_point):
        if subprocess.run(['umount', mount_point], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          check=False).returncode != 0:
            subprocess.run(['umount', '-l', mount_point], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           check=False)
    try:
        os.rmdir(mount_point)
    except OSError:
        pass
