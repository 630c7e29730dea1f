# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/qcow2.py on real qemu-img images.

Good images are made by qemu-img and compared with `qemu-img info`; malicious
ones are real images whose header bytes are patched here.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import shutil
import struct
import subprocess

import pytest

from ansible_collections.blockyard.storage.plugins.module_utils import qcow2
from ansible_collections.blockyard.storage.plugins.module_utils.errors import UnsafeImage

pytestmark = pytest.mark.skipif(shutil.which('qemu-img') is None, reason='qemu-img is not installed')

VOL = 'volume-myvol'
PATTERN = re.compile(r'^%s(\.[A-Za-z0-9][A-Za-z0-9._-]*)?$' % re.escape(VOL))
MiB = 1024 * 1024


# --------------------------------------------------------------------------- helpers

def qemu_img(*args):
    return subprocess.run(('qemu-img',) + tuple(str(a) for a in args), check=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE).stdout


def create(path, size='1M', fmt='qcow2', backing=None, backing_fmt=None, opts=None, unsafe=False):
    args = ['create', '-q', '-f', fmt]
    if backing is not None:
        args += ['-b', backing, '-F', backing_fmt] + (['-u'] if unsafe else [])
    if opts:
        args += ['-o', opts]
    args.append(path)
    if size is not None:
        args.append(size)
    qemu_img(*args)
    return path


def qemu_info(path, chain=False):
    args = ['info', '--output=json', '-U']
    if chain:
        args.append('--backing-chain')
    return json.loads(qemu_img(*(args + [path])))


def make_chain(directory, depth, base_fmt='raw', size='1M'):
    """depth files: base volume-myvol (base_fmt) and depth-1 qcow2 overlays. Returns the top path."""
    top = create(directory / VOL, size=size, fmt=base_fmt)
    fmt = base_fmt
    for i in range(1, depth):
        name = '%s.s%d' % (VOL, i)
        # -u with an explicit size: qemu-img does not open the (growing) chain each time
        create(directory / name, size=size, backing=top.name, backing_fmt=fmt, unsafe=True)
        top, fmt = directory / name, 'qcow2'
    return top


def patch(path, offset, fmt, *values):
    with open(str(path), 'r+b') as f:
        f.seek(offset)
        f.write(struct.pack(fmt, *values))


def rewrite_tail(path, backing=None, backing_fmt=b'raw', exts=None):
    """Rewrite the extension area and backing name of a real image.

    backing/backing_fmt are bytes; backing_fmt None omits the format
    extension; exts adds (type, data) extensions first.
    """
    with open(str(path), 'r+b') as f:
        head = f.read(104)
        version = struct.unpack_from('>I', head, 4)[0]
        header_length = 72 if version == 2 else struct.unpack_from('>I', head, 100)[0]
        exts = list(exts or [])
        if backing is not None and backing_fmt is not None:
            exts.append((qcow2.EXT_BACKING_FORMAT, backing_fmt))
        tail = b''
        for ext_type, data in exts:
            tail += struct.pack('>II', ext_type, len(data)) + data + b'\0' * (-len(data) % 8)
        tail += b'\0' * 8
        f.seek(header_length)
        f.write(tail + (backing or b''))
        f.seek(8)
        if backing is None:
            f.write(struct.pack('>QI', 0, 0))
        else:
            f.write(struct.pack('>QI', header_length + len(tail), len(backing)))


def assert_unsafe(excinfo, path, *words):
    msg = str(excinfo.value)
    assert str(path) in msg, msg
    for w in words:
        assert w in msg, msg
    assert isinstance(excinfo.value.details, dict)


def allow_any(name):
    return True


# --------------------------------------------------------------------------- good images

