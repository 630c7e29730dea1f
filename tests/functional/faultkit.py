# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the fault suite (tests/functional/test_faults_*.py).

- Real `ansible-playbook` runs on localhost (connection local, the venv's
  python), and SIGKILL of their WHOLE process tree: ansible-playbook runs
  every task's module in a session of its own, so killing the controller's
  process group would leave the module (and its qemu-img) running. A tree is
  found by walking /proc by parent pid, plus every process whose environment
  carries the tree's marker (a process re-parented to init is still found);
  all of them are stopped first (SIGSTOP, so that nothing forks meanwhile),
  then killed.
- Filesystems of their own: loop-mounted XFS/ext4 and size-limited tmpfs
  mounts that are always unmounted (also when the test fails), with
  `xfs_io -x -c shutdown` (a power cut: nothing more reaches the disk) and
  remount.
- Scenario builders and whole-directory checks on top of snapchain."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

import snapchain as sc
from ansible_collections.blockyard.storage.plugins.module_utils.backends.file import layout

VENV = os.path.join(sc.REPO_ROOT, '.venv')
ANSIBLE_PLAYBOOK = os.path.join(VENV, 'bin', 'ansible-playbook')
PYTHON = os.path.join(VENV, 'bin', 'python')
MARKER = 'BLOCKYARD_FAULTKIT_TREE'

UNEXPECTED = 'Unexpected error'
V = 'V'


# ------------------------------------------------------------------ commands
def run(argv, timeout=120, check=False):
    res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                         timeout=timeout, check=False)
    if check and res.returncode != 0:
        raise AssertionError('%s failed: rc %s\n%s' % (' '.join(argv), res.returncode, res.stdout))
    return res


def memory_base():
    """/dev/shm when it is a tmpfs (scratch files and loop images there cost
    no disk I/O), else None (the default temporary directory)."""
    from ansible_collections.blockyard.storage.plugins.module_utils import fileio
    if os.path.isdir('/dev/shm') and os.access('/dev/shm', os.W_OK) and fileio.fs_type('/dev/shm') == 'tmpfs':
        return '/dev/shm'
    return None


@contextlib.contextmanager
def scratch_dir(prefix):
    path = os.path.realpath(tempfile.mkdtemp(prefix=prefix, dir=memory_base()))
    try:
        yield path
    finally:
        unimmutable(path)
        shutil.rmtree(path, ignore_errors=True)


