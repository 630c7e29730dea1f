# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/naming.py: names, sizes, Cinder file names
and the chain pattern."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.blockyard.storage.plugins.module_utils.backends.file import layout
from ansible_collections.blockyard.storage.plugins.module_utils import naming
from ansible_collections.blockyard.storage.plugins.module_utils.errors import InvalidInput

KiB, MiB, GiB, TiB = 1024, 1024 ** 2, 1024 ** 3, 1024 ** 4


# --------------------------------------------------------------------------- names

@pytest.mark.parametrize('name', [
    'a', 'Z', '0', 'db01', 'vol-1', 'vol_1', 'A-b_cD9', '9lives', 'x' * 200,
    'snapshot', 'tmp-snap-x', 'a-', 'a_', '6f1c2a8e-0b7d-4c55-9a43-2d1e8f0c9b71',
])
def test_valid_names(name):
    assert naming.validate_name(name) == name


@pytest.mark.parametrize('name, fragments', [
    ('', ['name is empty']),
    ('a/b', ["'a/b'", 'contains "/" or "."']),
    ('/abs', ["'/abs'", 'contains "/" or "."']),
    ('a/', ["'a/'", 'contains "/" or "."']),
    ('..', ["'..'", 'contains "/" or "."']),
    ('.', ["'.'", 'contains "/" or "."']),
    ('../x', ["'../x'", 'contains "/" or "."']),
    ('a..b', ["'a..b'", 'no dots']),
    # a dot would make the name another volume's file: c.s1 is snapshot s1 of c
    ('c.s1', ["'c.s1'", 'another volume']),
    ('b.info', ["'b.info'", 'no dots']),
    ('db.lock', ["'db.lock'", 'no dots']),
    ('vol.1', ['no dots']),
    ('a.', ['no dots']),
    ('a\x00b', [r"'a\x00b'", 'NUL byte']),
    ('\x00', ['NUL byte']),
    ('.hidden', ["'.hidden'", 'no dots']),
    ('-dash', ["'-dash'", 'must start with a letter or digit']),
    ('_under', ["'_under'", 'must start with a letter or digit']),
    ('x' * 201, ['201 characters', 'limit is 200']),
    ('a b', ["'a b'", 'invalid']),
    ('a*', ["'a*'", 'invalid']),
    ('a\\b', [r"'a\\b'", 'invalid']),
    ('é', ['invalid']),
    ('a\n', [r"'a\n'", 'invalid']),          # "$" would accept a trailing newline
    ('a\nb', ['invalid']),
    (' a', ['invalid']),
    ('a:b', ['invalid']),
])
def test_invalid_names(name, fragments):
    with pytest.raises(InvalidInput) as err:
        naming.validate_name(name)
    for fragment in fragments:
        assert fragment in err.value.msg
    assert err.value.msg.startswith('The volume name')


@pytest.mark.parametrize('name', [None, 12, b'abc', ['a']])
def test_names_that_are_not_strings(name):
    with pytest.raises(InvalidInput):
        naming.validate_name(name)


def test_name_length_limit_is_exactly_200():
    assert naming.MAX_NAME_LEN == 200
    naming.validate_name('a' * 200)
    with pytest.raises(InvalidInput):
        naming.validate_name('a' * 201)


def test_the_object_kind_is_in_the_message():
    with pytest.raises(InvalidInput) as err:
        naming.validate_name('a/b', 'source volume')
    assert err.value.msg.startswith('The source volume name')


@pytest.mark.parametrize('name', ['info', 'meta', 'lock', 'journal', 'active', 'part'])
def test_reserved_snapshot_names(name):
    with pytest.raises(InvalidInput) as err:
        naming.validate_snapshot_name(name, reserved=layout.RESERVED_SNAPSHOT_NAMES)   # the file backend's
    assert repr(name) in err.value.msg
    assert 'reserved' in err.value.msg
    assert naming.validate_snapshot_name(name) == name      # a backend without sidecars reserves nothing
    # they are fine as volume names
    assert naming.validate_name(name) == name


@pytest.mark.parametrize('name', ['s1', 'information', 'metadata', 'locked', 'journal1', 'Info', 'info-bak', 'actively'])
def test_snapshot_names_close_to_reserved_ones(name):
    assert naming.validate_snapshot_name(name) == name