GOOD = [
    ('v2', dict(opts='compat=0.10', size='1M')),
    ('v3', dict(size='1G')),
    ('v3-prealloc-metadata', dict(opts='preallocation=metadata', size='10M')),
    ('v3-odd-size', dict(size='1000448')),
    ('v3-cluster-512', dict(opts='cluster_size=512', size='1M')),
    ('v3-cluster-2M', dict(opts='cluster_size=2M', size='3M')),
    ('v3-zstd-extl2-lazy-refcount64', dict(opts='compression_type=zstd,extended_l2=on,lazy_refcounts=on,refcount_bits=64')),
    ('v2-backing-raw', dict(opts='compat=0.10', backing_fmt='raw')),
    ('v3-backing-raw', dict(backing_fmt='raw', size='2M')),
    ('v3-backing-qcow2', dict(backing_fmt='qcow2')),
]


@pytest.mark.parametrize('kwargs', [g[1] for g in GOOD], ids=[g[0] for g in GOOD])
def test_good_image_matches_qemu_info(tmp_path, kwargs):
    kwargs = dict(kwargs)
    backing_fmt = kwargs.pop('backing_fmt', None)
    if backing_fmt:
        create(tmp_path / VOL, fmt=backing_fmt, size='1M')
        kwargs.update(backing=VOL, backing_fmt=backing_fmt)
    path = create(tmp_path / (VOL + '.snap'), **kwargs)
    info = qemu_info(path)

    assert qcow2.is_qcow2(str(path))
    hdr = qcow2.read_header(str(path))
    assert hdr.size == info['virtual-size']
    assert 1 << hdr.cluster_bits == info['cluster-size']
    assert hdr.version == (2 if info['format-specific']['data']['compat'] == '0.10' else 3)
    assert hdr.header_length == (72 if hdr.version == 2 else 112)
    assert hdr.backing_file == info.get('backing-filename')
    assert hdr.backing_format == info.get('backing-filename-format')
    assert hdr.crypt_method == 0 and hdr.data_file is None
    assert all(isinstance(e, tuple) and len(e) == 2 for e in hdr.extensions)

    checked = qcow2.check_image(str(path), 'qcow2', max_virtual_size=hdr.size,
                                allow_backing=lambda n: PATTERN.fullmatch(n) is not None)
    assert checked.size == hdr.size and checked.backing_file == hdr.backing_file
    chain = qcow2.walk_chain(str(path), PATTERN, max_virtual_size=hdr.size)
    assert [e.file for e in chain] == [path.name] + ([VOL] if backing_fmt else [])


def test_header_beyond_first_64k(tmp_path):
    """2 MiB clusters: extensions and backing name past the first 64 KiB read."""
    create(tmp_path / VOL, fmt='raw')
    path = create(tmp_path / (VOL + '.snap'), opts='cluster_size=2M')
    rewrite_tail(path, backing=VOL.encode(), backing_fmt=b'raw', exts=[(0x12345678, b'\x01' * 70000)])
    info = qemu_info(path)
    hdr = qcow2.check_image(str(path), 'qcow2', allow_backing=allow_any)
    assert hdr.backing_file_offset > 65536
    assert (hdr.backing_file, hdr.backing_format) == (info['backing-filename'], info['backing-filename-format'])
    assert (0x12345678, 70000) in hdr.extensions


def test_feature_bits_of_real_image(tmp_path):
    path = create(tmp_path / VOL, opts='compression_type=zstd,extended_l2=on,lazy_refcounts=on,refcount_bits=64')
    hdr = qcow2.read_header(str(path))
    assert hdr.incompatible_features == qcow2.INCOMPAT_COMPRESSION | qcow2.INCOMPAT_EXTL2
    assert hdr.compatible_features & 1  # lazy refcounts
    assert hdr.refcount_order == 6
    assert (qcow2.EXT_FEATURE_TABLE, 384) in hdr.extensions


@pytest.mark.parametrize('bit', [0, 3, 4], ids=['dirty', 'compression', 'extended-l2'])
def test_allowed_incompatible_bits(tmp_path, bit):
    path = create(tmp_path / VOL)
    patch(path, 72, '>Q', 1 << bit)
    assert qcow2.check_image(str(path), 'qcow2').incompatible_features == 1 << bit


