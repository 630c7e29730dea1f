# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the adversarial corpus (test_adversarial.py): a pristine tree of
volumes built once and copied per case, a manifest of a whole tree (type,
mode, owner, content, times), and an isolated run of one core call in a
forked child with a timeout that also notices a child blocked on a FIFO.

The tree of one case (ROOT is a fresh directory on tmpfs):

    ROOT/canary                  a file beside the volume directory
    ROOT/canarydir/file          a directory with a file in it (links point here)
    ROOT/images/img.raw          the source_image of the copy-from-image cases
    ROOT/elsewhere/volume-cin2   a volume of another location (no .meta)
    ROOT/vols/                   the volume directory:
        victim   raw 1 MiB, data A, snapshot s1, then data B (active: volume-victim.s1)
        plain    raw 1 MiB, data P, no snapshot
        keep     raw 1 MiB with snapshot k1
        qc       qcow2 1 MiB
        cin      a Cinder volume not adopted yet (volume-cin only, mode 0666)
        c, b, db the owners of the colliding names c.s1, b.info, db.lock (db, data D:
                 also the source of the copies into the target)
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import hashlib
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import time
import traceback

import snapchain as sc
from ansible_collections.blockyard.storage.plugins.module_utils import volumes
from ansible_collections.blockyard.storage.plugins.module_utils.errors import StorageError

KIB = 1024
MIB = 1024 * 1024
SIZE = '1M'
SIZE_BYTES = MIB
LEN = 64 * KIB
A_OFF = 128 * KIB          # data written before the snapshot
B_OFF = 192 * KIB          # data written after it (in the overlay)
PAT = {'victim': (0x41, 0x42), 'plain': 0x50, 'keep': (0x4b, 0x4c), 'qc': 0x51, 'cin': 0x43, 'image': 0x49,
       'elsewhere': 0x45, 'db': 0x44}

VOLS = 'vols'
CANARY = 'canary'
CANARY_DIR = 'canarydir'
IMAGE = os.path.join('images', 'img.raw')
ELSEWHERE = 'elsewhere'
BIG_FILE = 64 * MIB        # larger files are compared by size only (a grown volume is a failure anyway)


# ------------------------------------------------------------------ the pristine tree
def _sparse_raw(path, size, writes=(), mode=0o644):
    with open(path, 'wb') as handle:
        handle.truncate(size)
    os.chmod(path, mode)
    if writes:
        sc.write_patterns(path, 'raw', list(writes))


def build_template(root):
    """Build the pristine tree under root with the core itself."""
    vdir = os.path.join(root, VOLS)
    os.makedirs(vdir)
    vdir = os.path.realpath(vdir)
    sc.volume(vdir, 'victim', size=SIZE)
    sc.write_patterns(os.path.join(vdir, 'volume-victim'), 'raw', [(PAT['victim'][0], A_OFF, LEN)])
    sc.snapshot(vdir, 'victim', 's1')
    sc.write_patterns(os.path.join(vdir, 'volume-victim.s1'), 'qcow2', [(PAT['victim'][1], B_OFF, LEN)])
    sc.volume(vdir, 'plain', size=SIZE)
    sc.write_patterns(os.path.join(vdir, 'volume-plain'), 'raw', [(PAT['plain'], A_OFF, LEN)])
    sc.volume(vdir, 'keep', size=SIZE)
    sc.write_patterns(os.path.join(vdir, 'volume-keep'), 'raw', [(PAT['keep'][0], A_OFF, LEN)])
    sc.snapshot(vdir, 'keep', 'k1')
    sc.write_patterns(os.path.join(vdir, 'volume-keep.k1'), 'qcow2', [(PAT['keep'][1], B_OFF, LEN)])
    sc.volume(vdir, 'qc', size=SIZE, format='qcow2')
    sc.write_patterns(os.path.join(vdir, 'volume-qc'), 'qcow2', [(PAT['qc'], A_OFF, LEN)])
    _sparse_raw(os.path.join(vdir, 'volume-cin'), SIZE_BYTES, [(PAT['cin'], A_OFF, LEN)], 0o666)
    for name, snap in (('c', 's1'), ('b', 'b1'), ('db', None)):
        sc.volume(vdir, name, size=SIZE)
        if snap:
            sc.snapshot(vdir, name, snap)
    sc.write_patterns(os.path.join(vdir, 'volume-db'), 'raw', [(PAT['db'], A_OFF, LEN)])
    with open(os.path.join(root, CANARY), 'wb') as handle:
        handle.write(b'canary outside the volume directory: nothing may touch it\n')
    os.chmod(os.path.join(root, CANARY), 0o640)
    os.mkdir(os.path.join(root, CANARY_DIR), 0o750)
    with open(os.path.join(root, CANARY_DIR, 'file'), 'wb') as handle:
        handle.write(b'a file in a directory outside the volume directory\n')
    os.chmod(os.path.join(root, CANARY_DIR, 'file'), 0o600)
    os.mkdir(os.path.join(root, 'images'))
    _sparse_raw(os.path.join(root, IMAGE), SIZE_BYTES, [(PAT['image'], A_OFF, LEN)])
    os.mkdir(os.path.join(root, ELSEWHERE))
    _sparse_raw(os.path.join(root, ELSEWHERE, 'volume-cin2'), SIZE_BYTES, [(PAT['elsewhere'], A_OFF, LEN)], 0o666)
    return vdir