@pytest.mark.parametrize('name', ['', '../x', '.x', 'a/b', 'x' * 201])
def test_snapshot_names_follow_the_name_rules(name):
    with pytest.raises(InvalidInput) as err:
        naming.validate_snapshot_name(name)
    assert err.value.msg.startswith('The snapshot name')


# --------------------------------------------------------------------------- sizes

@pytest.mark.parametrize('value, expected', [
    (10, 10 * GiB),
    (1, GiB),
    ('10', 10 * GiB),
    ('10G', 10 * GiB),
    ('10g', 10 * GiB),
    ('10GB', 10 * GiB),
    ('10GiB', 10 * GiB),
    ('512M', 512 * MiB),
    ('512MiB', 512 * MiB),
    ('1T', TiB),
    ('2TB', 2 * TiB),
    ('1024K', MiB),
    ('512B', 512),
    ('1024b', 1024),
    (' 2 G', 2 * GiB),        # blanks around and between are accepted
    ('2G ', 2 * GiB),
    ('\t3M\n', 3 * MiB),
    (2.0, 2 * GiB),           # a whole float is a whole number of GiB
])
def test_sizes(value, expected):
    assert naming.parse_size(value) == expected


@pytest.mark.parametrize('value, fragments', [
    (0, ['size 0', 'zero']),
    ('0', ["size '0'", 'zero']),
    ('0G', ["'0G'", 'zero']),
    (0.0, ['zero']),
    (-1, ['-1', 'negative']),
    ('-1', ["'-1'", 'negative']),
    ('-1G', ["'-1G'", 'negative']),
    (' -5M', ['negative']),
    (-2.0, ['negative']),
    ('abc', ["'abc'", 'not a size']),
    ('', ["''", 'not a size']),
    ('G', ["'G'", 'not a size']),
    ('1.5G', ["'1.5G'", 'not a size']),
    ('1,5G', ['not a size']),
    ('1e3', ['not a size']),
    ('10 G B', ['not a size']),
    ('5X', ["'5X'", "unknown unit 'X'"]),
    ('10P', ["unknown unit 'P'"]),
    ('10Gi', ["unknown unit 'Gi'"]),
    (1.5, ['1.5', 'whole number', '1536M']),
    (True, ['True', 'not a size']),
    (False, ['False', 'not a size']),
    (None, ['None', 'not a size']),
    ('513B', ['multiple of 512']),
    ('100B', ['multiple of 512']),
])
def test_bad_sizes(value, fragments):
    with pytest.raises(InvalidInput) as err:
        naming.parse_size(value)
    for fragment in fragments:
        assert fragment in err.value.msg, err.value.msg


def test_size_messages_name_the_option():
    with pytest.raises(InvalidInput) as err:
        naming.parse_size('abc', what='new size')
    assert err.value.msg.startswith('The new size')


@pytest.mark.parametrize('size, text', [
    (512, '512B'), (1000, '1000B'), (KiB, '1K'), (MiB, '1M'), (512 * MiB, '512M'), (1536 * MiB, '1536M'),
    (GiB, '1G'), (10 * GiB, '10G'), (TiB, '1T'), (TiB + GiB, '1025G'),
])
def test_human_size(size, text):
    assert naming.human_size(size) == text


@pytest.mark.parametrize('size', [512, MiB, 3 * MiB, GiB, 7 * GiB, TiB])
def test_human_size_round_trips(size):
    assert naming.parse_size(naming.human_size(size)) == size


# --------------------------------------------------------------------------- file names

def test_cinder_file_names():
    assert layout.volume_file('db01') == 'volume-db01'
    assert layout.sidecar_file('db01', 'info') == 'volume-db01.info'
    assert layout.sidecar_file('db01', 'meta') == 'volume-db01.meta'
    assert layout.snapshot_file('db01', 'nightly') == 'volume-db01.nightly'


