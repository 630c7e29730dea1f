# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/fileio.py on real files (tmp_path, and a
small tmpfs mounted for the out-of-space cases when running as root)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import json
import os
import stat
import subprocess

import pytest

from ansible_collections.blockyard.storage.plugins.module_utils import fileio
from ansible_collections.blockyard.storage.plugins.module_utils.errors import Conflict, StorageError

MiB = 1024 * 1024


def listing(directory):
    """Names, sizes, inodes and mtimes of a directory's entries."""
    result = {}
    for name in sorted(os.listdir(str(directory))):
        st = os.lstat(os.path.join(str(directory), name))
        result[name] = (st.st_size, st.st_ino, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
    return result


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs (root only)."""
    if os.geteuid() != 0:
        pytest.skip('mounting a tmpfs needs root')
    mnt = tmp_path / 'small'
    mnt.mkdir()
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'blockyard-unit', str(mnt)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        pytest.skip('cannot mount a tmpfs: %s' % proc.stderr.decode())
    try:
        yield mnt
    finally:
        # lazily when busy (a file left open by a failing test): never leave it mounted
        if subprocess.run(['umount', str(mnt)], check=False).returncode != 0:
            subprocess.run(['umount', '-l', str(mnt)], check=True)


# --------------------------------------------------------------------------- atomic_write

def test_atomic_write_creates_the_file_with_mode(tmp_path):
    path = tmp_path / 'f'
    fileio.atomic_write(str(path), 'héllo', mode=0o640)
    assert path.read_bytes() == 'héllo'.encode('utf-8')
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(str(tmp_path)) == ['f']


def test_atomic_write_mode_ignores_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        fileio.atomic_write(str(tmp_path / 'f'), b'x', mode=0o644)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / 'f').stat().st_mode) == 0o644


def test_atomic_write_replaces_by_rename(tmp_path):
    path = tmp_path / 'f'
    path.write_bytes(b'old content')
    old_inode = path.stat().st_ino
    os.chmod(str(path), 0o640)
    old_mode = 0o640
    with open(str(path), 'rb') as reader:
        fileio.atomic_write(str(path), b'new', mode=0o600)
        # a reader of the old file still sees all of the old content: the new
        # one was renamed over it, never written into it
        assert reader.read() == b'old content'
    assert path.read_bytes() == b'new'
    assert path.stat().st_ino != old_inode
    # a rewrite keeps the mode of the file it replaces; mode is for new files
    assert stat.S_IMODE(path.stat().st_mode) == old_mode
    fileio.atomic_write(str(tmp_path / 'new'), b'x', mode=0o600)
    assert stat.S_IMODE((tmp_path / 'new').stat().st_mode) == 0o600


def test_atomic_write_keeps_owner_group_and_mode_of_the_replaced_file(tmp_path):
    """cinder-volume writes .info as its own user: a rewrite by root must
    leave it writable for that user."""
    path = tmp_path / 'volume-x.info'
    path.write_bytes(b'{}')
    os.chown(str(path), 65534, 65534)
    os.chmod(str(path), 0o666)
    fileio.atomic_write(str(path), b'{"active": "volume-x"}')
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o666)
    # a new file takes those of the file it is like
    like = tmp_path / 'volume-y'
    like.write_bytes(b'')
    os.chown(str(like), 65534, 0)
    os.chmod(str(like), 0o640)
    fileio.atomic_write(str(tmp_path / 'volume-y.info'), b'{}', like=str(like))
    st = (tmp_path / 'volume-y.info').stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 0, 0o640)


def test_atomic_write_refuses_to_replace_a_link_or_a_hard_linked_file(tmp_path):
    outside = tmp_path / 'outside'
    outside.write_bytes(b'keep')
    link = tmp_path / 'volume-x.info'
    link.symlink_to(outside)
    with pytest.raises(StorageError) as err:
        fileio.atomic_write(str(link), b'{}')
    assert 'symbolic link' in err.value.msg
    link.unlink()
    os.link(str(outside), str(link))
    with pytest.raises(StorageError) as err:
        fileio.atomic_write(str(link), b'{}')
    assert 'hard links' in err.value.msg
    assert outside.read_bytes() == b'keep'
    assert sorted(os.listdir(str(tmp_path))) == ['outside', 'volume-x.info']


def test_atomic_write_large_data(tmp_path):
    data = os.urandom(3 * MiB + 17)
    fileio.atomic_write(str(tmp_path / 'big'), data)
    assert (tmp_path / 'big').read_bytes() == data


def test_atomic_write_leaves_no_temp_file_when_the_rename_fails(tmp_path):
    target = tmp_path / 'adir'
    target.mkdir()
    (target / 'keep').write_bytes(b'k')
    before = listing(tmp_path)
    with pytest.raises(StorageError):
        fileio.atomic_write(str(target), b'data')
    assert listing(tmp_path) == before
    assert (target / 'keep').read_bytes() == b'k'


def test_atomic_write_leaves_no_temp_file_when_the_write_fails(tmp_path):
    path = tmp_path / 'f'
    path.write_bytes(b'original')
    before = listing(tmp_path)
    with pytest.raises(TypeError):
        fileio.atomic_write(str(path), object())
    assert listing(tmp_path) == before
    assert path.read_bytes() == b'original'


def test_atomic_write_out_of_space_keeps_the_old_content(small_tmpfs):
    path = small_tmpfs / 'f'
    fileio.atomic_write(str(path), b'small')
    with pytest.raises(StorageError) as err:
        fileio.atomic_write(str(path), b'x' * (2 * MiB))
    assert err.value.details['errno'] == errno.ENOSPC
    assert 'Free space' in err.value.msg and 'This is a bug' not in err.value.msg
    assert os.listdir(str(small_tmpfs)) == ['f']
    assert path.read_bytes() == b'small'


# --------------------------------------------------------------------------- JSON

def test_dump_json_is_cinders_format():
    data = {'b': 'volume-x.bbbb', 'active': 'volume-x.bbbb', 'aaaa': 'volume-x.aaaa'}
    assert fileio.dump_json(data) == ('{\n "aaaa": "volume-x.aaaa",\n "active": "volume-x.bbbb",\n'
                                      ' "b": "volume-x.bbbb"\n}')
    assert fileio.dump_json(data) == json.dumps(data, indent=1, sort_keys=True)


def test_write_json_indent_1_sorted_keys_and_a_newline(tmp_path):
    path = tmp_path / 'volume-x.meta'
    data = {'size_bytes': 1024, 'format': 'raw', 'nested': {'z': [1, 2], 'a': None}}
    fileio.write_json(str(path), data)
    assert path.read_text() == ('{\n "format": "raw",\n "nested": {\n  "a": null,\n  "z": [\n   1,\n   2\n  ]\n'
                                ' },\n "size_bytes": 1024\n}\n')
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert fileio.read_json(str(path), 'Record') == data


def test_read_json_absent_is_none(tmp_path):
    assert fileio.read_json(str(tmp_path / 'missing'), 'Snapshot map') is None


@pytest.mark.parametrize('content, fragment', [
    (b'{not json', 'is not valid JSON'),
    (b'', 'is not valid JSON'),
    (b'{"a": 1', 'is not valid JSON'),
    (b'\xff\xfe{}', 'is not valid JSON'),
    (b'[1, 2]', 'not an object'),
    (b'"active"', 'not an object'),
    (b'null', 'not an object'),
    (b'42', 'not an object'),
])
def test_read_json_refuses_what_is_not_an_object(tmp_path, content, fragment):
    path = tmp_path / 'volume-x.info'
    path.write_bytes(content)
    with pytest.raises(StorageError) as err:
        fileio.read_json(str(path), 'Snapshot map')
    assert fragment in err.value.msg
    assert str(path) in err.value.msg
    assert err.value.msg.startswith('Snapshot map')
    assert err.value.details['path'] == str(path)


def test_read_json_refuses_huge_files(tmp_path):
    path = tmp_path / 'volume-x.info'
    path.write_bytes(b'{"a": "' + b'x' * MiB + b'"}')
    with pytest.raises(StorageError) as err:
        fileio.read_json(str(path), 'Snapshot map')
    assert 'larger than 1 MiB' in err.value.msg


def test_read_json_accepts_exactly_1_mib(tmp_path):
    path = tmp_path / 'volume-x.info'
    head, tail = b'{"a": "', b'"}'
    path.write_bytes(head + b'x' * (MiB - len(head) - len(tail)) + tail)
    assert os.path.getsize(str(path)) == MiB
    assert len(fileio.read_json(str(path), 'Snapshot map')['a']) == MiB - 9


def test_read_json_of_a_directory_is_an_error(tmp_path):
    with pytest.raises(StorageError) as err:
        fileio.read_json(str(tmp_path), 'Snapshot map')
    assert 'is a directory' in err.value.msg


def test_read_json_of_a_fifo_does_not_hang(tmp_path):
    fifo = tmp_path / 'volume-x.meta'
    os.mkfifo(str(fifo))
    with pytest.raises(StorageError) as err:
        fileio.read_json(str(fifo), 'Volume record')
    assert 'FIFO' in err.value.msg


def test_read_json_does_not_follow_links(tmp_path):
    target = tmp_path / 'target'
    target.write_bytes(b'{"a": 1}')
    (tmp_path / 'link').symlink_to(target)
    with pytest.raises(StorageError) as err:
        fileio.read_json(str(tmp_path / 'link'), 'Snapshot map')
    assert 'symbolic link' in err.value.msg


# --------------------------------------------------------------------------- sparse / thick

def test_create_sparse(tmp_path):
    path = tmp_path / 'volume-x'
    fileio.create_sparse(str(path), 64 * MiB)
    st = path.stat()
    assert st.st_size == 64 * MiB
    assert st.st_blocks * 512 < MiB
    assert stat.S_IMODE(st.st_mode) & ~0o660 == 0   # mode 0660 minus the umask (the backend sets it after)
    with open(str(path), 'rb') as handle:
        assert handle.read(MiB) == bytes(MiB)


def test_create_sparse_never_replaces_a_file(tmp_path):
    path = tmp_path / 'volume-x'
    path.write_bytes(b'data')
    with pytest.raises(Conflict) as err:
        fileio.create_sparse(str(path), MiB)
    assert 'already exists' in err.value.msg
    assert path.read_bytes() == b'data'


def _assert_thick(path, size, mode=0o660):
    st = os.stat(path)
    assert st.st_size == size
    assert st.st_blocks * 512 >= size
    assert stat.S_IMODE(st.st_mode) & ~mode == 0    # mode minus the umask (the backend sets it after)
    with open(path, 'rb') as handle:
        while True:
            chunk = handle.read(MiB)
            if not chunk:
                break
            assert chunk == bytes(len(chunk))


def test_create_thick_is_allocated_and_reads_zeros(tmp_path):
    path = str(tmp_path / 'volume-x')
    fileio.create_thick(path, 8 * MiB, mode=0o600)
    _assert_thick(path, 8 * MiB, 0o600)


def test_create_thick_with_written_zeros(tmp_path, monkeypatch):
    # the path taken on filesystems where fallocate is not known to give zeros
    monkeypatch.setattr(fileio, 'ZERO_FALLOCATE_FS', frozenset())
    path = str(tmp_path / 'volume-x')
    size = fileio.ZERO_BLOCK + 3 * 512     # a partial last block
    fileio.create_thick(path, size)
    _assert_thick(path, size)


def test_create_thick_never_replaces_a_file(tmp_path):
    path = tmp_path / 'volume-x'
    path.write_bytes(b'data')
    with pytest.raises(Conflict):
        fileio.create_thick(str(path), MiB)
    assert path.read_bytes() == b'data'


@pytest.mark.parametrize('fallocate', [True, False], ids=['fallocate', 'written-zeros'])
def test_create_thick_out_of_space_leaves_no_file(small_tmpfs, monkeypatch, fallocate):
    if not fallocate:
        monkeypatch.setattr(fileio, 'ZERO_FALLOCATE_FS', frozenset())
    path = str(small_tmpfs / 'volume-x')
    with pytest.raises(StorageError) as err:
        fileio.create_thick(path, 4 * MiB)
    assert os.listdir(str(small_tmpfs)) == []
    assert err.value.details['errno'] == errno.ENOSPC
    assert path in err.value.msg
    assert 'No space left on device' in err.value.msg
    assert 'partial file was removed' in err.value.msg
    assert 'thin provisioning' in err.value.msg
    assert os.statvfs(str(small_tmpfs)).f_bfree == os.statvfs(str(small_tmpfs)).f_blocks


# --------------------------------------------------------------------------- fs_type, misc

def test_fs_type_of_a_tmpfs_and_below_it(small_tmpfs):
    assert fileio.fs_type(str(small_tmpfs)) == 'tmpfs'
    (small_tmpfs / 'sub').mkdir()
    assert fileio.fs_type(str(small_tmpfs / 'sub')) == 'tmpfs'
    assert fileio.fs_type(str(small_tmpfs / 'not-yet' / 'file')) == 'tmpfs'
    # the longest mount point wins, not its parent's type
    assert fileio.fs_type(str(small_tmpfs.parent)) == fileio.fs_type(str(small_tmpfs.parent.parent))


def test_fs_type_of_known_mounts():
    assert fileio.fs_type('/proc/self') == 'proc'
    assert fileio.fs_type('/') is not None


def test_unlink(tmp_path):
    path = tmp_path / 'f'
    path.write_bytes(b'')
    assert fileio.unlink(str(path)) is True
    assert fileio.unlink(str(path)) is False
    with pytest.raises(StorageError) as err:
        fileio.unlink(str(tmp_path))      # a directory is not silently ignored
    assert 'directory' in err.value.msg


def test_apply_ownership(tmp_path):
    if os.geteuid() != 0:
        pytest.skip('chown needs root')
    path = tmp_path / 'f'
    path.write_bytes(b'')
    os.chmod(str(path), 0o644)
    uid, gid = fileio.resolve_owner('nobody', '65534')
    assert fileio.apply_ownership(str(path), uid, gid, 0o640) is True
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o640)
    assert fileio.apply_ownership(str(path), *fileio.resolve_owner('65534', None), mode=0o640) is False
    assert fileio.apply_ownership(str(path)) is False
    with pytest.raises(StorageError) as err:
        fileio.resolve_owner('no-such-user-blockyard', None)
    assert 'no-such-user-blockyard' in err.value.msg
    with pytest.raises(StorageError) as err:
        fileio.resolve_owner('4294967296', None)
    assert 'out of range' in err.value.msg
    link = tmp_path / 'link'
    link.symlink_to(path)
    with pytest.raises(StorageError):
        fileio.apply_ownership(str(link), 0, 0, 0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_reflink_falls_back_without_leaving_a_file(small_tmpfs):
    src = small_tmpfs / 'src'
    src.write_bytes(b'abc')
    assert fileio.reflink(str(src), str(small_tmpfs / 'dst')) is False   # tmpfs cannot reflink
    assert sorted(os.listdir(str(small_tmpfs))) == ['src']
