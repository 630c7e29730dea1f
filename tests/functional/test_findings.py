# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Findings of the file-backend hardening review (issue 7) that the
adversarial, fault and Cinder interop suites do not already hold: each test
failed before its fix. Real files, real qemu-img, no mocks."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import stat
import subprocess
import time

import pytest

import snapchain as sc
from ansible_collections.blockyard.storage.plugins.module_utils import qcow2, volumes
from ansible_collections.blockyard.storage.plugins.module_utils.errors import (
    Conflict, InvalidInput, StorageError, UnsafeImage)

MIB = 1024 * 1024


def files(directory):
    """The files of a directory but lock files (they stay with their volume)."""
    return sorted(f for f in os.listdir(directory) if not f.endswith('.lock'))


def write_journal(directory, vol, journal):
    with open(os.path.join(directory, 'volume-%s.journal' % vol), 'w') as handle:
        json.dump(journal, handle)


def two_snapshots(directory, vol='V'):
    timeline = sc.Timeline()
    sc.volume(directory, vol, size='4M')
    timeline.write(*sc.active_view(directory, vol))
    sc.snapshot(directory, vol, 's1')
    timeline.write(*sc.active_view(directory, vol))
    sc.snapshot(directory, vol, 's2')
    timeline.write(*sc.active_view(directory, vol))
    return timeline


@pytest.fixture
def immutable():
    """chattr +i for the length of a test, always undone."""
    done = []

    def make(path):
        subprocess.check_call(['chattr', '+i', path])
        done.append(path)
    yield make
    for path in done:
        subprocess.call(['chattr', '-i', path])


# ------------------------------------------------------------------ leftovers
def test_leftover_meta_and_lock_are_not_a_volume(vdir):
    """After Cinder's delete_volume, our .meta and .lock stay behind: that is
    no volume (not listed, not provisioned), and absent removes them."""
    sc.volume(vdir, 'ghost', size='4M')
    os.unlink(os.path.join(vdir, 'volume-ghost'))
    open(os.path.join(vdir, 'volume-ghost.lock'), 'w').close()
    listing = volumes.volume_info(dict(sc.LOCATION, volume_dir=vdir))[1]
    assert listing['volumes'] == [] and listing['capacity']['provisioned_bytes'] == 0
    changed, result, _diff = sc.volume(vdir, 'ghost', state='absent')
    assert changed and 'leftover' in ' '.join(result['actions'])
    assert files(vdir) == []
    assert sc.volume(vdir, 'ghost', state='absent')[0] is False


def test_hidden_leftovers_are_counted_and_cleaned(vdir):
    """Temp files of atomic writes and the part file of an abandoned copy are
    counted in capacity and removed by the next task on the volume."""
    sc.volume(vdir, 'V', size='4M')
    for name in ('.volume-V.info.abcd1234.tmp', '.volume-V.part'):
        with open(os.path.join(vdir, name), 'wb') as handle:
            handle.write(b'x' * 65536)
    cap = volumes.volume_info(dict(sc.LOCATION, volume_dir=vdir))[1]['capacity']
    assert cap['allocated_bytes'] >= 2 * 65536
    changed, result, _diff = sc.volume(vdir, 'V', size='4M')
    assert changed and 'leftover' in ' '.join(result['actions'])
    assert files(vdir) == ['volume-V', 'volume-V.meta']


# ------------------------------------------------------------------ journals
def test_stale_journal_is_discarded_with_a_warning(vdir):
    """An interrupted delete whose chain another tool changed meanwhile is
    not replayed forever: the journal goes, with a warning."""
    timeline = two_snapshots(vdir)
    # as if a delete of s1 was interrupted, and then the chain changed (s1 now
    # maps to another file)
    write_journal(vdir, 'V', {'op': 'snapshot_delete', 'snapshot': 's1', 'file': 'volume-V.s2', 'mode': 'middle',
                              'base': 'volume-V', 'base_format': 'raw', 'upper': 'volume-V.s2'})
    changed, result, _diff = sc.snapshot(vdir, 'V', 's3')
    assert any('Discarded the journal' in w for w in result['warnings']), result
    assert not os.path.exists(os.path.join(vdir, 'volume-V.journal'))
    sc.snapshot(vdir, 'V', 's3', state='absent')
    sc.check_volume_state(vdir, 'V', timeline, [('s1', 1), ('s2', 2)])


