# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/snapinfo.py: Cinder's .info map (byte for
byte), its validation, and the .meta / .journal sidecars, on real files."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

import pytest

from ansible_collections.blockyard.storage.plugins.module_utils.errors import StorageError, UnsafeImage
from ansible_collections.blockyard.storage.plugins.module_utils.backends.file.bookkeeping import Bookkeeping

# What Cinder's _write_info_file writes (json.dump(info, f, indent=1,
# sort_keys=True)) after deleting the first of two snapshots.
CINDER_INFO = b'{\n "active": "volume-X.bbbb",\n "bbbb": "volume-X.bbbb"\n}'


@pytest.fixture
def book(tmp_path):
    return Bookkeeping(str(tmp_path), 'X')


def touch(book, *names):
    for name in names:
        with open(book.path(name), 'wb') as handle:
            handle.write(b'')


def test_paths(book, tmp_path):
    assert book.base == 'volume-X'
    assert book.info_path == str(tmp_path / 'volume-X.info')
    assert book.meta_path == str(tmp_path / 'volume-X.meta')
    assert book.journal_path == str(tmp_path / 'volume-X.journal')


def test_no_info_means_no_snapshots(book):
    touch(book, 'volume-X')
    assert book.read_info() is None
    assert book.active() == 'volume-X'
    assert book.snapshots(None) == {}


def test_info_is_cinders_bytes(book):
    touch(book, 'volume-X', 'volume-X.bbbb')
    book.write_info({'bbbb': 'volume-X.bbbb', 'active': 'volume-X.bbbb'})
    with open(book.info_path, 'rb') as handle:
        assert handle.read() == CINDER_INFO
    assert sorted(os.listdir(book.directory)) == ['volume-X', 'volume-X.bbbb', 'volume-X.info']


def test_info_round_trip(book):
    touch(book, 'volume-X', 'volume-X.aaaa', 'volume-X.bbbb')
    info = {'active': 'volume-X.bbbb', 'aaaa': 'volume-X.aaaa', 'bbbb': 'volume-X.bbbb'}
    book.write_info(info)
    assert book.read_info() == info
    assert book.active() == 'volume-X.bbbb'
    assert book.snapshots(info) == {'aaaa': 'volume-X.aaaa', 'bbbb': 'volume-X.bbbb'}
    with open(book.info_path, 'rb') as handle:
        assert handle.read() == json.dumps(info, indent=1, sort_keys=True).encode()


def test_a_map_written_by_cinder_is_read(book):
    touch(book, 'volume-X', 'volume-X.bbbb')
    for raw in (CINDER_INFO, CINDER_INFO + b'\n'):
        with open(book.info_path, 'wb') as handle:
            handle.write(raw)
        assert book.read_info() == {'active': 'volume-X.bbbb', 'bbbb': 'volume-X.bbbb'}


def test_info_without_active_is_refused(book):
    touch(book, 'volume-X', 'volume-X.aaaa')
    with open(book.info_path, 'w') as handle:
        json.dump({'aaaa': 'volume-X.aaaa'}, handle)
    with pytest.raises(UnsafeImage) as err:
        book.read_info()
    assert 'no "active" entry' in err.value.msg
    assert book.info_path in err.value.msg


@pytest.mark.parametrize('value', [
    '/etc/shadow', '../volume-X.aaaa', 'sub/volume-X.aaaa', 'volume-Y', 'volume-Y.aaaa', 'volume-XY',
    'volume-X.info', 'volume-X.meta', 'volume-X.lock', 'volume-X.journal', 'volume-X\n', 'volume-X.aaaa\n',
    'json:{"file.filename": "/etc/shadow"}', '', 5, None, ['volume-X'],
])
def test_values_outside_the_chain_pattern_are_refused(book, value):
    touch(book, 'volume-X', 'volume-X.aaaa')
    with open(book.info_path, 'w') as handle:
        json.dump({'active': 'volume-X', 'aaaa': value}, handle)
    with pytest.raises(UnsafeImage) as err:
        book.read_info()
    assert 'not a file of volume X' in err.value.msg
    assert repr('aaaa') in err.value.msg


def test_the_active_value_is_checked_too(book):
    touch(book, 'volume-X')
    with open(book.info_path, 'w') as handle:
        json.dump({'active': '/etc/shadow'}, handle)
    with pytest.raises(UnsafeImage):
        book.read_info()


def test_missing_files_are_refused(book):
    touch(book, 'volume-X')
    with open(book.info_path, 'w') as handle:
        json.dump({'active': 'volume-X.bbbb', 'bbbb': 'volume-X.bbbb'}, handle)
    with pytest.raises(UnsafeImage) as err:
        book.read_info()
    assert 'volume-X.bbbb' in err.value.msg
    assert 'does not exist' in err.value.msg


def test_links_and_directories_are_refused(book, tmp_path):
    touch(book, 'volume-X')
    os.symlink('volume-X', book.path('volume-X.link'))
    os.mkdir(book.path('volume-X.dir'))
    for name in ('volume-X.link', 'volume-X.dir'):
        with open(book.info_path, 'w') as handle:
            json.dump({'active': name, 'snap': name}, handle)
        with pytest.raises(UnsafeImage):
            book.read_info()


def test_corrupt_info_is_an_error(book):
    with open(book.info_path, 'w') as handle:
        handle.write('{"active": ')
    with pytest.raises(StorageError) as err:
        book.read_info()
    assert 'not valid JSON' in err.value.msg


def test_meta_round_trip(book):
    book.write_meta('qcow2', 1024 ** 3, 'thick')
    assert book.read_meta() == {'format': 'qcow2', 'size_bytes': 1024 ** 3, 'provisioning': 'thick', 'version': 1}
    with open(book.meta_path) as handle:
        text = handle.read()
    assert text == json.dumps(book.read_meta(), indent=1, sort_keys=True) + '\n'


@pytest.mark.parametrize('fmt', ['vmdk', None, 'RAW', 7])
def test_meta_with_an_unknown_format_is_refused(book, fmt):
    with open(book.meta_path, 'w') as handle:
        json.dump({'format': fmt, 'size_bytes': 1}, handle)
    with pytest.raises(UnsafeImage) as err:
        book.read_meta()
    assert 'not raw or qcow2' in err.value.msg


def test_no_meta(book):
    assert book.read_meta() is None


def test_journal(book):
    assert book.read_journal() is None
    book.write_journal({'op': 'create', 'part': '.volume-X.part'})
    assert book.read_journal() == {'op': 'create', 'part': '.volume-X.part'}
    book.clear_journal()
    assert book.read_journal() is None
    assert not os.path.exists(book.journal_path)
    book.clear_journal()    # clearing twice is fine