@pytest.mark.parametrize('filename, matches', [
    ('volume-x', True),
    ('volume-x.s1', True),
    ('volume-x.aaaa-bbbb', True),
    ('volume-x.tmp-snap-y', True),
    ('volume-x.info.bak', False),    # a snapshot name has no dot
    ('volume-x.info-bak', True),     # a snapshot named "info-bak" is not a sidecar
    ('volume-x.information', True),
    # sidecars are never part of a chain
    ('volume-x.info', False),
    ('volume-x.meta', False),
    ('volume-x.lock', False),
    ('volume-x.journal', False),
    # full match only
    ('volume-x\n', False),
    ('volume-x.s1\n', False),
    ('volume-x.s1/..', False),
    ('volume-x/../volume-x', False),
    ('./volume-x', False),
    ('/dir/volume-x', False),
    ('volume-x.', False),
    ('volume-x..s1', False),
    ('volume-x.-s1', False),
    ('volume-x.s 1', False),
    ('xvolume-x', False),
    # other volumes that share the prefix
    ('volume-xy', False),
    ('volume-x-y', False),
    ('volume-x_y', False),
    ('volume-X', False),
    ('volume-', False),
    ('volume-y', False),
])
def test_chain_pattern(filename, matches):
    pattern = layout.chain_pattern('x')
    assert bool(pattern.match(filename)) is matches
    assert bool(pattern.fullmatch(filename)) is matches


def test_chain_pattern_gives_each_file_one_owner():
    # without dots in names, volume-a.b is snapshot b of a and nobody else's
    assert layout.chain_pattern('a').match('volume-a.b')
    assert not layout.chain_pattern('a').match('volume-a.b.c')
    assert not layout.chain_pattern('ab').match('volume-a.b')


@pytest.mark.parametrize('name', ['db01', 'Nightly', 'x' * 36])
def test_cinder_compatible_names_must_be_uuids(name):
    with pytest.raises(InvalidInput) as err:
        naming.validate_name(name, cinder=True)
    assert 'UUID' in err.value.msg and 'cinder_compatible_names' in err.value.msg
    assert naming.validate_name('6f1c2a8e-0b7d-4c55-9a43-2d1e8f0c9b71', cinder=True)
    with pytest.raises(InvalidInput):
        naming.validate_snapshot_name('6F1C2A8E-0B7D-4C55-9A43-2D1E8F0C9B71', cinder=True)


def test_temporary_snapshot_names_stay_short():
    assert layout.temporary_snapshot('src', 'db01') == 'tmp-snap-db01'
    uuid = '6f1c2a8e-0b7d-4c55-9a43-2d1e8f0c9b71'
    assert layout.temporary_snapshot(uuid, uuid) == 'tmp-snap-' + uuid   # Cinder's own name
    for source, dest in (('v' * 200, 'd' * 40), ('v' * 200, 'd' * 200), ('v' * 40, 'd' * 200)):
        name = layout.temporary_snapshot(source, dest)
        assert name.startswith('tmp-snap-') and len(name) == 25
        layout.check_snapshot_file(source, name)


@pytest.mark.parametrize('value, mode', [('0660', 0o660), ('660', 0o660), ('0640', 0o640), ('07777', 0o7777),
                                         ('0', 0), (None, None)])
def test_parse_mode(value, mode):
    assert naming.parse_mode(value) == mode


@pytest.mark.parametrize('value', [660, 0o660, True, -1, '-1', '17777', '0888', 'rw', [1], '', '0o660'])
def test_parse_mode_refuses(value):
    with pytest.raises(InvalidInput) as err:
        naming.parse_mode(value)
    assert 'mode' in err.value.msg


def test_sizes_of_2_63_bytes_or_more_are_refused():
    assert naming.parse_size('%dB' % (2 ** 63 - 512)) == 2 ** 63 - 512
    for value in ('8E', '%dB' % 2 ** 63, '8388608T', 2 ** 40):
        with pytest.raises(InvalidInput):
            naming.parse_size(value)


def test_snapshot_file_names_fit_the_file_system():
    volume = 'v' * 200
    # volume-<200>.<39> + ".<...>.revert" is 255 bytes: the longest that fits
    assert layout.check_snapshot_file(volume, 's' * 39) == 'volume-%s.%s' % (volume, 's' * 39)
    with pytest.raises(InvalidInput) as err:
        layout.check_snapshot_file(volume, 's' * 40)
    assert 'at most 39 characters' in err.value.msg
    assert layout.check_snapshot_file('db01', 'x' * 200) == 'volume-db01.' + 'x' * 200
    with pytest.raises(InvalidInput):
        layout.check_snapshot_file(volume, 'tmp-snap-' + 'd' * 200)   # a clone's temporary snapshot