def test_extend_journal_never_grows_the_volume(vdir):
    """A journal claiming an extension to 1 TiB does not make the next run
    grow (or fill the disk with) the volume."""
    sc.volume(vdir, 'V', size='4M', provisioning='thick')
    write_journal(vdir, 'V', {'op': 'extend', 'from': 4 * MIB, 'size': 2 ** 40, 'file': 'volume-V',
                              'format': 'raw'})
    sc.volume(vdir, 'V', size='4M')
    assert os.path.getsize(os.path.join(vdir, 'volume-V')) == 4 * MIB
    assert sc.info_of(vdir, 'V')['size_bytes'] == 4 * MIB


def test_a_delete_that_changed_nothing_leaves_no_journal(vdir, immutable):
    """A commit that cannot open its base fails before writing anything: no
    journal is left to block every later task, the error names the file."""
    timeline = two_snapshots(vdir)
    immutable(os.path.join(vdir, 'volume-V'))
    with pytest.raises(StorageError) as err:
        sc.snapshot(vdir, 'V', 's1', state='absent')
    assert 'volume-V' in err.value.msg and 'This is a bug' not in err.value.msg
    assert not os.path.exists(os.path.join(vdir, 'volume-V.journal'))
    sc.snapshot(vdir, 'V', 's3')     # other tasks go on
    sc.snapshot(vdir, 'V', 's3', state='absent')
    subprocess.check_call(['chattr', '-i', os.path.join(vdir, 'volume-V')])
    sc.snapshot(vdir, 'V', 's1', state='absent')
    sc.check_volume_state(vdir, 'V', timeline, [('s2', 2)])


def test_a_pending_operation_is_named_in_every_error_it_causes(vdir, immutable):
    timeline = two_snapshots(vdir)
    # interrupted after its journal was written: completing it needs the base
    write_journal(vdir, 'V', {'op': 'snapshot_delete', 'snapshot': 's1', 'file': 'volume-V.s1', 'mode': 'middle',
                              'base': 'volume-V', 'base_format': 'raw', 'upper': 'volume-V.s2'})
    info = sc.info_of(vdir, 'V')
    assert info['pending_operation']['op'] == 'snapshot_delete'
    assert info['pending_operation']['journal'] == 'volume-V.journal'
    assert [(s['name'], s['pending']) for s in info['snapshots']] == [('s1', True), ('s2', False)]
    immutable(os.path.join(vdir, 'volume-V'))
    for call in (lambda: sc.snapshot(vdir, 'V', 's3'), lambda: sc.volume(vdir, 'V', size='8M')):
        with pytest.raises(StorageError) as err:
            call()
        assert 'An interrupted snapshot delete of volume V' in err.value.msg
        assert 'must be completed first' in err.value.msg
    subprocess.check_call(['chattr', '-i', os.path.join(vdir, 'volume-V')])
    sc.snapshot(vdir, 'V', 's3')
    assert sc.info_of(vdir, 'V')['pending_operation'] is None
    sc.snapshot(vdir, 'V', 's3', state='absent')
    sc.check_volume_state(vdir, 'V', timeline, [('s2', 2)])


def test_corrupt_journal_blocks_neither_listing_nor_forced_delete(vdir):
    sc.volume(vdir, 'V', size='4M')
    sc.volume(vdir, 'W', size='4M')
    with open(os.path.join(vdir, 'volume-V.journal'), 'w') as handle:
        handle.write('')
    with pytest.raises(StorageError) as err:
        sc.snapshot(vdir, 'V', 's1')
    assert 'volume-V.journal' in err.value.msg and 'remove the journal by hand' in err.value.msg
    assert 'from the chain' not in err.value.msg
    listing = volumes.volume_info(dict(sc.LOCATION, volume_dir=vdir))[1]['volumes_by_name']
    assert 'error' in listing['V']['pending_operation'] and 'error' not in listing['W']
    changed, result, _diff = sc.volume(vdir, 'V', state='absent', force=True)
    assert changed and any('invalid journal' in w for w in result['warnings'])
    assert files(vdir) == ['volume-W', 'volume-W.meta']