def _copy_sparse(src, dst, st):
    sfd = os.open(src, os.O_RDONLY)
    try:
        dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(dfd, st.st_size)
            offset = 0
            while offset < st.st_size:
                try:
                    data = os.lseek(sfd, offset, os.SEEK_DATA)
                except OSError as exc:
                    if exc.errno == errno.ENXIO:
                        break
                    raise
                hole = os.lseek(sfd, data, os.SEEK_HOLE)
                pos = data
                while pos < hole:
                    chunk = os.pread(sfd, min(MIB, hole - pos), pos)
                    if not chunk:
                        break
                    os.pwrite(dfd, chunk, pos)
                    pos += len(chunk)
                offset = hole
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


def copy_tree(src, dst):
    """Copy the pristine tree (regular files sparse, modes and owners kept)."""
    st = os.lstat(src)
    if stat.S_ISDIR(st.st_mode):
        if not os.path.isdir(dst):
            os.mkdir(dst)
        for entry in os.listdir(src):
            copy_tree(os.path.join(src, entry), os.path.join(dst, entry))
    else:
        _copy_sparse(src, dst, st)
    if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
        os.chown(dst, st.st_uid, st.st_gid)
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    if not stat.S_ISDIR(st.st_mode):
        # the same mtime as the pristine file: its digest is reused (manifest)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


