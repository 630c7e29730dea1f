# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hostile or damaged chains (Cinder advisories OSSA-2014-033, 2015-011,
2016-012, 2024-001): an overlay whose backing file leaves the chain
(/etc/shadow, ../x, another volume's file, a json: or protocol name), a
backing loop, a .info naming a file outside the directory or a missing file,
a corrupt .info, a guest-written qcow2 header in a raw base.

Every operation on such a volume fails with a clear error and touches
nothing: the directory (names, contents, modes), a sentinel beside it,
/etc/shadow and /etc/passwd are byte for byte as before. Deleting with
force removes only files of the volume's own chain in its directory."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import struct

import pytest

import snapchain as sc
from ansible_collections.blockyard.storage.plugins.module_utils import qcow2
from ansible_collections.blockyard.storage.plugins.module_utils.errors import StorageError

X = 'X'
SYSTEM_FILES = [p for p in ('/etc/shadow', '/etc/passwd') if os.path.exists(p)]


# ------------------------------------------------------------------ tampering
def set_backing(path, name, fmt=None):
    """Rewrite the backing file name (and the backing format extension) of a
    qcow2 file in place, the way a hostile guest or tool could."""
    with open(path, 'r+b') as handle:
        header = handle.read(65536)
        offset = struct.unpack('>Q', header[8:16])[0]
        assert offset, 'no backing file to rewrite in %s' % path
        raw = name.encode('utf-8')
        handle.seek(offset)
        handle.write(raw)
        handle.seek(16)
        handle.write(struct.pack('>I', len(raw)))
        if fmt is not None:
            pos = struct.unpack('>I', header[100:104])[0]
            while True:
                ext_type, ext_len = struct.unpack('>II', header[pos:pos + 8])
                if ext_type == 0:
                    raise AssertionError('no backing format extension in %s' % path)
                if ext_type == qcow2.EXT_BACKING_FORMAT:
                    assert len(fmt) <= ((ext_len + 7) & ~7)
                    handle.seek(pos)
                    handle.write(struct.pack('>II', ext_type, len(fmt)))
                    handle.write(fmt.encode('ascii').ljust((ext_len + 7) & ~7, b'\0'))
                    break
                pos += 8 + ((ext_len + 7) & ~7)
    header = qcow2.read_header(path)
    assert header.backing_file == name and (fmt is None or header.backing_format == fmt)


def set_info(directory, mapping=None, raw=None):
    with open(sc.info_path(directory, X), 'wb') as handle:
        handle.write(raw if raw is not None else sc.cinder_info(mapping))


def overlay(directory, snap):
    return os.path.join(directory, sc.overlay_file(X, snap))


OUTSIDE = 'x'     # a sentinel file beside the volume directory (reached as ../x)

# name: (tamper(directory), a word the error must contain)
CASES = {
    'backing-etc-shadow': (lambda d: set_backing(overlay(d, 'b'), '/etc/shadow', 'raw'), '/etc/shadow'),
    'backing-dotdot': (lambda d: set_backing(overlay(d, 'b'), '../' + OUTSIDE, 'raw'), '../x'),
    'backing-middle-dotdot': (lambda d: set_backing(overlay(d, 'a'), '../' + OUTSIDE, 'raw'), '../x'),
    'backing-other-volume': (lambda d: set_backing(overlay(d, 'b'), 'volume-Y', 'raw'), 'volume-Y'),
    'backing-other-volume-in-pattern': (lambda d: set_backing(overlay(d, 'a'), 'volume-X.evil', 'raw'),
                                        'volume-X.evil'),
    'backing-json': (lambda d: set_backing(overlay(d, 'b'), 'json:{"file.filename":"/etc/shadow"}', 'raw'),
                     'json:'),
    'backing-protocol': (lambda d: set_backing(overlay(d, 'b'), 'nbd://127.0.0.1:10809/x', 'raw'), 'nbd:'),
    'backing-loop': (lambda d: set_backing(overlay(d, 'a'), sc.overlay_file(X, 'b'), 'qcow2'), 'loop'),
    'backing-self-loop': (lambda d: set_backing(overlay(d, 'b'), sc.overlay_file(X, 'b'), 'qcow2'), 'loop'),
    'info-dotdot': (lambda d: set_info(d, dict(sc.read_info(d, X), evil='../etc/passwd')), '../etc/passwd'),
    'info-absolute': (lambda d: set_info(d, dict(sc.read_info(d, X), evil='/etc/passwd')), '/etc/passwd'),
    'info-active-absolute': (lambda d: set_info(d, dict(sc.read_info(d, X), active='/etc/passwd')), '/etc/passwd'),
    'info-missing-file': (lambda d: set_info(d, dict(sc.read_info(d, X), gone=sc.overlay_file(X, 'gone'))),
                          'volume-X.gone'),
    'info-other-volume': (lambda d: set_info(d, dict(sc.read_info(d, X), evil='volume-Y')), 'volume-Y'),
    'info-not-json': (lambda d: set_info(d, raw=b'{"active": "volume-X.b", '), 'JSON'),
    'info-sidecar': (lambda d: set_info(d, dict(sc.read_info(d, X), evil='volume-X.meta')), 'volume-X.meta'),
}


def _write_bytes(path, offset, data):
    with open(path, 'r+b') as handle:
        handle.seek(offset)
        handle.write(data)


OPERATIONS = [
    ('snapshot create', lambda d: sc.snapshot(d, X, 'new')),
    ('snapshot delete (middle)', lambda d: sc.snapshot(d, X, 'a', state='absent')),
    ('snapshot delete (active)', lambda d: sc.snapshot(d, X, 'b', state='absent')),
    ('snapshot delete (unknown id)', lambda d: sc.snapshot(d, X, 'zzz', state='absent')),
    ('revert', lambda d: sc.snapshot(d, X, 'b', state='reverted')),
    ('extend', lambda d: sc.volume(d, X, size='8M')),
    ('present', lambda d: sc.volume(d, X, size='4M')),
    ('volume_info by name', lambda d: sc.info_of(d, X)),
    ('create from snapshot', lambda d: sc.volume(d, 'C', source_volume=X, source_snapshot='a')),
    ('clone', lambda d: sc.volume(d, 'C', source_volume=X)),
    ('delete without force', lambda d: sc.volume(d, X, state='absent')),
]


def build(directory):
    """X with snapshots a and b; Y and Z plain volumes; volume-X.evil a stray
    raw file in X's naming that is not in its chain; a sentinel file beside
    the directory."""
    timeline = sc.Timeline()
    sc.volume(directory, X, size='4M')
    timeline.write(*sc.active_view(directory, X))
    sc.snapshot(directory, X, 'a')
    timeline.write(*sc.active_view(directory, X))
    sc.snapshot(directory, X, 'b')
    timeline.write(*sc.active_view(directory, X))
    sc.volume(directory, 'Y', size='4M')
    sc.write_patterns(os.path.join(directory, 'volume-Y'), 'raw', [(0x59, 0, sc.SLOT)])
    sc.volume(directory, 'Z', size='4M')
    sc.write_patterns(os.path.join(directory, 'volume-Z'), 'raw', [(0x66, 0, sc.SLOT)])
    with open(os.path.join(directory, 'volume-X.evil'), 'wb') as handle:
        handle.write(b'a stray raw file')
    with open(os.path.join(os.path.dirname(directory), OUTSIDE), 'wb') as handle:
        handle.write(b'outside the volume directory\n')
    return timeline


def everything(directory):
    return sc.fingerprint(directory, os.path.join(os.path.dirname(directory), OUTSIDE), *SYSTEM_FILES)


@pytest.mark.parametrize('case', sorted(CASES))
def test_every_operation_refuses(vdir, case):
    build(vdir)
    tamper, word = CASES[case]
    tamper(vdir)
    before = everything(vdir)
    problems = []
    for label, call in OPERATIONS:
        try:
            result = call(vdir)
        except StorageError as exc:
            words = [word] + (['snapshots (a, b', 'force'] if label == 'delete without force' else [])
            if not exc.msg or not any(w.lower() in exc.msg.lower() for w in words):
                problems.append('%s: the error does not name %r: %s' % (label, word, exc.msg))
        except Exception as exc:  # noqa: not a clear error
            problems.append('%s: failed with %s: %s instead of a clear error' % (label, type(exc).__name__, exc))
        else:
            problems.append('%s: was not refused: %r' % (label, result))
        after = everything(vdir)
        if after != before:
            changed = sorted(set(k for k in set(before) | set(after) if before.get(k) != after.get(k)))
            problems.append('%s: touched %s' % (label, changed))
            before = after
    # listing all volumes does not fail: the damaged one says why
    _c, listing, _d = sc.volumes.volume_info(dict(sc.LOCATION, volume_dir=vdir))
    by_name = listing['volumes_by_name']
    if 'error' not in by_name.get(X, {}):
        problems.append('volume_info listing: no error for %s: %r' % (X, by_name.get(X)))
    if 'error' in by_name.get('Y', {}) or 'error' in by_name.get('Z', {}):
        problems.append('volume_info listing: the healthy volumes are reported broken')
    assert everything(vdir) == before
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('case', sorted(CASES))
def test_forced_delete_stays_inside(vdir, case):
    """delete with force may remove the damaged volume, but only files of its
    own chain in its directory: never what a hostile .info or backing name
    points at, never another volume's file."""
    build(vdir)
    tamper, _word = CASES[case]
    tamper(vdir)
    keep = sc.fingerprint(os.path.join(os.path.dirname(vdir), OUTSIDE), *SYSTEM_FILES)
    others = dict((f, sc.fingerprint(os.path.join(vdir, f))) for f in os.listdir(vdir)
                  if f.startswith(('volume-Y', 'volume-Z')))
    try:
        sc.volume(vdir, X, state='absent', force=True)
    except StorageError as exc:
        assert exc.msg
        # refused: then nothing at all was touched
        assert os.path.exists(sc.info_path(vdir, X))
    else:
        # every file of X's naming goes, the stray one too: each name has one owner
        left = [f for f in os.listdir(vdir) if f.startswith(('volume-X', '.volume-X'))]
        assert left == [], left
    assert sc.fingerprint(os.path.join(os.path.dirname(vdir), OUTSIDE), *SYSTEM_FILES) == keep
    for name, print_ in others.items():
        assert sc.fingerprint(os.path.join(vdir, name)) == print_, name


def test_info_entry_naming_a_stray_file_is_dropped_not_deleted(vdir):
    """A .info entry that names a raw file of the volume's naming which is not
    in its chain is a damaged entry: deleting that 'snapshot' drops the entry
    and keeps the file (only a qcow2 file can be a left-over overlay)."""
    timeline = build(vdir)
    info = sc.read_info(vdir, X)
    stray = os.path.join(vdir, 'volume-X.evil')
    kept = sc.fingerprint(stray)
    set_info(vdir, dict(info, evil='volume-X.evil'))
    changed, result, diff = sc.snapshot(vdir, X, 'evil', state='absent')
    assert changed and diff['after'] == {'snapshots': ['a', 'b']}, (result, diff)
    assert sorted(diff['before']['snapshots']) == ['a', 'b', 'evil'], (result, diff)
    sc.assert_info(vdir, X, info)
    assert 'kept' in ' '.join(result['actions'])
    assert sc.fingerprint(stray) == kept and sc.read_info(vdir, X) == info
    os.unlink(stray)
    sc.check_volume_state(vdir, X, timeline, [('a', 1), ('b', 2)])


@pytest.mark.parametrize('name', ['X.a', 'X.info', 'Y.meta', 'Z.lock', 'X.journal', 'X\n', 'X.b'])
def test_dotted_names_are_refused_before_anything_is_touched(vdir, name):
    """Volume X.a would be the overlay of snapshot a of X, Y.meta Y's record:
    a name with a dot is bad input, for every state, and nothing changes."""
    build(vdir)
    before = everything(vdir)
    for call in (lambda: sc.volume(vdir, name, size='4M'), lambda: sc.volume(vdir, name, state='absent'),
                 lambda: sc.volume(vdir, name, state='absent', force=True),
                 lambda: sc.snapshot(vdir, name, 's'), lambda: sc.info_of(vdir, name),
                 lambda: sc.snapshot(vdir, X, name, state='absent')):
        with pytest.raises(StorageError) as err:
            call()
        assert 'name' in err.value.msg
        assert everything(vdir) == before


def test_raw_volume_with_a_guest_written_qcow2_header_is_data(vdir):
    """A guest may write anything onto its raw disk, a qcow2 header naming
    /etc/shadow included: the volume stays raw data and every operation works
    on it; the header is never followed."""
    sc.volume(vdir, 'R', size='4M')
    header = qcow2.QCOW2_MAGIC + struct.pack('>IQI', 3, 512, 11) + b'\0' * 488 + b'/etc/shadow'
    _write_bytes(os.path.join(vdir, 'volume-R'), 0, header)
    outside = sc.fingerprint(*SYSTEM_FILES)
    sc.snapshot(vdir, 'R', 's1')
    sc.volume(vdir, 'R', size='8M')
    assert sc.info_of(vdir, 'R')['format'] == 'raw'
    sc.volume(vdir, 'R2', source_volume='R', source_snapshot='s1')
    sc.volume(vdir, 'R3', source_volume='R')
    sc.snapshot(vdir, 'R', 's1', state='absent')
    for name in ('R', 'R2', 'R3'):
        with open(os.path.join(vdir, 'volume-%s' % name), 'rb') as handle:
            assert handle.read(len(header)) == header, name
    sc.volume(vdir, 'R', state='absent')
    assert sc.fingerprint(*SYSTEM_FILES) == outside
