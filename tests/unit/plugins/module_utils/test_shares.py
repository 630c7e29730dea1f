# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/shares.py that need no mount: shares files,
the mount point convention, mount commands (NFS is only covered here: the
test machine's kernel has no NFS client), option comparison, failure
messages, and the plans of share_mount in check mode on real directories.
Mounting for real is tested by tests/integration/targets/share_mount."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os

import pytest

from ansible_collections.blockyard.storage.plugins.module_utils import shares
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (CommandFailed, Conflict,
                                                                               InvalidInput, StorageError)

L = shares.ShareLine


# --------------------------------------------------------------------------- shares files

def test_parse_valid_file_with_comments_and_blanks():
    text = ('# Cinder shares\n'
            '\n'
            '192.0.2.10:/srv/cinder\n'
            '   \n'
            '  gluster1:/volumes -o backup-volfile-servers=gluster2:gluster3\n'
            '# 192.0.2.11:/commented\n'
            '[2001:db8::1]:/export -o vers=4.1  # trailing comment\n')
    found, errors = shares.parse_shares_text(text)
    assert errors == []
    assert found == [L('192.0.2.10:/srv/cinder'),
                     L('gluster1:/volumes', 'backup-volfile-servers=gluster2:gluster3'),
                     L('[2001:db8::1]:/export', 'vers=4.1')]
    assert [s.lineno for s in found] == [3, 5, 7]


def test_parse_empty_and_comment_only_files():
    assert shares.parse_shares_text('') == ([], [])
    assert shares.parse_shares_text('# nothing\n\n  # here\n') == ([], [])


@pytest.mark.parametrize('line, options', [
    ('h:/e -o vers=4.1', 'vers=4.1'),
    ('h:/e -o "vers=4.1,noatime"', 'vers=4.1,noatime'),
    ("h:/e -o 'rsize=1048576,wsize=1048576'", 'rsize=1048576,wsize=1048576'),
    ('h:/e\t-o\tvers=3', 'vers=3'),
    ('h:/e', None),
])
def test_parse_option_forms(line, options):
    found, errors = shares.parse_shares_text(line + '\n')
    assert errors == []
    assert found[0].share == 'h:/e' and found[0].options == options


@pytest.mark.parametrize('line, reason', [
    ('h:/e -o', 'optionally followed by "-o options"'),
    ('h:/e -overs=4.1', 'optionally followed by "-o options"'),
    ('h:/e vers=4.1', 'optionally followed by "-o options"'),
    ('h:/e -o a b', 'optionally followed by "-o options"'),
    ('h:/e -x a', 'optionally followed by "-o options"'),
    ('not-a-share', 'is not host:/path'),
    ('host:relative', 'is not host:/path'),
    ('/only/a/path', 'is not host:/path'),
    ('h:/a/../etc', 'is not host:/path'),
    ('h:/e -o "unclosed', 'cannot be split into words'),
])
def test_parse_invalid_lines_named_by_number(line, reason):
    text = '# header\n\ngood:/one\n' + line + '\ngood:/two\n'
    found, errors = shares.parse_shares_text(text)
    assert [s.share for s in found] == ['good:/one', 'good:/two']
    assert len(errors) == 1
    lineno, raw, why = errors[0]
    assert lineno == 4 and raw == line and reason in why


def test_parse_duplicates():
    text = 'h:/e -o vers=4\nh:/e -o vers=4\nother:/x\nh:/e -o vers=3\nh:/e\n'
    found, errors = shares.parse_shares_text(text)
    assert found == [L('h:/e', 'vers=4'), L('other:/x')]
    assert [(n, 'listed again with other options (first on line 1)' in why) for n, _l, why in errors] == \
        [(4, True), (5, True)]


def test_read_shares_config_reports_every_invalid_line(tmp_path):
    path = tmp_path / 'shares'
    path.write_text('ok:/a\nbad\nok:/b -o\n')
    with pytest.raises(InvalidInput) as info:
        shares.read_shares_config(str(path))
    assert 'line 2 (bad)' in info.value.msg and 'line 3 (ok:/b -o)' in info.value.msg
    assert 'no share was touched' in info.value.msg
    assert [e['line'] for e in info.value.details['invalid_lines']] == [2, 3]


def test_read_shares_config_missing_file(tmp_path):
    with pytest.raises(InvalidInput) as info:
        shares.read_shares_config(str(tmp_path / 'absent'))
    assert 'Cannot read shares_config' in info.value.msg


# --------------------------------------------------------------------------- mount point convention

def test_mount_point_is_md5_of_share_string():
    share = '192.0.2.10:/srv/cinder'
    expected = hashlib.md5(share.encode('utf-8')).hexdigest()
    assert shares.mount_point('/var/lib/nova/mnt', share) == '/var/lib/nova/mnt/' + expected
    # a value checked by hand on a host mounted by the module
    assert shares.mount_point('/b', '127.1:/gtest') == '/b/280f111602afa31fe6002d2d9e301591'
    # the string as written: a trailing slash is another share string
    assert shares.mount_point('/b', 'h:/e') != shares.mount_point('/b', 'h:/e/')


def test_mount_point_base_must_be_absolute():
    with pytest.raises(InvalidInput):
        shares.mount_point('relative/base', 'h:/e')


def test_options_record_beside_the_mount_point():
    point = shares.mount_point('/base', 'h:/e')
    assert shares.options_record_path('/base', 'h:/e') == '/base/.%s.options' % os.path.basename(point)


# --------------------------------------------------------------------------- mount commands

def test_nfs_mount_command():
    assert shares.mount_command('192.0.2.10:/srv/cinder', 'nfs', '/mnt/x', 'vers=4.1,noatime') == \
        ['mount', '-t', 'nfs', '-o', 'vers=4.1,noatime', '192.0.2.10:/srv/cinder', '/mnt/x']


def test_nfs_mount_command_ipv6_and_no_options():
    assert shares.mount_command('[2001:db8::1]:/export', 'nfs', '/mnt/x') == \
        ['mount', '-t', 'nfs', '[2001:db8::1]:/export', '/mnt/x']


def test_glusterfs_mount_command():
    assert shares.mount_command('gluster1:/volumes', 'glusterfs', '/mnt/g',
                                'backup-volfile-servers=gluster2:gluster3') == \
        ['mount', '-t', 'glusterfs', '-o', 'backup-volfile-servers=gluster2:gluster3', 'gluster1:/volumes', '/mnt/g']


def test_mount_command_tidies_options():
    assert shares.mount_command('h:/e', 'nfs', '/m', ' vers=3 , ,nolock,') == \
        ['mount', '-t', 'nfs', '-o', 'vers=3,nolock', 'h:/e', '/m']
    assert shares.mount_command('h:/e', 'nfs', '/m', ' , ') == ['mount', '-t', 'nfs', 'h:/e', '/m']


@pytest.mark.parametrize('args', [
    ('h:/e', 'cifs', '/m', None),
    ('h:/e', 'nfs4', '/m', None),
    ('not a share', 'nfs', '/m', None),
    ('h:/e', 'nfs', 'relative', None),
    ('h:/e', 'nfs', '/m', 'vers=4 noatime'),
    ('h:/e', 'nfs', '/m', ['vers=4']),
])
def test_mount_command_refuses_bad_input(args):
    with pytest.raises(InvalidInput):
        shares.mount_command(*args)


def test_umount_command():
    assert shares.umount_command('/m') == ['umount', '/m']
    assert shares.umount_command('/m', lazy=True) == ['umount', '-l', '/m']


# --------------------------------------------------------------------------- option comparison

@pytest.mark.parametrize('first, second', [
    (None, ''),
    (None, ' , '),
    ('vers=4.1,noatime', 'noatime,vers=4.1'),
    ('vers=4.1,noatime', ' vers=4.1 , noatime ,'),
    ('a,a,b', 'b,a'),
])
def test_same_options(first, second):
    assert shares.same_options(first, second)
    assert shares.normalize_options(first) == shares.normalize_options(second)


@pytest.mark.parametrize('first, second', [
    (None, 'vers=4.1'),
    ('vers=4.1', 'vers=4.2'),
    ('log-level=WARNING', 'log-level=ERROR'),
    ('ro', 'rw'),
])
def test_different_options(first, second):
    assert not shares.same_options(first, second)


def test_join_options():
    assert shares.join_options(None) is None
    assert shares.join_options(' ,') is None
    assert shares.join_options('b, a') == 'b,a'


def test_remount_reason_from_record():
    entry = ('h:/e', 'fuse.glusterfs', 'rw,relatime')
    record = {'share': 'h:/e', 'type': 'glusterfs', 'options': 'log-level=WARNING'}
    assert shares._remount_reason(entry, record, 'glusterfs', 'log-level=WARNING') is None
    assert shares._remount_reason(entry, record, 'glusterfs', ' log-level=WARNING,') is None
    assert 'options change' in shares._remount_reason(entry, record, 'glusterfs', 'log-level=ERROR')
    assert 'options change' in shares._remount_reason(entry, record, 'glusterfs', None)
    assert 'mounted as fuse.glusterfs' in shares._remount_reason(entry, record, 'nfs', 'log-level=WARNING')


def test_remount_reason_without_record_adopts_unless_contradicted():
    rw_mount = ('h:/e', 'nfs4', 'rw,relatime,vers=4.2')
    ro_mount = ('h:/e', 'nfs', 'ro,relatime,vers=3')
    assert shares._remount_reason(rw_mount, None, 'nfs', 'vers=4.2,noatime') is None
    assert 'read-write' in shares._remount_reason(rw_mount, None, 'nfs', 'ro')
    assert 'read-only' in shares._remount_reason(ro_mount, None, 'nfs', 'rw,vers=3')
    assert shares._remount_reason(ro_mount, None, 'nfs', 'ro') is None


def test_same_source():
    assert shares.same_source('h:/e', 'h:/e')
    assert shares.same_source('h:/e/', 'h:/e')
    assert not shares.same_source('h:/e2', 'h:/e')
    assert not shares.same_source(None, 'h:/e')


# --------------------------------------------------------------------------- failure messages

def _failed(stderr, rc=32, msg='Mounting x: mount exited with 32'):
    return CommandFailed(msg, cmd=['mount'], rc=rc, stderr=stderr, stdout='')


@pytest.mark.parametrize('share_type, stderr, words', [
    ('nfs', 'mount.nfs: No such device\n', ['kernel has no NFS client', 'modprobe nfs']),
    ('nfs', 'mount: /m: bad option; for several filesystems (e.g. nfs, cifs) you might need a /sbin/mount.<type> '
            'helper program.\n', ['cannot mount nfs shares', 'nfs-common']),
    ('glusterfs', "mount: /m: unknown filesystem type 'glusterfs'.\n", ['glusterfs-client']),
    ('nfs', 'mount.nfs: access denied by server while mounting h:/e\n', ['refused access', '/etc/exports on h']),
    ('nfs', 'mount.nfs: mounting h:/e failed, reason given by server: No such file or directory\n',
     ['the server has no export /e', 'export /e on h', 'exportfs -ra']),
    ('nfs', 'mount.nfs: Connection refused\n', ['does not answer', 'rpcbind']),
    ('nfs', 'mount.nfs: Connection timed out\n', ['does not answer']),
    ('nfs', 'mount: only root can do that\n', ['become: true']),
    ('nfs', 'mount.nfs: an incorrect mount option was specified\n', ['showmount -e h', 'incorrect mount option']),
])
def test_mount_failure_names_share_cause_and_fix(share_type, stderr, words):
    err = shares.mount_failure('h:/e', share_type, '/m', _failed(stderr))
    assert isinstance(err, CommandFailed)
    assert err.msg.startswith('Cannot mount %s share h:/e at /m: ' % share_type)
    assert 'Fix: ' in err.msg
    for word in words:
        assert word in err.msg
    fail = err.to_fail()
    assert fail['cmd'] == ['mount'] and fail['rc'] == 32 and fail['stderr'] == stderr and fail['share'] == 'h:/e'


def test_gluster_mount_failure_quotes_the_client_log(tmp_path, monkeypatch):
    log = tmp_path / 'client.log'
    log.write_text('[t] I [x] 0-fuse: fine\n[t] E [glusterfsd-mgmt.c:2371:mgmt_getspec_cbk] 0-mgmt: failed to fetch '
                   'volume file (key:/vol)\n')
    monkeypatch.setattr(shares, 'gluster_client_log', lambda point: str(log))
    err = shares.mount_failure('g1:/vol', 'glusterfs', '/m', _failed('Mounting glusterfs on /m failed.\n', rc=1))
    assert 'failed to fetch volume file (key:/vol)' in err.msg
    assert 'is glusterd running on g1' in err.msg and 'gluster volume status vol' in err.msg
    assert err.details['client_log'] == str(log)
    assert len(err.details['client_log_errors']) == 1


def test_gluster_client_log_name():
    assert shares.gluster_client_log('/var/lib/blockyard/mnt/abc') == '/var/log/glusterfs/var-lib-blockyard-mnt-abc.log'


def test_missing_mount_binary():
    exc = CommandFailed('Mounting x: cannot run mount: [Errno 2] No such file', cmd=['mount'], rc=None)
    err = shares.mount_failure('h:/e', 'glusterfs', '/m', exc)
    assert 'cannot run' in err.msg and 'glusterfs-client' in err.msg


def test_umount_failure_busy():
    err = shares.umount_failure('h:/e', '/m', _failed('umount: /m: target is busy.\n'))
    assert 'in use' in err.msg and 'fuser -vm /m' in err.msg and err.details['rc'] == 32


# --------------------------------------------------------------------------- plans (check mode, real dirs)

def _params(base, **kw):
    params = dict(share=None, type=None, options=None, mount_point_base=str(base), state='mounted',
                  shares_config=None, check_writable=False)
    params.update(kw)
    return params


def test_check_mode_mount_plans_and_creates_nothing(tmp_path):
    base = tmp_path / 'mnt'
    changed, result, _diff = shares.ensure_shares(
        _params(base, share='192.0.2.10:/srv/cinder', type='nfs', options='vers=4.1', check_writable=True), True)
    point = shares.mount_point(str(base), '192.0.2.10:/srv/cinder')
    assert changed
    assert result['actions'] == [
        'create mount point %s' % point,
        'mount -t nfs -o vers=4.1 192.0.2.10:/srv/cinder %s' % point,
        'record the mount options (vers=4.1) in %s' % shares.options_record_path(str(base), '192.0.2.10:/srv/cinder'),
    ]
    assert result['mount_point'] == point and result['capacity'] is None and 'writable' not in result
    assert result['diff']['before'] == {'state': 'unmounted'}
    assert result['diff']['after']['state'] == 'mounted' and result['diff']['after']['fstype'] == 'nfs'
    assert set(['share', 'type', 'options', 'mount_point', 'capacity', 'actions', 'diff']) <= set(result)
    assert not base.exists()


def test_check_mode_mount_with_existing_empty_dir(tmp_path):
    base = tmp_path / 'mnt'
    point = shares.mount_point(str(base), 'h:/e')
    os.makedirs(point)
    changed, result, _diff = shares.ensure_shares(_params(base, share='h:/e', type='glusterfs'), True)
    assert changed and result['actions'][0] == 'mount -t glusterfs h:/e %s' % point


def test_mount_point_that_is_a_file_is_a_conflict(tmp_path):
    base = tmp_path / 'mnt'
    base.mkdir()
    with open(shares.mount_point(str(base), 'h:/e'), 'w'):
        pass
    with pytest.raises(Conflict):
        shares.ensure_shares(_params(base, share='h:/e', type='nfs'), True)


def test_unmounted_cleans_mount_point_and_record(tmp_path):
    base = tmp_path / 'mnt'
    point = shares.mount_point(str(base), 'h:/e')
    os.makedirs(point)
    record = shares.options_record_path(str(base), 'h:/e')
    with open(record, 'w') as handle:
        json.dump({'share': 'h:/e', 'type': 'nfs', 'options': 'vers=3'}, handle)
    params = _params(base, share='h:/e', state='unmounted')
    changed, result, _diff = shares.ensure_shares(params, True)
    assert changed and result['actions'] == ['remove mount point %s' % point,
                                             'remove the options record %s' % record]
    assert result['type'] == 'nfs'
    assert os.path.isdir(point) and os.path.exists(record)      # check mode
    changed, result, _diff = shares.ensure_shares(params, False)
    assert changed and not os.path.exists(point) and not os.path.exists(record)
    changed, result, _diff = shares.ensure_shares(params, False)
    assert not changed and result['actions'] == []


def test_unmounted_leaves_a_non_empty_directory(tmp_path):
    base = tmp_path / 'mnt'
    point = shares.mount_point(str(base), 'h:/e')
    os.makedirs(point)
    with open(os.path.join(point, 'data'), 'w'):
        pass
    changed, result, _diff = shares.ensure_shares(_params(base, share='h:/e', state='unmounted'), False)
    assert not changed and os.path.exists(os.path.join(point, 'data'))
    assert 'not empty' in result['warnings'][0]


def test_corrupt_options_record(tmp_path):
    base = tmp_path / 'mnt'
    base.mkdir()
    with open(shares.options_record_path(str(base), 'h:/e'), 'w') as handle:
        handle.write('garbage')
    with pytest.raises(StorageError) as info:
        shares.ensure_shares(_params(base, share='h:/e', type='nfs'), True)
    assert 'remove it and re-run' in info.value.msg


def test_shares_config_check_mode(tmp_path):
    base = tmp_path / 'mnt'
    conf = tmp_path / 'shares'
    conf.write_text('# two shares\n\nh1:/a -o vers=3\nh2:/b\nh1:/a -o vers=3\n')
    changed, result, _diff = shares.ensure_shares(
        _params(base, shares_config=str(conf), type='nfs', options='vers=4.2'), True)
    assert changed
    assert [(r['share'], r['line'], r['options']) for r in result['shares']] == \
        [('h1:/a', 3, 'vers=3'), ('h2:/b', 4, 'vers=4.2')]
    assert result['actions'][1].startswith('h1:/a: mount -t nfs -o vers=3 h1:/a ')
    assert result['actions'][4].startswith('h2:/b: mount -t nfs -o vers=4.2 h2:/b ')
    assert sorted(result['diff']['after']) == ['h1:/a', 'h2:/b']
    assert not base.exists()


def test_shares_config_with_invalid_line_touches_nothing(tmp_path):
    base = tmp_path / 'mnt'
    conf = tmp_path / 'shares'
    conf.write_text('h1:/a\nh2:/b -o\n')
    with pytest.raises(InvalidInput) as info:
        shares.ensure_shares(_params(base, shares_config=str(conf), type='nfs'), False)
    assert 'line 2' in info.value.msg
    assert not base.exists()


def test_shares_config_with_bad_options_touches_nothing(tmp_path):
    base = tmp_path / 'mnt'
    conf = tmp_path / 'shares'
    conf.write_text('h1:/a\nh2:/b -o "vers=3 nolock"\n')
    with pytest.raises(InvalidInput):
        shares.ensure_shares(_params(base, shares_config=str(conf), type='nfs'), False)
    assert not base.exists()


@pytest.mark.parametrize('kw, words', [
    (dict(share='h:/e', shares_config='/x', type='nfs'), 'mutually exclusive'),
    (dict(share='h:/e'), 'type is required'),
    (dict(share='h:/e', type='smb'), 'not supported'),
    (dict(type='nfs'), 'Give share'),
    (dict(share='bad', type='nfs'), 'host:/path'),
    (dict(share='h:/e', type='nfs', options='a b'), 'whitespace'),
])
def test_bad_parameters(tmp_path, kw, words):
    with pytest.raises(InvalidInput) as info:
        shares.ensure_shares(_params(tmp_path, **kw), True)
    assert words in info.value.msg


def test_relative_base(tmp_path):
    with pytest.raises(InvalidInput):
        shares.ensure_shares(_params('rel', share='h:/e', type='nfs'), True)


# --------------------------------------------------------------------------- local helpers

def test_capacity_and_staleness_of_a_local_directory(tmp_path):
    assert shares.is_stale(str(tmp_path)) is False
    cap = shares.capacity(str(tmp_path))
    assert cap['total_bytes'] > 0 and 0 <= cap['free_bytes'] <= cap['total_bytes']


def test_writable_test(tmp_path):
    assert shares.writable_test('h:/e', str(tmp_path)) is True
    assert os.listdir(str(tmp_path)) == []
    with pytest.raises(StorageError) as info:
        shares.writable_test('h:/e', str(tmp_path / 'absent'))
    assert 'not writable' in info.value.msg and 'root_squash' in info.value.msg


def test_mounts_parses_proc():
    table = shares.mounts()
    assert '/' in table
    source, fstype, options = table['/']
    assert fstype and options