# ------------------------------------------------------------------ smaller wrong results
def test_revert_after_an_extend_is_idempotent(vdir):
    sc.volume(vdir, 'V', size='4M')
    sc.snapshot(vdir, 'V', 's1')
    sc.volume(vdir, 'V', size='8M')
    assert sc.snapshot(vdir, 'V', 's1', state='reverted')[0] is False
    sc.write_patterns(os.path.join(vdir, 'volume-V.s1'), 'qcow2', [(0x42, 0, 65536)])
    changed, _result, diff = sc.snapshot(vdir, 'V', 's1', state='reverted')
    assert changed and diff['after']['data_since_snapshot'] == 'discarded'
    assert sc.snapshot(vdir, 'V', 's1', state='reverted')[0] is False


@pytest.mark.parametrize('src_fmt', [None, 'raw'])
def test_an_image_of_odd_size_makes_a_usable_volume(vdir, tmp_path, src_fmt):
    """An image whose size is not whole sectors is padded, so that its first
    snapshot works; source_image_format raw on a qcow2 file copies the file
    as data and leaves a usable volume."""
    image = str(tmp_path / 'odd.img')
    if src_fmt == 'raw':
        subprocess.check_call(['qemu-img', 'create', '-q', '-f', 'qcow2', image, '1M'])
    else:
        with open(image, 'wb') as handle:
            handle.write(b'\x5a' * 1000)
    size = os.path.getsize(image)
    sc.volume(vdir, 'I', source_image=image, source_image_format=src_fmt, size=None)
    desc = sc.info_of(vdir, 'I')
    assert desc['size_bytes'] == (size + 511) // 512 * 512
    sc.snapshot(vdir, 'I', 's1')
    sc.snapshot(vdir, 'I', 's1', state='absent')
    with open(os.path.join(vdir, 'volume-I'), 'rb') as handle, open(image, 'rb') as src:
        assert handle.read(size) == src.read()


def test_check_mode_refuses_an_unknown_owner(vdir):
    with pytest.raises(InvalidInput) as err:
        sc.volume(vdir, 'V', size='4M', owner='no-such-user-blockyard', check_mode=True)
    assert 'no-such-user-blockyard' in err.value.msg
    assert files(vdir) == []


def test_diff_shows_ownership_and_adoption(vdir):
    sc.volume(vdir, 'V', size='4M')
    changed, _result, diff = sc.volume(vdir, 'V', mode='0640')
    assert changed and diff['after']['ownership_set'] == ['volume-V']
    # a Cinder volume: a file with no record
    with open(os.path.join(vdir, 'volume-C'), 'wb') as handle:
        handle.truncate(4 * MIB)
    changed, _result, diff = sc.volume(vdir, 'C', format='raw', mode=None)
    assert changed and diff['before']['managed'] is False and diff['after']['managed'] is True


def test_snapshots_are_listed_oldest_first(vdir):
    sc.volume(vdir, 'V', size='4M')
    for snap in ('zulu', 'alpha', 'mike'):
        sc.snapshot(vdir, 'V', snap)
    assert [s['name'] for s in sc.info_of(vdir, 'V')['snapshots']] == ['zulu', 'alpha', 'mike']


@pytest.mark.parametrize('length', [40, 200])
def test_long_clone_names(vdir, length):
    """The temporary snapshot of a clone is named after the clone; a long name
    must not fail with a message about a snapshot the user never named."""
    src, dest = 's' * length, 'd' * length
    sc.volume(vdir, src, size='4M')
    sc.snapshot(vdir, src, 'keep')       # an overlay: the clone needs a temporary snapshot
    sc.volume(vdir, dest, source_volume=src)
    assert sc.info_of(vdir, dest)['size_bytes'] == 4 * MIB
    assert sorted(sc.read_info(vdir, src)) == ['active', 'keep']


def test_volume_info_for_one_name_reads_one_volume(vdir, monkeypatch):
    for name in ('a', 'b', 'c'):
        sc.volume(vdir, name, size='4M')
    walks = []
    real = qcow2.walk_chain
    monkeypatch.setattr(qcow2, 'walk_chain', lambda *a, **k: walks.append(a[0]) or real(*a, **k))
    result = volumes.volume_info(dict(sc.LOCATION, volume_dir=vdir, name='b'))[1]
    assert result['volume']['name'] == 'b' and walks == [os.path.join(vdir, 'volume-b')]
    assert result['capacity']['provisioned_bytes'] is None and result['capacity']['total_bytes'] > 0