def test_crafted_backing_matches_qemu(tmp_path):
    """The crafting helper writes headers that qemu itself reads the same way."""
    create(tmp_path / VOL, fmt='raw')
    path = create(tmp_path / (VOL + '.a'))
    rewrite_tail(path, backing=VOL.encode(), backing_fmt=b'raw')
    info = qemu_info(path)
    hdr = qcow2.check_image(str(path), 'qcow2', allow_backing=allow_any)
    assert (hdr.backing_file, hdr.backing_format) == (info['backing-filename'], info['backing-filename-format'])


def test_is_qcow2(tmp_path):
    assert qcow2.is_qcow2(str(create(tmp_path / 'q')))
    assert not qcow2.is_qcow2(str(create(tmp_path / 'r', fmt='raw')))
    (tmp_path / 'short').write_bytes(b'QF')
    assert not qcow2.is_qcow2(str(tmp_path / 'short'))


def test_raw_check(tmp_path):
    raw = create(tmp_path / VOL, fmt='raw')
    assert qcow2.check_image(str(raw), 'raw') is None
    # A guest wrote a qcow2 header into its raw volume.
    with open(str(raw), 'r+b') as f:
        f.write(qcow2.QCOW2_MAGIC + b'\0\0\0\3')
    # raw is data: the header is never looked at
    assert qcow2.check_image(str(raw), 'raw') is None


def test_encryption_real_image(tmp_path):
    path = tmp_path / VOL
    try:
        qemu_img('create', '-q', '-f', 'qcow2', '--object', 'secret,id=s0,data=x',
                 '-o', 'encrypt.format=aes,encrypt.key-secret=s0', path, '1M')
    except subprocess.CalledProcessError:
        pytest.skip('this qemu-img cannot create AES-encrypted qcow2')
    with pytest.raises(UnsafeImage) as e:
        qcow2.check_image(str(path), 'qcow2')
    assert_unsafe(e, path, 'encrypted')
    assert qcow2.check_image(str(path), 'qcow2', allow_encryption=True).crypt_method == 1


# --------------------------------------------------------------------------- malformed headers
# read_header, check_image and walk_chain must all refuse these.

def _truncate(n):
    def craft(p):
        with open(str(p), 'r+b') as f:
            f.truncate(n)
    return craft


def _field(offset, fmt, value):
    return lambda p: patch(p, offset, fmt, value)


def _backing_at(offset, size):
    return lambda p: patch(p, 8, '>QI', offset, size)


def _ext(ext_type, length):
    return lambda p: patch(p, 112, '>II', ext_type, length)


MALFORMED = [
    ('bad-magic', _field(0, '>4s', b'QFI\xfa'), 'magic'),
    ('version-1', _field(4, '>I', 1), 'version 1'),
    ('version-4', _field(4, '>I', 4), 'version 4'),
    ('truncated-10-bytes', _truncate(10), 'truncated'),
    ('truncated-in-header', _truncate(100), 'truncated'),
    ('truncated-in-extensions', _truncate(130), 'truncated'),
    ('cluster-bits-8', _field(20, '>I', 8), 'cluster_bits'),
    ('cluster-bits-22', _field(20, '>I', 22), 'cluster_bits'),
    ('header-length-96', _field(100, '>I', 96), 'header_length'),
    ('header-length-unaligned', _field(100, '>I', 108), 'header_length'),
    ('header-length-past-cluster', _field(100, '>I', 65536 + 8), 'header_length'),
    ('refcount-order-7', _field(96, '>I', 7), 'refcount_order'),
    ('backing-size-2000', _backing_at(4096, 2000), 'backing_file_size 2000'),
    ('backing-past-eof', lambda p: (_truncate(4000)(p), _backing_at(4090, 20)(p)), 'truncated'),
    ('backing-past-cluster', _backing_at(65530, 10), 'first cluster'),
    ('backing-overlaps-header', _backing_at(40, 8), 'overlaps'),
    ('backing-not-utf8', lambda p: rewrite_tail(p, backing=b'volume-myvol.\xff\xfe'), 'UTF-8'),
    ('extension-past-cluster', _ext(0x12345678, 0xfffffff0), 'runs past'),
    ('extension-past-backing-name', lambda p: (rewrite_tail(p, backing=VOL.encode()), _ext(0x12345678, 300)(p)),
     'runs past'),
    ('extension-u32-wrap', _ext(0x12345678, 0xffffffff), 'runs past'),
    ('too-many-extensions', lambda p: rewrite_tail(p, exts=[(0x12345678, b'')] * 1100), 'header extensions'),
    ('backing-format-twice', lambda p: rewrite_tail(p, backing=VOL.encode(),
                                                    exts=[(qcow2.EXT_BACKING_FORMAT, b'raw')]), 'twice'),
]