# ------------------------------------------------------------------ manifest
def _digest(path, size):
    """Digest of the content: non-zero 64 KiB blocks with their offsets (a
    hole and allocated zeros compare equal)."""
    if size > BIG_FILE:
        return 'not hashed (%d bytes)' % size
    digest = hashlib.sha1()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        block = 0
        while block < size:
            try:
                data = os.lseek(fd, block, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    break
                raise
            block = max(block, data - data % LEN)
            chunk = os.pread(fd, LEN, block)
            if chunk.count(0) != len(chunk):
                digest.update(b'@%d:' % block)
                digest.update(chunk)
            block += LEN
    finally:
        os.close(fd)
    return digest.hexdigest()


def manifest(root, skip_mtime=(), known=None):
    """{relative path: description} of everything under root (links not
    followed): type, mode, owner, group, size, content digest, mtime.

    known: a dict shared between the manifests of one case (and seeded with
    the pristine tree's): the digest of a file whose path, size, mtime (and,
    within a case, inode and ctime) are unchanged is not computed again. A
    write changes mtime and ctime; copy_tree keeps the pristine mtime."""
    result = {}
    known = {} if known is None else known

    def digest(rel, path, st):
        exact = (rel, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if exact in known:
            return known[exact]
        value = known.get((rel, st.st_size, st.st_mtime_ns))
        if value is None:
            value = _digest(path, st.st_size)
        known[exact] = value
        return value

    def walk(rel):
        path = os.path.join(root, rel) if rel else root
        st = os.lstat(path)
        mtime = None if rel in skip_mtime else st.st_mtime_ns
        own = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        if stat.S_ISLNK(st.st_mode):
            result[rel] = ('symlink', os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            result[rel] = ('dir',) + own + (mtime,)
            for entry in sorted(os.listdir(path)):
                walk(os.path.join(rel, entry) if rel else entry)
        elif stat.S_ISREG(st.st_mode):
            result[rel] = ('file',) + own + (st.st_size, mtime, digest(rel, path, st))
        elif stat.S_ISFIFO(st.st_mode):
            result[rel] = ('fifo',) + own
        else:
            result[rel] = ('special %o' % stat.S_IFMT(st.st_mode),) + own

    walk('')
    return result


def pristine_digests(root):
    """{(path, size, mtime): digest} of the pristine tree, to seed the
    manifests of the cases (their copies keep its mtimes)."""
    seeds = {}
    for rel, entry in manifest(root).items():
        if entry[0] == 'file':
            seeds[(rel, entry[4], entry[5])] = entry[6]
    return seeds


def diff_manifest(before, after):
    """[(path, before, after)] of every difference."""
    return [(p, before.get(p), after.get(p)) for p in sorted(set(before) | set(after)) if before.get(p) != after.get(p)]


def describe_diff(changes, limit=12):
    lines = []
    for path, old, new in changes[:limit]:
        if old is None:
            lines.append('  created %s: %s' % (path, new))
        elif new is None:
            lines.append('  removed %s (was %s)' % (path, old))
        else:
            lines.append('  changed %s: %s -> %s' % (path, old, new))
    if len(changes) > limit:
        lines.append('  ... and %d more' % (len(changes) - limit))
    return '\n'.join(lines)


# ------------------------------------------------------------------ isolated runs
# Where a process sleeps when it waits for a FIFO's other end: in open
# (unambiguous), or in read (a process the child started; it reads no pipe of
# ours: stdin is /dev/null). Seconds a wait must last to count as a hang.
FIFO_WAITS = {'wait_for_partner': 0.3, 'fifo_open': 0.3}
PIPE_WAITS = {'pipe_read': 1.0, 'pipe_wait': 1.0}


def _proc_children():
    children = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as handle:
                fields = handle.read().rsplit(')', 1)[1].split()
        except (IOError, OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def _descendants(pid):
    children = _proc_children()
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for child in children.get(current, []):
            found.append(child)
            todo.append(child)
    return found


def _wchan(pid):
    try:
        with open('/proc/%d/wchan' % pid) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return ''


def _blocked_on_fifo(pid):
    """(pid, wchan) of the child or a process it started that sleeps on a
    FIFO, else None. The child (Python) only reads pipes through poll, so a
    pipe wait counts for the processes it started (qemu-img) only."""
    wchan = _wchan(pid)
    if wchan in FIFO_WAITS:
        return pid, wchan
    for sub in _descendants(pid):
        wchan = _wchan(sub)
        if wchan in FIFO_WAITS or wchan in PIPE_WAITS:
            return sub, wchan
    return None


def run_isolated(func, timeout=30.0):
    """Run func() in a forked child (own process group) and return
    {'status': 'ok', 'value'} or {'status': 'error', 'storage', 'classes',
    'msg', 'traceback'} or {'status': 'hung'|'timeout'|'crash', 'msg'}."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:    # the child
        try:
            os.close(rfd)
            os.setpgid(0, 0)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            try:
                value = func()
                payload = {'status': 'ok', 'value': value}
            except StorageError as exc:
                payload = {'status': 'error', 'storage': True, 'classes': [c.__name__ for c in type(exc).__mro__],
                           'msg': exc.msg, 'details': exc.details, 'traceback': traceback.format_exc()}
            except BaseException as exc:  # noqa: reported, the test fails on it
                payload = {'status': 'error', 'storage': False, 'classes': [c.__name__ for c in type(exc).__mro__],
                           'msg': '%s: %s' % (type(exc).__name__, exc), 'traceback': traceback.format_exc()}
            data = json.dumps(payload, default=repr).encode('utf-8')
            view = memoryview(data)
            while view:
                view = view[os.write(wfd, view):]
        except BaseException:  # noqa: never return into pytest in the child
            pass
        finally:
            os._exit(0)
    os.close(wfd)
    chunks, start, suspect, since = [], time.monotonic(), None, None
    outcome = None
    try:
        while True:
            ready, _w, _x = select.select([rfd], [], [], 0.05)
            if ready:
                chunk = os.read(rfd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
                continue
            elapsed = time.monotonic() - start
            if elapsed > timeout:
                outcome = {'status': 'timeout', 'msg': 'did not finish within %ss' % timeout}
                break
            if elapsed > 0.2:
                blocked = _blocked_on_fifo(pid)
                if blocked != suspect:
                    suspect, since = blocked, time.monotonic()
                elif blocked and time.monotonic() - since >= dict(FIFO_WAITS, **PIPE_WAITS)[blocked[1]]:
                    outcome = {'status': 'hung', 'msg': 'process %d sleeps in %s (blocked on a FIFO) after %.1fs'
                               % (blocked[0], blocked[1], elapsed)}
                    break
    finally:
        if outcome is not None:
            victims = _descendants(pid)
            for target in [pid] + victims:
                try:
                    os.kill(target, signal.SIGKILL)
                except OSError:
                    pass
        os.close(rfd)
        os.waitpid(pid, 0)
    if outcome is not None:
        return outcome
    raw = b''.join(chunks)
    if not raw:
        return {'status': 'crash', 'msg': 'the child died without a result'}
    return json.loads(raw.decode('utf-8'))


# ------------------------------------------------------------------ listing
def normalized(desc):
    """The parts of a volume_info description that must not change when
    another volume is damaged."""
    if desc is None:
        return None
    keys = ('name', 'format', 'provisioning', 'size_bytes', 'managed', 'error')
    details = desc.get('details') or {}
    result = dict((k, desc.get(k)) for k in keys)
    result.update((k, details.get(k)) for k in ('active_format', 'virtual_bytes', 'active_file'))
    result['snapshots'] = sorted((s.get('name'), (s.get('details') or {}).get('overlay'),
                                  (s.get('details') or {}).get('data_file')) for s in desc.get('snapshots') or [])
    result['chain'] = [(c.get('file'), c.get('format'), c.get('backing_file')) for c in details.get('chain') or []]
    return result


def listing(vdir):
    return volumes.volume_info(dict(sc.LOCATION, volume_dir=vdir))[1]


def qcow2_header_with_backing(path, backing, size=SIZE_BYTES):
    """The first cluster of a qcow2 image whose backing file is `backing`
    (as a guest could write onto its own disk)."""
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-u', '-b', backing, '-F', 'raw', path, str(size)],
                   check=True)
    with open(path, 'rb') as handle:
        return handle.read(LEN)


# ------------------------------------------------------------------ real journals
def journal_recorder(vdir):
    """Record every journal file of vdir at every checkpoint the core
    reaches (in process, nothing killed): [(checkpoint, file name, JSON)]."""
    import snapchain

    def journals(name):
        found = []
        for entry in sorted(os.listdir(vdir)):
            if entry.endswith('.journal'):
                try:
                    with open(os.path.join(vdir, entry), 'rb') as handle:
                        found.append((name, entry, json.loads(handle.read().decode('utf-8'))))
                except (IOError, OSError, ValueError):
                    pass
        return found
    return snapchain.recorded_checkpoints(journals)


def _placeholders(value, root, vdir):
    if isinstance(value, dict):
        return dict((k, _placeholders(v, root, vdir)) for k, v in value.items())
    if isinstance(value, list):
        return [_placeholders(v, root, vdir) for v in value]
    if isinstance(value, str):
        return value.replace(vdir, '{VDIR}').replace(root, '{ROOT}')
    return value


def capture_journals(template_root, scratch):
    """The journals the core itself writes for an extend of victim to 2 MiB,
    a clone of victim into fresh, a create of fresh and a delete of snapshot
    s1 of victim: {kind: [(file name, JSON with {ROOT}/{VDIR} placeholders)]}
    (every distinct state seen at a checkpoint, in order)."""
    steps = [
        ('extend', lambda v: volumes.ensure_volume(sc.vparams(v, 'victim', mode=None, size='2M'), False)),
        ('clone', lambda v: volumes.ensure_volume(sc.vparams(v, 'fresh', mode=None, source_volume='victim'), False)),
        ('create', lambda v: volumes.ensure_volume(sc.vparams(v, 'fresh', mode=None, size=SIZE), False)),
        ('snapshot_delete', lambda v: volumes.ensure_snapshot(sc.sparams(v, 'victim', 's1', 'absent', mode=None),
                                                              False)),
    ]
    captured = {}
    for kind, func in steps:
        root = os.path.join(scratch, 'capture-' + kind)
        copy_tree(template_root, root)
        vdir = os.path.join(root, VOLS)
        with journal_recorder(vdir) as seen:
            func(vdir)
        states = []
        for _checkpoint, entry, data in seen:
            item = (entry, _placeholders(data, root, vdir))
            if item not in states:
                states.append(item)
        captured[kind] = states
        shutil.rmtree(root)
    return captured


def mutate(value, func):
    """Apply func to every leaf of a JSON value (dict keys kept)."""
    if isinstance(value, dict):
        return dict((k, mutate(v, func)) for k, v in value.items())
    if isinstance(value, list):
        return [mutate(v, func) for v in value]
    return func(value)


def fill(value, root, vdir):
    return mutate(value, lambda v: v.replace('{VDIR}', vdir).replace('{ROOT}', root) if isinstance(v, str) else v)