def test_volume_info_format_needs_a_name(vdir):
    with pytest.raises(InvalidInput) as err:
        volumes.volume_info(dict(sc.LOCATION, volume_dir=vdir, format='qcow2'))
    assert 'name' in err.value.msg


def test_placement_limits_apply_to_a_single_location(vdir):
    with pytest.raises(Conflict) as err:
        sc.volume(vdir, 'big', size='1000T', max_over_subscription_ratio=1.0)
    assert 'ratio' in err.value.msg
    for bad in (dict(max_over_subscription_ratio=0), dict(max_over_subscription_ratio=-1.0),
                dict(reserved_percentage=150), dict(reserved_percentage=-5)):
        with pytest.raises(InvalidInput):
            sc.volume(vdir, 'v', size='4M', **bad)
    assert files(vdir) == []


# ------------------------------------------------------------------ a guest holds the volume
def test_a_failed_clone_leaves_the_source_as_it_was(vdir):
    """A running guest holds the active overlay: the copy fails, the error
    quotes qemu-img's lock message, and the source's .info and files are
    exactly as before (no temporary snapshot left in its map)."""
    sc.volume(vdir, 'V', size='4M')
    sc.snapshot(vdir, 'V', 's1')
    active = os.path.join(vdir, 'volume-V.s1')
    before = sc.fingerprint(vdir)
    guest = subprocess.Popen(['qemu-io', '-f', 'qcow2', active], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        with pytest.raises(StorageError) as err:
            sc.volume(vdir, 'W', source_volume='V')
    finally:
        guest.communicate(b'quit\n', timeout=10)
    assert 'write" lock' in err.value.msg, err.value.msg
    after = sc.fingerprint(vdir)
    assert dict((k, v) for k, v in after.items() if not k.endswith('volume-V.lock')) == \
        dict((k, v) for k, v in before.items() if not k.endswith('volume-V.lock'))
    assert sc.read_info(vdir, 'V') == {'active': 'volume-V.s1', 's1': 'volume-V.s1'}


# ------------------------------------------------------------------ beside Cinder
def test_adoption_has_one_path_per_volume(vdir):
    """A Cinder qcow2 volume (no record) is refused with the adoption task
    named; a Cinder volume with snapshots takes its base format from its
    overlays; volume_info never applies one format to a whole directory."""
    subprocess.check_call(['qemu-img', 'create', '-q', '-f', 'qcow2', os.path.join(vdir, 'volume-q'), '4M'])
    subprocess.check_call(['qemu-img', 'create', '-q', '-f', 'qcow2', os.path.join(vdir, 'volume-r'), '4M'])
    subprocess.check_call(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', 'volume-r', '-F', 'qcow2',
                           os.path.join(vdir, 'volume-r.s1')])
    with open(os.path.join(vdir, 'volume-r.info'), 'w') as handle:
        handle.write(sc.cinder_info({'active': 'volume-r.s1', 's1': 'volume-r.s1'}).decode())
    listing = volumes.volume_info(dict(sc.LOCATION, volume_dir=vdir))[1]['volumes_by_name']
    assert 'format=qcow2' in listing['q']['error']
    assert listing['r']['format'] == 'qcow2' and listing['r']['managed'] is False
    with pytest.raises(UnsafeImage):
        sc.snapshot(vdir, 'q', 's1')
    sc.volume(vdir, 'q', format='qcow2', mode=None)
    sc.snapshot(vdir, 'q', 's1')
    sc.snapshot(vdir, 'r', 's2')
    sc.snapshot(vdir, 'r', 's1', state='absent')
    assert sc.read_info(vdir, 'r') == {'active': 'volume-r.s2', 's2': 'volume-r.s2'}


def test_a_size_grown_by_another_tool_is_reconcilable(vdir):
    """Cinder snapshots a 64 MiB volume with a whole-GiB overlay: refused
    with the way out named, and restating size adopts it."""
    sc.volume(vdir, 'V', size='64M')
    subprocess.check_call(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', 'volume-V', '-F', 'raw',
                           os.path.join(vdir, 'volume-V.c1'), '1G'])
    with open(os.path.join(vdir, 'volume-V.info'), 'w') as handle:
        handle.write(sc.cinder_info({'active': 'volume-V.c1', 'c1': 'volume-V.c1'}).decode())
    with pytest.raises(UnsafeImage) as err:
        sc.snapshot(vdir, 'V', 's2')
    assert 'size: 1G' in err.value.msg
    with pytest.raises(StorageError):
        sc.volume(vdir, 'V', size='512M')
    changed, result, _diff = sc.volume(vdir, 'V', size='1G')
    assert changed and any('adopting the larger size' in w for w in result['warnings'])
    assert sc.info_of(vdir, 'V')['size_bytes'] == 1024 * MIB
    assert sc.volume(vdir, 'V', size='1G')[0] is False
    sc.snapshot(vdir, 'V', 's2')