@pytest.mark.parametrize('craft,words', [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_header_refused(tmp_path, craft, words):
    create(tmp_path / VOL, fmt='raw')
    path = create(tmp_path / (VOL + '.snap'))
    craft(path)
    for call in (qcow2.read_header,
                 lambda p: qcow2.check_image(p, 'qcow2', allow_backing=allow_any),
                 lambda p: qcow2.walk_chain(p, PATTERN)):
        with pytest.raises(UnsafeImage) as e:
            call(str(path))
        assert_unsafe(e, path, words)


def test_v2_header_truncated(tmp_path):
    path = create(tmp_path / VOL, opts='compat=0.10')
    _truncate(60)(path)
    with pytest.raises(UnsafeImage) as e:
        qcow2.read_header(str(path))
    assert_unsafe(e, path, 'truncated', 'v2')


def test_extension_list_without_end_marker(tmp_path):
    """An extension list that reaches the backing name without a terminator."""
    path = create(tmp_path / (VOL + '.snap'))
    rewrite_tail(path, backing=VOL.encode())           # ext(16) + END(8) at 112, name at 136
    patch(path, 112, '>II', 0x12345678, 16)            # now the unknown ext ends exactly at 136
    with pytest.raises(UnsafeImage) as e:
        qcow2.read_header(str(path))
    assert_unsafe(e, path, 'not terminated')


def test_not_a_regular_file(tmp_path):
    os.mkfifo(str(tmp_path / 'fifo'))
    for p in (tmp_path / 'fifo', tmp_path):
        with pytest.raises(UnsafeImage) as e:
            qcow2.read_header(str(p))
        assert_unsafe(e, p, 'not a regular file')


def test_missing_top_is_oserror(tmp_path):
    with pytest.raises(OSError):
        qcow2.read_header(str(tmp_path / 'nope'))


# --------------------------------------------------------------------------- unsafe but well-formed
# read_header accepts these; check_image (even with an allow-all callable) and walk_chain refuse.

def _backing(name, fmt=b'raw'):
    return lambda p: rewrite_tail(p, backing=name, backing_fmt=fmt)


UNSAFE = [
    ('data-file-bit', _field(72, '>Q', 1 << 2), 'external data file'),
    ('data-file-extension', lambda p: rewrite_tail(p, exts=[(qcow2.EXT_DATA_FILE, b'x.raw')]), 'external data file'),
    ('unknown-bit-10', _field(72, '>Q', 1 << 10), 'unknown'),
    ('unknown-bit-5', _field(72, '>Q', 1 << 5 | 1), 'unknown'),
    ('corrupt-bit', _field(72, '>Q', 1 << 1), 'corrupt'),
    ('crypt-aes', _field(32, '>I', 1), 'encrypted'),
    ('crypt-luks', _field(32, '>I', 2), 'encrypted'),
    ('backing-etc-shadow', _backing(b'/etc/shadow'), "'/etc/shadow'"),
    ('backing-abs-in-pattern', _backing(b'/tmp/volume-myvol'), 'is a path'),
    ('backing-dotdot-x', _backing(b'../x'), "'../x'"),
    ('backing-dotdot', _backing(b'..'), 'not a file name'),
    ('backing-dot', _backing(b'.'), 'not a file name'),
    ('backing-empty', _backing(b''), 'empty'),
    ('backing-nul', _backing(b'volume-myvol\0/etc/shadow'), 'NUL'),
    ('backing-json', _backing(b'json:{"file.driver":"file","file.filename":"/etc/shadow"}'), 'protocol or json'),
    ('backing-nbd', _backing(b'nbd://host:10809/export'), 'protocol'),
    ('backing-file-proto', _backing(b'file:volume-myvol'), 'protocol'),
    ('backing-no-format', _backing(VOL.encode(), None), 'no recorded backing format'),
    ('backing-format-vmdk', _backing(VOL.encode(), b'vmdk'), "'vmdk'"),
    ('backing-format-nul', _backing(VOL.encode(), b'raw\0'), 'not raw or qcow2'),
]


@pytest.mark.parametrize('craft,words', [u[1:] for u in UNSAFE], ids=[u[0] for u in UNSAFE])
def test_unsafe_image_refused(tmp_path, craft, words):
    create(tmp_path / VOL, fmt='raw')
    path = create(tmp_path / (VOL + '.snap'))
    craft(path)
    qcow2.read_header(str(path))  # well-formed
    calls = []

    def allow(name):
        calls.append(name)
        return True

    with pytest.raises(UnsafeImage) as e:
        qcow2.check_image(str(path), 'qcow2', allow_backing=allow)
    assert_unsafe(e, path, words)
    assert calls == []  # the caller's policy never sees a structurally bad name
    with pytest.raises(UnsafeImage) as e:
        qcow2.walk_chain(str(path), PATTERN)
    assert_unsafe(e, path, words)


@pytest.mark.parametrize('allow', [None, False], ids=['none', 'false'])
def test_backing_not_allowed(tmp_path, allow):
    create(tmp_path / VOL, fmt='raw')
    path = create(tmp_path / (VOL + '.snap'), size=None, backing=VOL, backing_fmt='raw')
    with pytest.raises(UnsafeImage) as e:
        qcow2.check_image(str(path), 'qcow2', allow_backing=allow)
    assert_unsafe(e, path, 'backing file', VOL)


def test_backing_rejected_by_callable(tmp_path):
    create(tmp_path / 'volume-other', fmt='raw')
    path = create(tmp_path / (VOL + '.snap'), size=None, backing='volume-other', backing_fmt='raw')
    with pytest.raises(UnsafeImage) as e:
        qcow2.check_image(str(path), 'qcow2', allow_backing=lambda n: PATTERN.fullmatch(n) is not None)
    assert_unsafe(e, path, 'volume-other')
    assert qcow2.check_image(str(path), 'qcow2', allow_backing=True).backing_file == 'volume-other'


def test_virtual_size_limit(tmp_path):
    path = create(tmp_path / VOL, size='1M')
    assert qcow2.check_image(str(path), 'qcow2', max_virtual_size=MiB).size == MiB
    patch(path, 24, '>Q', 1 << 50)  # a guest-written header claiming 1 PiB
    with pytest.raises(UnsafeImage) as e:
        qcow2.check_image(str(path), 'qcow2', max_virtual_size=MiB)
    assert_unsafe(e, path, 'virtual size')
    with pytest.raises(UnsafeImage) as e:
        qcow2.walk_chain(str(path), PATTERN, max_virtual_size=MiB)
    assert_unsafe(e, path, 'virtual size')


def test_unknown_crypt_method_refused_even_if_allowed(tmp_path):
    path = create(tmp_path / VOL)
    patch(path, 32, '>I', 3)
    with pytest.raises(UnsafeImage) as e:
        qcow2.check_image(str(path), 'qcow2', allow_encryption=True)
    assert_unsafe(e, path, 'crypt_method 3')


def test_real_data_file_image(tmp_path):
    path = tmp_path / VOL
    try:
        create(path, opts='data_file=%s' % (tmp_path / 'x.raw'))
    except subprocess.CalledProcessError:
        pytest.skip('this qemu-img cannot create data_file images')
    hdr = qcow2.read_header(str(path))
    assert hdr.data_file == str(tmp_path / 'x.raw')
    assert hdr.incompatible_features & qcow2.INCOMPAT_DATA_FILE
    with pytest.raises(UnsafeImage) as e:
        qcow2.check_image(str(path), 'qcow2')
    assert_unsafe(e, path, 'external data file')


def test_unknown_check_format(tmp_path):
    path = create(tmp_path / VOL)
    with pytest.raises(UnsafeImage) as e:
        qcow2.check_image(str(path), 'vmdk')
    assert_unsafe(e, path, 'vmdk')


# --------------------------------------------------------------------------- chains

@pytest.fixture(scope='module')
def chain64(tmp_path_factory):
    d = tmp_path_factory.mktemp('chain64')
    return make_chain(d, 64)


def _compare_with_qemu(top, entries):
    info = qemu_info(top, chain=True)
    assert len(entries) == len(info)
    for entry, qi in zip(entries, info):
        assert entry.path == os.path.abspath(qi['filename'])
        assert entry.file == os.path.basename(qi['filename'])
        assert entry.format == qi['format']
        assert entry.virtual_size == qi['virtual-size']
        assert entry.backing_file == qi.get('backing-filename')
        assert entry.backing_format == qi.get('backing-filename-format')
        st = os.stat(entry.path)
        assert (entry.apparent, entry.allocated) == (st.st_size, st.st_blocks * 512)


@pytest.mark.parametrize('depth,base_fmt', [(1, 'qcow2'), (2, 'raw'), (3, 'raw'), (3, 'qcow2')])
def test_chain_matches_qemu(tmp_path, depth, base_fmt):
    top = make_chain(tmp_path, depth, base_fmt)
    entries = qcow2.walk_chain(str(top), PATTERN, max_virtual_size=MiB)
    assert entries[0].file == top.name
    assert entries[-1].file == VOL and entries[-1].format == base_fmt
    assert entries[-1].backing_file is None
    _compare_with_qemu(top, entries)


def test_chain_64(chain64):
    entries = qcow2.walk_chain(str(chain64), PATTERN, max_virtual_size=MiB)
    assert len(entries) == 64
    assert [e.file for e in entries[:2]] == [VOL + '.s63', VOL + '.s62']
    _compare_with_qemu(chain64, entries)


def test_chain_64_depth_limit(chain64):
    assert len(qcow2.walk_chain(str(chain64), PATTERN, max_depth=64)) == 64
    with pytest.raises(UnsafeImage) as e:
        qcow2.walk_chain(str(chain64), PATTERN, max_depth=63)
    assert_unsafe(e, chain64, 'deeper than 63')


def test_chain_with_extended_top(tmp_path):
    top = make_chain(tmp_path, 3)
    qemu_img('resize', '-q', '-f', 'qcow2', top, '3M')
    entries = qcow2.walk_chain(str(top), PATTERN, max_virtual_size=3 * MiB)
    assert [e.virtual_size for e in entries] == [3 * MiB, MiB, MiB]
    _compare_with_qemu(top, entries)
    with pytest.raises(UnsafeImage) as e:
        qcow2.walk_chain(str(top), PATTERN, max_virtual_size=2 * MiB)
    assert_unsafe(e, top, 'virtual size')


def test_chain_relative_path_argument(tmp_path, monkeypatch):
    make_chain(tmp_path, 2)
    monkeypatch.chdir(str(tmp_path))
    entries = qcow2.walk_chain(VOL + '.s1', PATTERN)
    assert entries[0].path == str(tmp_path / (VOL + '.s1'))
    assert entries[1].path == str(tmp_path / VOL)


def test_raw_top(tmp_path):
    raw = create(tmp_path / VOL, fmt='raw', size='3M')
    (entry,) = qcow2.walk_chain(str(raw), PATTERN, expected_top_format='raw')
    assert (entry.file, entry.format, entry.virtual_size, entry.apparent) == (VOL, 'raw', 3 * MiB, 3 * MiB)
    assert entry.backing_file is None and entry.backing_format is None
    with open(str(raw), 'r+b') as f:
        f.write(qcow2.QCOW2_MAGIC)
    # raw is data: a guest-written qcow2 header is not interpreted
    (entry,) = qcow2.walk_chain(str(raw), PATTERN, expected_top_format='raw')
    assert entry.format == 'raw' and entry.backing_file is None


def test_raw_base_with_qcow2_magic(tmp_path):
    top = make_chain(tmp_path, 3)
    base = tmp_path / VOL
    with open(str(base), 'r+b') as f:
        f.write(qcow2.QCOW2_MAGIC)
    chain = qcow2.walk_chain(str(top), PATTERN)
    assert chain[-1].file == VOL and chain[-1].format == 'raw'


def test_qcow2_top_that_is_raw(tmp_path):
    raw = create(tmp_path / VOL, fmt='raw')
    with pytest.raises(UnsafeImage) as e:
        qcow2.walk_chain(str(raw), PATTERN)
    assert_unsafe(e, raw, 'magic')


def test_backing_recorded_qcow2_but_raw(tmp_path):
    """The parent says qcow2 but the backing file is raw data: refused, not probed."""
    create(tmp_path / VOL, fmt='raw')
    top = create(tmp_path / (VOL + '.a'))
    rewrite_tail(top, backing=VOL.encode(), backing_fmt=b'qcow2')
    with pytest.raises(UnsafeImage) as e:
        qcow2.walk_chain(str(top), PATTERN)
    assert_unsafe(e, tmp_path / VOL, 'magic')


def _loop_self(d):
    a = create(d / (VOL + '.a'))
    rewrite_tail(a, backing=a.name.encode(), backing_fmt=b'qcow2')
    return a


def _loop_pair(d):
    a, b = create(d / (VOL + '.a')), create(d / (VOL + '.b'))
    rewrite_tail(a, backing=b.name.encode(), backing_fmt=b'qcow2')
    rewrite_tail(b, backing=a.name.encode(), backing_fmt=b'qcow2')
    return a


def _loop_hardlink(d):
    a = create(d / (VOL + '.a'))
    os.link(str(a), str(d / (VOL + '.h')))
    rewrite_tail(a, backing=(VOL + '.h').encode(), backing_fmt=b'qcow2')
    return a


def _loop_deep(d):
    top = make_chain(d, 4, base_fmt='qcow2')
    rewrite_tail(d / VOL, backing=top.name.encode(), backing_fmt=b'qcow2')
    return top


@pytest.mark.parametrize('build', [_loop_self, _loop_pair, _loop_hardlink, _loop_deep],
                         ids=['self', 'a-b-a', 'hardlink', 'base-to-top'])
def test_chain_loop(tmp_path, build):
    top = build(tmp_path)
    with pytest.raises(UnsafeImage) as e:
        qcow2.walk_chain(str(top), PATTERN)
    # a hard-linked file is refused before the loop is even seen
    assert_unsafe(e, top, 'hard links' if build is _loop_hardlink else 'loops')


def test_hard_linked_chain_file_is_refused(tmp_path):
    """A second name of a chain file may be outside the directory: the
    module would then write guest data there (commit, resize, chmod)."""
    top = make_chain(tmp_path, 2)
    outside = tmp_path.parent / ('outside-%s' % tmp_path.name)
    os.link(str(tmp_path / VOL), str(outside))
    try:
        with pytest.raises(UnsafeImage) as e:
            qcow2.walk_chain(str(top), PATTERN)
        assert 'hard links' in e.value.msg
    finally:
        outside.unlink()


def test_absolute_backing_path_in_the_volume_directory_is_accepted(tmp_path):
    """Older Cinder wrote backing files as absolute paths of files in the
    share directory; anything else absolute stays refused."""
    create(tmp_path / VOL, fmt='raw')
    top = create(tmp_path / (VOL + '.a'))
    rewrite_tail(top, backing=str(tmp_path / VOL).encode(), backing_fmt=b'raw')
    chain = qcow2.walk_chain(str(top), PATTERN)
    assert [c.file for c in chain] == [VOL + '.a', VOL] and chain[0].backing_file == VOL
    rewrite_tail(top, backing=('/elsewhere/' + VOL).encode(), backing_fmt=b'raw')
    with pytest.raises(UnsafeImage) as e:
        qcow2.walk_chain(str(top), PATTERN)
    assert 'path' in e.value.msg


def test_chain_deeper_than_max_depth(tmp_path):
    top = make_chain(tmp_path, 6)
    assert len(qcow2.walk_chain(str(top), PATTERN, max_depth=6)) == 6
    with pytest.raises(UnsafeImage) as e:
        qcow2.walk_chain(str(top), PATTERN, max_depth=5)
    assert_unsafe(e, top, 'deeper than 5')


def _missing(d):
    return VOL + '.gone'


def _symlink_in_chain(d):
    create(d / (VOL + '.real'))
    os.symlink(VOL + '.real', str(d / (VOL + '.link')))
    return VOL + '.link'


def _symlink_out(d):
    os.symlink('/etc/passwd', str(d / (VOL + '.link')))
    return VOL + '.link'


def _other_volume(d):
    create(d / 'volume-other', fmt='raw')
    return 'volume-other'


def _prefix_volume(d):
    create(d / 'volume-myvol2', fmt='raw')  # shares the prefix, not the chain
    return 'volume-myvol2'


def _sidecar_dir(d):
    os.mkdir(str(d / (VOL + '.dir')))
    return VOL + '.dir'


def _fifo(d):
    os.mkfifo(str(d / (VOL + '.fifo')))
    return VOL + '.fifo'


@pytest.mark.parametrize('setup,words', [
    (_missing, 'missing'),
    (_symlink_in_chain, 'symbolic link'),
    (_symlink_out, 'symbolic link'),
    (_other_volume, 'does not match'),
    (_prefix_volume, 'does not match'),
    (_sidecar_dir, 'not a regular file'),
    (_fifo, 'not a regular file'),
], ids=['missing', 'symlink-in-dir', 'symlink-out', 'other-volume', 'prefix-volume', 'directory', 'fifo'])
def test_chain_bad_backing(tmp_path, setup, words):
    name = setup(tmp_path)
    top = create(tmp_path / (VOL + '.top'))
    rewrite_tail(top, backing=name.encode(), backing_fmt=b'qcow2')
    with pytest.raises(UnsafeImage) as e:
        qcow2.walk_chain(str(top), PATTERN)
    assert_unsafe(e, top, words, repr(name))


def test_chain_bad_file_in_middle(tmp_path):
    """A malicious header deep in the chain is found and named."""
    top = make_chain(tmp_path, 4)
    mid = tmp_path / (VOL + '.s1')
    rewrite_tail(mid, backing=b'/etc/shadow', backing_fmt=b'raw')
    with pytest.raises(UnsafeImage) as e:
        qcow2.walk_chain(str(top), PATTERN)
    assert_unsafe(e, mid, '/etc/shadow')