def unimmutable(path):
    """chattr -i on everything under path (so that it can be removed)."""
    if os.path.exists(path) and shutil.which('chattr'):
        subprocess.run(['chattr', '-R', '-f', '-i', path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)


# ------------------------------------------------------------------ process trees
def _stat_fields(pid):
    """The fields of /proc/<pid>/stat after the command name, or None when
    the process is gone."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as handle:
            raw = handle.read().decode('latin-1')
    except (IOError, OSError):
        return None
    return raw[raw.rindex(')') + 2:].split()


def _proc_stat(pid):
    """(ppid, state) of pid, or None when it is gone."""
    rest = _stat_fields(pid)
    return None if rest is None else (int(rest[1]), rest[0])


def session_of(pid):
    """(pgid, session id) of pid, or None when it is gone."""
    rest = _stat_fields(pid)
    return None if rest is None else (int(rest[2]), int(rest[3]))


def _all_pids():
    return [int(e) for e in os.listdir('/proc') if e.isdigit()]


def _environ_has(pid, needle):
    try:
        with open('/proc/%d/environ' % pid, 'rb') as handle:
            return needle in handle.read()
    except (IOError, OSError):
        return False


def cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            return handle.read().replace(b'\0', b' ').decode('utf-8', 'replace')
    except (IOError, OSError):
        return ''


def alive(pid):
    st = _proc_stat(pid)
    return st is not None and st[1] not in ('Z', 'X')


class ProcessTree(object):
    """A command started in a new session, with a marker in its environment
    that every descendant inherits."""

    def __init__(self, argv, env, log_path, cwd=None):
        self.token = uuid.uuid4().hex
        env = dict(env)
        env[MARKER] = self.token
        self.log_path = log_path
        self._log = open(log_path, 'wb')
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd,
                                     start_new_session=True)
        self.killed = False

    def members(self):
        """pids of the tree: descendants of the root by ppid, and every
        process carrying the marker."""
        needle = ('%s=%s' % (MARKER, self.token)).encode('ascii')
        children = {}
        marked = set()
        for pid in _all_pids():
            st = _proc_stat(pid)
            if st is None:
                continue
            children.setdefault(st[0], []).append(pid)
            if _environ_has(pid, needle):
                marked.add(pid)
        found = set()
        todo = [self.proc.pid] + list(marked)
        while todo:
            pid = todo.pop()
            if pid in found:
                continue
            found.add(pid)
            todo.extend(children.get(pid, []))
        return set(p for p in found if _proc_stat(p) is not None)

    def find(self, text):
        """pid of a live member whose command line contains text, or None."""
        for pid in self.members():
            if text in cmdline(pid) and alive(pid):
                return pid
        return None

    def finished(self):
        return self.proc.poll() is not None

    def kill(self):
        """SIGSTOP every member until no new one appears, then SIGKILL all,
        then wait until none is alive. Returns the number of processes."""
        stopped = set()
        for _round in range(100):
            new = self.members() - stopped
            if not new:
                break
            for pid in new:
                try:
                    os.kill(pid, signal.SIGSTOP)
                except ProcessLookupError:
                    pass
            stopped |= new
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.killed = True
        self.wait(30)
        deadline = time.monotonic() + 30
        while any(alive(p) for p in stopped | self.members()):
            assert time.monotonic() < deadline, 'processes of the tree survived SIGKILL: %s' % sorted(
                p for p in stopped if alive(p))
            time.sleep(0.01)
        return len(stopped)

    def wait(self, timeout=None):
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.returncode is not None and not self._log.closed:
                self._log.close()
        return self.proc.returncode

    def output(self):
        with open(self.log_path, 'rb') as handle:
            return handle.read().decode('utf-8', 'replace')

    def cleanup(self):
        """Kill whatever is left (a test that failed half-way)."""
        if self.members() - set([self.proc.pid]) or not self.finished():
            self.kill()
        if not self._log.closed:
            self._log.close()


# ------------------------------------------------------------------ playbooks
def task(module, args, register=None, title=None):
    fqcn = module if '.' in module else 'blockyard.storage.%s' % module
    entry = {'name': title or '%s %s' % (module, ' '.join('%s=%s' % kv for kv in sorted(args.items())))}
    entry[fqcn] = args
    if register:
        entry['register'] = register
    return entry


def twice(module, args):
    """The task, the same task again, and an assert that the second one
    changed nothing (the "third run reports changed=0")."""
    return [task(module, args, register='first_run'), task(module, args, register='again'),
            {'name': 'the same task again changed nothing',
             'ansible.builtin.assert': {'that': ['not again.changed'],
                                        'fail_msg': 'second run changed: {{ again.actions | default(again) }}'}}]


def module_pid(tree):
    """pid of the running module (python .../AnsiballZ_<module>.py), or None."""
    for pid in tree.members():
        line = cmdline(pid)
        if 'AnsiballZ_' in line and not line.startswith('/bin/sh') and 'python' in line.split(' ', 1)[0] \
                and alive(pid):
            return pid
    return None


def write_playbook(path, volume_dir, tasks, name='fault suite'):
    play = {'name': name, 'hosts': 'localhost', 'gather_facts': False,
            'module_defaults': {'group/blockyard.storage.all': {'volume_dir': volume_dir}},
            'tasks': tasks}
    with open(path, 'w') as handle:
        json.dump([play], handle, indent=1)      # JSON is YAML
    return path


def ansible_env(workdir):
    env = dict(os.environ)
    for key in list(env):
        if key.startswith('BLOCKYARD_FAULT') or key in (MARKER, 'ANSIBLE_CONFIG'):
            del env[key]
    tmp = os.path.join(workdir, 'ansible-tmp')
    if not os.path.isdir(tmp):
        os.makedirs(tmp)
    env.update({
        'ANSIBLE_LOCAL_TEMP': tmp,
        'ANSIBLE_REMOTE_TMP': tmp,
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0',
        'ANSIBLE_RETRY_FILES_ENABLED': '0',
        'ANSIBLE_PIPELINING': '0',          # the module runs as python .../AnsiballZ_<module>.py (module_pid)
        'ANSIBLE_PYTHON_INTERPRETER': PYTHON,
        'ANSIBLE_CALLBACK_RESULT_FORMAT': 'json',
        'ANSIBLE_LOCALHOST_WARNING': '0',
        'ANSIBLE_INVENTORY_UNPARSED_WARNING': '0',
        'ANSIBLE_DEPRECATION_WARNINGS': '0',
        'LC_ALL': 'C.UTF-8',
    })
    return env


def playbook_argv(playbook):
    return [ANSIBLE_PLAYBOOK, '-i', 'localhost,', '-c', 'local', '-e', 'ansible_python_interpreter=%s' % PYTHON,
            playbook]


def start_playbook(playbook, workdir, label):
    return ProcessTree(playbook_argv(playbook), ansible_env(workdir), os.path.join(workdir, '%s.log' % label),
                       cwd=workdir)


RECAP_RE = re.compile(r'^localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', re.M)


class PlaybookResult(object):
    def __init__(self, rc, output):
        self.rc = rc
        self.output = output
        match = RECAP_RE.search(output)
        self.recap = dict(zip(('ok', 'changed', 'unreachable', 'failed'),
                              (int(g) for g in match.groups()))) if match else None

    @property
    def ok(self):
        return self.rc == 0 and self.recap is not None and self.recap['failed'] == 0 \
            and self.recap['unreachable'] == 0

    def failure_messages(self):
        """The msg of every failed task (callback result format json: the
        result follows "FAILED! =>" on one line, or on several)."""
        msgs = []
        lines = self.output.splitlines()
        for index, line in enumerate(lines):
            if not line.startswith('fatal: [localhost]: FAILED! => '):
                continue
            text = line.split(' => ', 1)[1]
            for more in range(200):
                try:
                    msgs.append(json.loads(text).get('msg', text))
                    break
                except ValueError:
                    if index + 1 + more >= len(lines):
                        msgs.append(text)
                        break
                    text += '\n' + lines[index + 1 + more]
        return msgs

    def tail(self, n=4000):
        return self.output[-n:]


def run_playbook(playbook, workdir, label, timeout=300):
    tree = start_playbook(playbook, workdir, label)
    try:
        rc = tree.wait(timeout)
    except subprocess.TimeoutExpired:
        tree.kill()
        raise AssertionError('playbook %s did not finish within %ss:\n%s' % (label, timeout, tree.output()[-3000:]))
    finally:
        tree.cleanup()
    return PlaybookResult(rc, tree.output())


# ------------------------------------------------------------------ mounts
def require_root(what):
    if os.geteuid() != 0:
        pytest.fail('%s needs root (mounts)' % what, pytrace=False)


class Mount(object):
    def __init__(self, kind, mount_point, image=None, options=None):
        self.kind = kind
        self.mount_point = mount_point
        self.image = image
        self.options = options

    @property
    def path(self):
        return os.path.realpath(self.mount_point)

    def mount(self):
        if self.kind == 'tmpfs':
            argv = ['mount', '-t', 'tmpfs', '-o', self.options or 'size=16m', 'tmpfs', self.mount_point]
        else:
            argv = ['mount', '-t', self.kind, '-o', 'loop' + (',' + self.options if self.options else ''),
                    self.image, self.mount_point]
        res = run(argv)
        if res.returncode != 0:
            pytest.fail('cannot mount %s on %s: %s' % (self.kind, self.mount_point, res.stdout), pytrace=False)

    def umount(self):
        if not is_mounted(self.mount_point):
            return
        for _attempt in range(20):
            if run(['umount', self.mount_point]).returncode == 0 or not is_mounted(self.mount_point):
                return
            time.sleep(0.1)
        run(['umount', '-l', self.mount_point])
        for _attempt in range(50):
            if not is_mounted(self.mount_point):
                return
            time.sleep(0.1)

    def shutdown(self):
        """A power cut: the filesystem stops writing at once, without
        flushing its log or any dirty data (xfs_io shutdown without -f)."""
        run(['xfs_io', '-x', '-c', 'shutdown', self.mount_point], check=True)

    def sync(self):
        """Flush this filesystem only (syncfs), not every one of the host."""
        run(['sync', '-f', self.mount_point], check=True)

    def remount(self):
        self.umount()
        assert not is_mounted(self.mount_point), 'cannot unmount %s' % self.mount_point
        self.mount()


def is_mounted(mount_point):
    """From /proc/self/mounts (os.path.ismount stats the mount point, which
    fails with EIO on a shut-down filesystem)."""
    target = os.path.realpath(mount_point)
    with open('/proc/self/mounts') as handle:
        for line in handle:
            fields = line.split()
            if len(fields) > 1 and fields[1].encode('ascii', 'replace').decode('unicode_escape') == target:
                return True
    return False


def _detach_loops(image):
    res = run(['losetup', '-j', image])
    for line in res.stdout.splitlines():
        device = line.split(':', 1)[0].strip()
        if device.startswith('/dev/loop'):
            run(['losetup', '-d', device])


@contextlib.contextmanager
def filesystem(kind, size_mib, options=None):
    """A filesystem of its own: 'xfs' or 'ext4' on a loop-mounted sparse
    image, or 'tmpfs' of size_mib. Always unmounted and removed afterwards
    (immutable flags are cleared first)."""
    require_root('a %s mount' % kind)
    work = tempfile.mkdtemp(prefix='blockyard-faults-%s-' % kind, dir=memory_base())
    mount_point = os.path.join(work, 'mnt')
    os.mkdir(mount_point)
    image = None
    mnt = None
    try:
        if kind == 'tmpfs':
            mnt = Mount('tmpfs', mount_point, options='size=%dm,mode=0755' % size_mib)
        else:
            image = os.path.join(work, '%s.img' % kind)
            with open(image, 'wb') as handle:
                handle.truncate(size_mib * sc.MIB)
            mkfs = {'xfs': ['mkfs.xfs', '-q', '-f', '-m', 'reflink=1', image],
                    'ext4': ['mkfs.ext4', '-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', image]}[kind]
            res = run(mkfs)
            if res.returncode != 0:
                pytest.fail('%s failed: %s' % (' '.join(mkfs), res.stdout), pytrace=False)
            mnt = Mount(kind, mount_point, image)
        mnt.mount()
        yield mnt
    finally:
        if mnt is not None and is_mounted(mount_point):
            unimmutable(mount_point)
            mnt.umount()
        if image:
            _detach_loops(image)
        if not is_mounted(mount_point):
            shutil.rmtree(work, ignore_errors=True)


def fill(directory, leave_bytes, name='.filler'):
    """Fill the filesystem of directory with a filler file so that about
    leave_bytes stay free. Returns the filler's path."""
    path = os.path.join(directory, name)
    if os.path.exists(path):
        os.unlink(path)
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    size = max(0, free - leave_bytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        if size:
            os.posix_fallocate(fd, 0, size)
        # the filler's own metadata may take a little more: top up to exact
        for _round in range(8):
            st = os.statvfs(directory)
            free = st.f_bavail * st.f_frsize
            if free <= leave_bytes:
                break
            try:
                os.posix_fallocate(fd, size, free - leave_bytes)
            except OSError:
                break
            size += free - leave_bytes
    finally:
        os.close(fd)
    return path


# ------------------------------------------------------------------ scenarios
def build(directory, vol='V', snaps=0, base_fmt='raw', size='4M', provisioning='thin', writes_after=True,
          timeline=None):
    """vol with snapshots s1..s<snaps>, a pattern written before each and
    (writes_after) after the last. Returns the scenario context."""
    timeline = timeline or sc.Timeline()
    sc.volume(directory, vol, size=size, format=base_fmt, provisioning=provisioning)
    timeline.write(*sc.active_view(directory, vol, base_fmt))
    points = []
    for i in range(1, snaps + 1):
        sc.snapshot(directory, vol, 's%d' % i)
        points.append(('s%d' % i, timeline.now))
        if writes_after or i < snaps:
            timeline.write(*sc.active_view(directory, vol, base_fmt))
    return {'timeline': timeline, 'points': points, 'base_fmt': base_fmt, 'vol': vol, 'size': size}


def make_image(path, timeline, size=4 * sc.MIB, fmt='raw'):
    """An image file outside the volume directory holding timeline's writes."""
    if fmt == 'raw':
        with open(path, 'wb') as handle:
            handle.truncate(size)
    else:
        run(['qemu-img', 'create', '-q', '-f', fmt, path, str(size)], check=True)
    timeline.write(path, fmt)
    timeline.write(path, fmt)
    return path


def info_problems(directory, vol):
    """The .info (if any) is whole, in Cinder's exact format, and names only
    existing regular files: what must hold at every moment (also right after
    a kill or a power cut)."""
    path = sc.info_path(directory, vol)
    if not os.path.exists(path):
        return []
    with open(path, 'rb') as handle:
        raw = handle.read()
    try:
        info = json.loads(raw.decode('utf-8'))
    except ValueError as exc:
        return ['.info of %s is not JSON (%s): %r' % (vol, exc, raw)]
    if not isinstance(info, dict) or 'active' not in info:
        return ['.info of %s is not a map with "active": %r' % (vol, raw)]
    problems = []
    if raw != sc.cinder_info(info):
        problems.append(".info of %s is not in Cinder's exact format: %r" % (vol, raw))
    for key, value in sorted(info.items()):
        if not isinstance(value, str) or not layout.chain_pattern(vol).fullmatch(value):
            problems.append('.info of %s maps %s to %r, not a file of the volume' % (vol, key, value))
        elif not os.path.isfile(os.path.join(directory, value)):
            problems.append('.info of %s maps %s to %s, which is missing' % (vol, key, value))
    return problems


def strays(directory, volumes_present):
    """Entries of directory that belong to none of the volumes present, or
    are temporaries/journals of one: [] when the directory is clean."""
    allowed = set()
    for vol in volumes_present:
        base = sc.base_file(vol)
        allowed |= set([base, base + '.meta', base + '.lock', base + '.info'])
        info = sc.read_info(directory, vol) or {}
        allowed |= set(info.values())
    return sorted(e for e in os.listdir(directory) if e not in allowed and not e.startswith('.filler'))


def assert_clean(directory, volumes_present):
    left = strays(directory, volumes_present)
    assert not left, 'stray files in %s: %s' % (directory, left)


def copy_problems(directory, dest, timeline, point, fmt='raw', size=sc.VOL_SIZE):
    """dest is a standalone volume of fmt and size holding timeline's point
    (zeros past the point's data)."""
    problems = []
    files = sc.volume_files(directory, dest)
    want = sorted(['volume-%s' % dest, 'volume-%s.lock' % dest, 'volume-%s.meta' % dest])
    if files != want:
        problems.append('files of %s: %s, expected %s' % (dest, files, want))
    meta = sc.read_json(os.path.join(directory, 'volume-%s.meta' % dest))
    if (meta.get('format'), meta.get('size_bytes')) != (fmt, size):
        problems.append('.meta of %s: %s, expected format %s size %d' % (dest, meta, fmt, size))
    path = os.path.join(directory, 'volume-%s' % dest)
    from ansible_collections.blockyard.storage.plugins.module_utils import qcow2
    if fmt == 'qcow2':
        header = qcow2.read_header(path)
        if header.size != size or header.backing_file:
            problems.append('%s: qcow2 of %d bytes backed by %r' % (dest, header.size, header.backing_file))
    elif os.path.getsize(path) != size:
        problems.append('%s is %d bytes, expected %d' % (dest, os.path.getsize(path), size))
    expectations = timeline.expectations(point)
    if size > sc.VOL_SIZE:
        expectations.append((0, sc.VOL_SIZE, size - sc.VOL_SIZE))
    problems += ['copy %s: %s' % (dest, p) for p in sc.pattern_problems(path, fmt, expectations)]
    return problems


def chain_problems(directory, ctx, remaining, active_point=None, info_expected=None):
    """The volume of ctx holds exactly the snapshots `remaining` (oldest
    first) with their points in time, and the live data (check_volume_state)."""
    points = [p for p in ctx['points'] if p[0] in remaining]
    if [p[0] for p in points] != list(remaining):
        return ['snapshots %s are not all known to the scenario' % (remaining,)]
    try:
        sc.check_volume_state(directory, ctx['vol'], ctx['timeline'], points, ctx['base_fmt'],
                              info_expected=bool(ctx['points']) if info_expected is None else info_expected,
                              active_point=active_point)
    except AssertionError as exc:
        return ['volume %s: %s' % (ctx['vol'], exc)]
    return []


def storage_error_problems(exc, names=(), what='the operation'):
    """exc must be a StorageError whose message is clear: no "Unexpected
    error", and it names one of `names` (file names or paths) when given."""
    from ansible_collections.blockyard.storage.plugins.module_utils.errors import StorageError
    if not isinstance(exc, StorageError):
        return ['%s raised %s (not a StorageError, i.e. "Unexpected error ... This is a bug" in a module): %s'
                % (what, type(exc).__name__, exc)]
    msg = getattr(exc, 'msg', str(exc))
    problems = []
    if UNEXPECTED in msg or 'This is a bug' in msg:
        problems.append('%s: message reads like a bug: %s' % (what, msg))
    if names and not any(n in msg for n in names):
        problems.append('%s: the message names none of %s: %s' % (what, list(names), msg))
    return problems


def child_call(func_name, params, lock_timeout=None, hold_after_lock=0.0, go=None, timeout=120):
    """Start volumes.<func_name>(params, False) in a child Python (not
    waited for). lock_timeout replaces the core's default lock wait;
    hold_after_lock sleeps after every lock taken (widens the window in which
    two processes hold one lock each); go: a path to wait for before the call
    (a start barrier)."""
    code = CHILD_CALL
    argv = [sys.executable, '-c', code, func_name, json.dumps(params), json.dumps(lock_timeout),
            json.dumps(hold_after_lock), go or '']
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                            env=sc.child_env())


CHILD_CALL = r'''
import contextlib, json, os, sys, time, traceback
from ansible_collections.blockyard.storage.plugins.module_utils import locks, volumes
from ansible_collections.blockyard.storage.plugins.module_utils.errors import StorageError
func, params, lock_timeout, hold, go = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), \
    json.loads(sys.argv[4]), sys.argv[5]
if lock_timeout is not None:
    default = locks.DEFAULT_TIMEOUT
    locks.DEFAULT_TIMEOUT = lock_timeout
    for obj in list(vars(locks).values()):
        defaults = getattr(obj, '__defaults__', None)
        if defaults:
            obj.__defaults__ = tuple(lock_timeout if d == default and not isinstance(d, bool) else d
                                     for d in defaults)
        kwdefaults = getattr(obj, '__kwdefaults__', None)
        if kwdefaults:
            for k, v in list(kwdefaults.items()):
                if v == default and not isinstance(v, bool):
                    kwdefaults[k] = lock_timeout
if hold:
    original = locks.file_lock

    @contextlib.contextmanager
    def slow_lock(*args, **kwargs):
        with original(*args, **kwargs):
            time.sleep(hold)
            yield
    locks.file_lock = slow_lock
if go:
    while not os.path.exists(go):
        time.sleep(0.002)
start = time.monotonic()
try:
    changed, result, diff = getattr(volumes, func)(params, False)
except StorageError as exc:
    print(json.dumps({'error': type(exc).__name__, 'msg': exc.msg, 'seconds': time.monotonic() - start}))
    sys.exit(1)
except Exception as exc:
    print(json.dumps({'error': type(exc).__name__, 'msg': 'Unexpected error: %s' % exc, 'bug': True,
                      'trace': traceback.format_exc(), 'seconds': time.monotonic() - start}))
    sys.exit(2)
print(json.dumps({'changed': changed, 'seconds': time.monotonic() - start}))
'''


# ------------------------------------------------------------------ verifications of volume V
def setup_chain(snaps, size='4M', provisioning='thin'):
    def setup(directory, scratch):
        return build(directory, V, snaps=snaps, size=size, provisioning=provisioning)
    return setup


def verify_chain(remaining, active_point=None, size=None, thick=False):
    """V holds exactly the snapshots `remaining` of the scenario (oldest
    first), every point in time and the live data (active_point: ctx ->
    point, default the latest write); size: its recorded and virtual size
    (zeros past the first 4 MiB; thick: fully allocated)."""
    def verify(directory, ctx):
        problems = chain_problems(directory, ctx, remaining, active_point=active_point(ctx) if active_point
                                  else None)
        if size and not problems:
            desc = sc.info_of(directory, V)
            virtual = desc['details']['virtual_bytes']
            if desc['size_bytes'] != size or virtual != size:
                problems.append('V is %s/%s bytes, expected %d' % (desc['size_bytes'], virtual, size))
            if thick and os.stat(os.path.join(directory, 'volume-V')).st_blocks * 512 < size:
                problems.append('the extended thick volume is not fully allocated')
            path, fmt = sc.active_view(directory, V, ctx['base_fmt'])
            problems += sc.pattern_problems(path, fmt, [(0, sc.VOL_SIZE, size - sc.VOL_SIZE)])
        return problems
    return verify


def verify_snapshot_created(directory, ctx):
    ctx = dict(ctx, points=ctx['points'] + [('s3', ctx['timeline'].now)])
    return verify_chain(['s1', 's2', 's3'])(directory, ctx)


def verify_copy(dest, point_of, fmt='raw', size=sc.VOL_SIZE, source=True):
    def verify(directory, ctx):
        problems = copy_problems(directory, dest, ctx['timeline'], point_of(ctx), fmt, size)
        if source:
            problems += verify_chain([p[0] for p in ctx['points']])(directory, ctx)
        return problems
    return verify


def setup_image(directory, scratch, base_fmt='qcow2', per_directory=False):
    """An 8 MiB image with a pattern in scratch, for a copy from an image."""
    timeline = sc.Timeline()
    name = 'image-%s.raw' % os.path.basename(directory) if per_directory else 'image.raw'
    path = os.path.join(scratch, name)
    if os.path.exists(path):
        os.unlink(path)
    make_image(path, timeline, size=8 * sc.MIB)
    return {'timeline': timeline, 'image': path, 'points': [], 'vol': 'I', 'base_fmt': base_fmt}