def test_standalone_qcow2_after_an_online_delete(vdir):
    """Nova deleted the only snapshot of an attached volume: the overlay is a
    standalone qcow2 and the base file is gone. It is a volume like another."""
    timeline = sc.Timeline()
    sc.volume(vdir, 'V', size='4M')
    timeline.write(*sc.active_view(vdir, 'V'))
    sc.snapshot(vdir, 'V', 's1')
    timeline.write(*sc.active_view(vdir, 'V'))
    overlay = os.path.join(vdir, 'volume-V.s1')
    # what libvirt's blockRebase (pull) leaves: the overlay holds everything
    subprocess.check_call(['qemu-img', 'rebase', '-q', '-f', 'qcow2', '-b', '', overlay])
    os.unlink(os.path.join(vdir, 'volume-V'))
    with open(os.path.join(vdir, 'volume-V.info'), 'w') as handle:
        handle.write(sc.cinder_info({'active': 'volume-V.s1'}).decode())
    desc = sc.info_of(vdir, 'V')
    assert desc['format'] == 'qcow2' and desc['snapshots'] == [] and desc['details']['active_file'] == 'volume-V.s1'
    assert not sc.pattern_problems(overlay, 'qcow2', timeline.expectations(2))
    sc.snapshot(vdir, 'V', 's2')
    timeline.write(*sc.active_view(vdir, 'V'))
    sc.volume(vdir, 'W', source_volume='V', source_snapshot='s2')
    assert not sc.pattern_problems(os.path.join(vdir, 'volume-W'), 'raw', timeline.expectations(2))
    sc.snapshot(vdir, 'V', 's2', state='absent')
    assert sc.read_info(vdir, 'V') == {'active': 'volume-V.s1'}
    assert not sc.pattern_problems(overlay, 'qcow2', timeline.expectations(3))
    sc.volume(vdir, 'V', state='absent')
    assert files(vdir) == ['volume-W', 'volume-W.meta']


def test_ownership_is_kept_unless_given(vdir):
    """Cinder's files are 0666 and its .info belongs to cinder-volume's user:
    adoption, snapshots and reverts keep that, so both tools keep working."""
    base = os.path.join(vdir, 'volume-C')
    with open(base, 'wb') as handle:
        handle.truncate(4 * MIB)
    os.chmod(base, 0o666)
    os.chown(base, 65534, 65534)
    sc.volume(vdir, 'C', format='raw', mode=None)
    sc.snapshot(vdir, 'C', 's1')
    info = os.path.join(vdir, 'volume-C.info')
    os.chown(info, 65534, 65534)
    os.chmod(info, 0o666)
    sc.snapshot(vdir, 'C', 's2')
    sc.write_patterns(os.path.join(vdir, 'volume-C.s2'), 'qcow2', [(0x42, 0, 65536)])
    sc.snapshot(vdir, 'C', 's2', state='reverted')
    sc.snapshot(vdir, 'C', 's1', state='absent')
    for name in ('volume-C', 'volume-C.s2', 'volume-C.info'):
        st = os.stat(os.path.join(vdir, name))
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o666), name


def test_an_extension_keeps_the_recorded_provisioning(vdir):
    """provisioning=thin on a thick volume is ignored with a warning: the
    extension is allocated like the rest of the volume."""
    sc.volume(vdir, 'T', size='4M', provisioning='thick')
    changed, result, _diff = sc.volume(vdir, 'T', size='8M', provisioning='thin')
    assert changed and any('ignored' in w for w in result['warnings'])
    st = os.stat(os.path.join(vdir, 'volume-T'))
    assert st.st_size == 8 * MIB and st.st_blocks * 512 >= 8 * MIB
    assert sc.info_of(vdir, 'T')['provisioning'] == 'thick'
