# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Adversarial corpus (issue 7): for each hostile setup of a volume
directory, every entry point and state of the core, also in check mode.

Threat model (docs: DESIGN.md, Threat model): whoever can write into the
volume directory must not make a module read, write, create, chmod or delete
anything outside the volume's own files, nor touch another volume.

Every case runs in a forked child with a timeout (a FIFO must not block; a
child sleeping on a FIFO is noticed at once through /proc/<pid>/wchan) and
checks, against a manifest of the whole case tree taken before the call:

1. everything outside the target volume's own names is identical afterwards
   (the canary beside the directory, the canary directory and its file, the
   source image, another location, every other volume's files: type, mode,
   owner, content, mtime; no new file anywhere);
2. the target's own files change only as the operation legitimately changes
   them (a refused operation changes nothing; a successful one keeps the
   data: every point in time is read back with qemu-io);
3. an error is a StorageError subclass (never "Unexpected error"), names the
   volume or the offending file, and says what to do;
4. nothing hangs;
5. a listing shows every other volume exactly as in the pristine tree, no
   phantom volume, and the broken one with an `error`.

Own names of volume V (issue 7 spec): volume-V, volume-V.<name> (overlays and
sidecars, <name> without a dot), the hidden .volume-V.part,
.volume-V.<...>.tmp and .volume-V.<snap>.revert. A directory named like an
own name is never removed with its content.

Expectations where the spec is silent (what an operator would expect):
- a refusal in a real run is also a refusal in check mode (check mode tells
  the truth), including a symlinked, dangling or FIFO lock file;
- `force` delete of a volume with a hostile link, FIFO or directory may
  either refuse or remove the volume's own names (never what they point at,
  never a directory's content); with a hostile .meta or journal it must work
  (issue 7: force works on a broken .meta; a corrupt journal does not block
  force delete);
- volume_info by name of a broken volume may raise a clear error or return
  the volume with `error`; with a hostile journal it must return the volume
  (flagged by `error` or `pending_operation`);
- a journal whose fields are all well-formed but whose premises do not hold
  (a clone journal naming an existing volume of the same directory, an
  extend journal with a huge size) may be refused or discarded, but never
  acted on: the other volume stays, the volume never grows;
- a leftover .meta/.lock (ghost) is no volume: create makes a new one over
  it, absent removes the leftovers (changed), snapshot absent is a no-op or
  not-found;
- calls pass no owner/group/mode (the module defaults once ownership is
  enforced only when given).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import shutil
import tempfile

import pytest

import adversary as adv
import snapchain as sc
from ansible_collections.blockyard.storage.plugins.module_utils import volumes

TIMEOUT = float(os.environ.get('BLOCKYARD_ADVERSARIAL_TIMEOUT', '30'))
VOLS = adv.VOLS
FRESH = 'fresh'          # the destination of the copies
SOURCE = 'db'            # the source of a copy into the target (clone-into)
S1, S2 = 's1', 's2'


# ------------------------------------------------------------------ the case tree
@pytest.fixture(scope='module')
def pristine(fast_root):
    """(template root, header bytes, reference listing {name: normalized})."""
    root = os.path.join(fast_root, 'pristine')
    os.mkdir(root)
    vdir = adv.build_template(root)
    header = adv.qcow2_header_with_backing(os.path.join(fast_root, 'guest-header.qcow2'), '/etc/shadow')
    journals = adv.capture_journals(root, fast_root)
    reference = dict((v['name'], adv.normalized(v)) for v in adv.listing(vdir)['volumes'])
    assert sorted(reference) == ['b', 'c', 'cin', 'db', 'keep', 'plain', 'qc', 'victim'], sorted(reference)
    assert not [v for v in reference.values() if v['error']], reference
    return {'root': root, 'header': header, 'reference': reference, 'scratch': fast_root, 'journals': journals,
            'digests': adv.pristine_digests(root)}


class Ctx(object):
    def __init__(self, root, pristine):
        self.root = root
        self.vdir = os.path.join(root, VOLS)
        self.header = pristine['header']
        self.journals = pristine['journals']

    def v(self, name):
        return os.path.join(self.vdir, name)

    def out(self, *parts):
        return os.path.join(self.root, *parts)


# ------------------------------------------------------------------ tampering
def moved_outside(ctx, name):
    """Move a file of the directory to the canary directory (its content is
    then outside) and return the new path."""
    dest = ctx.out(adv.CANARY_DIR, 'moved-' + name)
    os.rename(ctx.v(name), dest)
    return dest


def symlink_to_moved(name):
    def tamper(ctx):
        os.symlink(moved_outside(ctx, name), ctx.v(name))
    return tamper


def symlink_to(name, rel_target, content=None):
    def tamper(ctx):
        target = ctx.out(*rel_target.split('/'))
        if content is not None:
            with open(target, 'wb') as handle:
                handle.write(content)
        if os.path.lexists(ctx.v(name)):
            os.unlink(ctx.v(name))
        os.symlink(target, ctx.v(name))
    return tamper


def dangling(name):
    """A symlink to a file that does not exist in the canary directory: it
    must not be created."""
    def tamper(ctx):
        if os.path.lexists(ctx.v(name)):
            os.unlink(ctx.v(name))
        os.symlink(ctx.out(adv.CANARY_DIR, 'dangling-' + name), ctx.v(name))
    return tamper


def hard_link(name):
    def tamper(ctx):
        os.link(ctx.v(name), ctx.out(adv.CANARY_DIR, 'hardlink-' + name))
    return tamper


def fifo(name):
    def tamper(ctx):
        if os.path.lexists(ctx.v(name)):
            os.unlink(ctx.v(name))
        os.mkfifo(ctx.v(name), 0o600)
    return tamper


def directory(name, remove=()):
    def tamper(ctx):
        for other in remove:
            os.unlink(ctx.v(other))
        if os.path.lexists(ctx.v(name)):
            os.unlink(ctx.v(name))
        os.mkdir(ctx.v(name), 0o755)
        with open(os.path.join(ctx.v(name), 'inside'), 'wb') as handle:
            handle.write(b'a file inside a directory named like a volume file\n')
    return tamper


def write_file(name, data):
    """data: bytes, or a function of the context returning a JSON value."""
    def tamper(ctx):
        value = data(ctx) if callable(data) else data
        raw = value if isinstance(value, bytes) else json.dumps(value).encode('utf-8')
        if os.path.lexists(ctx.v(name)):
            os.unlink(ctx.v(name))
        with open(ctx.v(name), 'wb') as handle:
            handle.write(raw)
    return tamper


def journal(data):
    return write_file('volume-victim.journal', data)


def real_journal(kind, source, index, *mutations):
    """The index-th state of the journal file `source` that the core itself
    wrote during `kind` (adversary.capture_journals), changed by mutations
    (functions of the context returning a function of a JSON leaf), as the
    journal of victim."""
    def tamper(ctx):
        states = [data for entry, data in ctx.journals[kind] if entry == source]
        assert len(states) > index, 'the core wrote no journal %s (state %d) during %s: %r' % (
            source, index, kind, ctx.journals[kind])
        data = adv.fill(states[index], ctx.root, ctx.vdir)
        for mutation in mutations:
            before = data
            data = adv.mutate(data, mutation(ctx))
            # a case whose mutation changes nothing tests nothing: fail, never skip
            assert data != before, ('the journal this core writes during %s has no field to make hostile here '
                                    '(drop or adapt the case): %r' % (kind, before))
        journal(data)(ctx)
    return tamper


def leaf_is(old, new):
    """Replace every leaf equal to old (same type) by new (a value, or a
    function of the context)."""
    def mutation(ctx):
        value = new(ctx) if callable(new) else new
        return lambda leaf: value if (type(leaf) is type(old) and leaf == old) else leaf
    return mutation


def substring(old, new):
    return lambda ctx: (lambda leaf: leaf.replace(old, new) if isinstance(leaf, str) else leaf)


def meta(data):
    return write_file('volume-victim.meta', data)


def info(data):
    return write_file('volume-victim.info', lambda ctx: sc.cinder_info(data(ctx) if callable(data) else data))


def guest_header(vol, fifo_backing=False):
    """Write the first cluster of a qcow2 image into the raw base of vol,
    backed by /etc/shadow, or by a FIFO in the canary directory: whatever
    follows that backing file blocks there (and is noticed as a hang)."""
    def tamper(ctx):
        if fifo_backing:
            trap = ctx.out(adv.CANARY_DIR, 'trap')
            os.mkfifo(trap, 0o600)
            scratch = tempfile.mkdtemp(dir=os.path.dirname(ctx.root))
            try:
                ctx.header = adv.qcow2_header_with_backing(os.path.join(scratch, 'h.qcow2'), trap)
            finally:
                shutil.rmtree(scratch)
        with open(ctx.v('volume-%s' % vol), 'r+b') as handle:
            handle.write(ctx.header)
    return tamper


def hard_link_from_outside(name, content):
    """A file outside the directory, hard linked in as name."""
    def tamper(ctx):
        outside = ctx.out(adv.CANARY_DIR, 'linked-' + name)
        if content is None:
            outside = ctx.out(adv.CANARY)
        else:
            with open(outside, 'wb') as handle:
                handle.write(content)
        if os.path.lexists(ctx.v(name)):
            os.unlink(ctx.v(name))
        os.link(outside, ctx.v(name))
    return tamper


def remove(*names):
    def tamper(ctx):
        for name in names:
            os.unlink(ctx.v(name))
    return tamper


def meta_of(size, fmt='raw'):
    return {'format': fmt, 'provisioning': 'thin', 'size_bytes': size, 'version': 1}


VICTIM_INFO = {'active': 'volume-victim.s1', 's1': 'volume-victim.s1'}
GOOD_META = meta_of(adv.SIZE_BYTES)


# ------------------------------------------------------------------ operations
OPS = ['create', 'create-image', 'clone-into', 'extend', 'adopt', 'clone', 'from-snapshot', 'absent', 'absent-force',
       'snap-present', 'snap-absent', 'snap-revert', 'info-list', 'info-name']
INFO_OPS = ('info-list', 'info-name')
WRITE_OPS = [op for op in OPS if op not in INFO_OPS]

OK, REFUSE, ANY = 'ok', 'refuse', 'any'


def call(op, ctx, target, check):
    """The core call of op on the target volume (copies go to FRESH)."""
    vdir = ctx.vdir
    image = ctx.out(*adv.IMAGE.split('/'))
    volume = {
        'create': dict(name=target, size=adv.SIZE),
        'create-image': dict(name=target, source_image=image),
        'clone-into': dict(name=target, source_volume=SOURCE),
        'extend': dict(name=target, size='2M'),
        'adopt': dict(name=target, format='raw', size=adv.SIZE),
        'clone': dict(name=FRESH, source_volume=target),
        'from-snapshot': dict(name=FRESH, source_volume=target, source_snapshot=S1),
        'absent': dict(name=target, state='absent'),
        'absent-force': dict(name=target, state='absent', force=True),
    }
    snapshot = {'snap-present': (S2, 'present'), 'snap-absent': (S1, 'absent'), 'snap-revert': (S1, 'reverted')}
    if op in volume:
        params = dict(volume[op])
        name = params.pop('name')

        def run():
            return volumes.ensure_volume(sc.vparams(vdir, name, mode=None, **params), check)
    elif op in snapshot:
        snap, state = snapshot[op]

        def run():
            return volumes.ensure_snapshot(sc.sparams(vdir, target, snap, state, mode=None), check)
    elif op == 'info-list':
        def run():
            return volumes.volume_info(dict(sc.LOCATION, volume_dir=vdir))
    else:
        def run():
            return volumes.volume_info(dict(sc.LOCATION, volume_dir=vdir, name=target))
    return run


# ------------------------------------------------------------------ setups
class Setup(object):
    """kind: the default outcome of every operation:
    refuse   every operation on the target refuses (force delete: either);
    sidecar  like refuse, but force delete must work (.meta, journal);
    journal  like sidecar, and volume_info (by name too) must work;
    healthy  every operation works (the target is a normal volume);
    ghost    the target does not exist (leftover .meta/.lock).
    listed: what the listing shows of the target: error | flagged (error or
    pending_operation) | listed (anything) | ok (as in the pristine tree) |
    absent. words: the error must contain one of them (default: the target)."""

    def __init__(self, tamper, kind='refuse', target='victim', listed='error', words=None, overrides=None,
                 no_growth=False, guest_header=False, discardable=False):
        self.tamper = tamper
        self.discardable = discardable
        self.guest_header = guest_header
        self.kind = kind
        self.target = target
        self.listed = listed
        self.words = words
        self.overrides = overrides or {}
        self.no_growth = no_growth

    def expect(self, op):
        if op in self.overrides:
            return self.overrides[op]
        has_s1 = self.target == 'victim'
        if self.kind == 'healthy':
            if op == 'absent' and has_s1:
                return REFUSE       # "has snapshots: delete them first, or force"
            if op in ('from-snapshot', 'snap-revert') and not has_s1:
                return REFUSE       # no such snapshot
            return OK
        if self.kind == 'ghost':
            return {'clone': REFUSE, 'from-snapshot': REFUSE, 'snap-present': REFUSE, 'snap-absent': ANY,
                    'snap-revert': REFUSE}.get(op, OK)
        if op == 'info-list':
            return OK
        if op == 'info-name':
            return OK if self.kind == 'journal' else ANY
        if op == 'absent-force':
            return OK if self.kind in ('journal', 'sidecar') else ANY
        return REFUSE

    def error_words(self, op):
        if self.words and op != 'absent':
            return self.words
        return (self.target,)


J = 'volume-victim.journal'
# a well-formed journal whose premises do not hold: refused, or discarded
# (with a warning) and the operation goes on; never acted on
STALE = dict((op, ANY) for op in WRITE_OPS if op != 'absent-force')
SETUPS = {
    # ---- symbolic links (to the moved original outside, or dangling)
    'symlink-base': Setup(symlink_to_moved('volume-victim')),
    'symlink-overlay': Setup(symlink_to_moved('volume-victim.s1')),
    'symlink-info': Setup(symlink_to_moved('volume-victim.info')),
    'symlink-meta': Setup(symlink_to_moved('volume-victim.meta')),
    'symlink-journal': Setup(symlink_to('volume-victim.journal', adv.CANARY_DIR + '/journal',
                                        json.dumps({'op': 'delete'}).encode('utf-8')), listed='flagged'),
    'symlink-lock': Setup(symlink_to('volume-victim.lock', adv.CANARY), listed='listed'),
    'symlink-base-to-canary': Setup(symlink_to('volume-victim', adv.CANARY)),
    'symlink-overlay-to-canary': Setup(symlink_to('volume-victim.s1', adv.CANARY)),
    'symlink-info-to-canary': Setup(symlink_to('volume-victim.info', adv.CANARY)),
    'symlink-meta-to-canary': Setup(symlink_to('volume-victim.meta', adv.CANARY)),
    'symlink-journal-to-canary': Setup(symlink_to('volume-victim.journal', adv.CANARY), listed='flagged'),
    'dangling-base': Setup(dangling('volume-victim')),
    'dangling-info': Setup(dangling('volume-victim.info')),
    'dangling-meta': Setup(dangling('volume-victim.meta')),
    'dangling-journal': Setup(dangling('volume-victim.journal'), listed='flagged'),
    'dangling-lock': Setup(dangling('volume-victim.lock'), listed='listed'),
    # ---- hard links to a name outside the directory
    'hardlink-base': Setup(hard_link('volume-victim')),
    'hardlink-overlay': Setup(hard_link('volume-victim.s1')),
    'hardlink-info': Setup(hard_link('volume-victim.info')),
    'hardlink-meta': Setup(hard_link('volume-victim.meta')),
    'hardlink-journal': Setup(hard_link_from_outside('volume-victim.journal', json.dumps({'op': 'delete'}).encode()),
                              'journal', listed='flagged', words=(J,)),
    'hardlink-lock': Setup(hard_link_from_outside('volume-victim.lock', None), listed='listed'),
    # ---- FIFOs and directories where a regular file is expected
    'fifo-base': Setup(fifo('volume-victim')),
    'fifo-overlay': Setup(fifo('volume-victim.s1')),
    'fifo-info': Setup(fifo('volume-victim.info')),
    'fifo-meta': Setup(fifo('volume-victim.meta')),
    'fifo-journal': Setup(fifo('volume-victim.journal'), listed='flagged'),
    'fifo-lock': Setup(fifo('volume-victim.lock'), listed='listed'),
    'dir-base': Setup(directory('volume-victim'), overrides={'absent-force': REFUSE}),
    'dir-info': Setup(directory('volume-victim.info'), overrides={'absent-force': REFUSE}),
    'dir-alone': Setup(directory('volume-plain', remove=['volume-plain.meta', 'volume-plain.lock']),
                       target='plain', overrides={'absent-force': REFUSE}),
    'dir-alone-info': Setup(directory('volume-plain.info', remove=['volume-plain', 'volume-plain.meta',
                                                                   'volume-plain.lock']),
                            target='plain', overrides={'absent-force': REFUSE}),
    # ---- hostile journals (of victim)
    'journal-create-abs': Setup(journal(lambda c: {'op': 'create', 'part': c.out(adv.CANARY)}), 'journal',
                                listed='flagged', words=(J,)),
    'journal-create-dotdot': Setup(journal({'op': 'create', 'part': '../' + adv.CANARY}), 'journal',
                                   listed='flagged', words=(J,)),
    'journal-create-other-volume': Setup(journal({'op': 'create', 'part': 'volume-keep', 'made_base': True}),
                                         'journal', listed='flagged', words=(J,)),
    'journal-clone-dest-elsewhere': Setup(journal(lambda c: {
        'op': 'clone', 'snapshot': 'tmp-snap-cin2', 'dest': 'cin2', 'dest_dir': c.out(adv.ELSEWHERE),
        'part': '.volume-cin2.part', 'had_info': True}), 'journal', listed='flagged', words=(J,)),
    'journal-clone-dest-existing-volume': Setup(journal(lambda c: {
        'op': 'clone', 'snapshot': 'tmp-snap-cin', 'dest': 'cin', 'dest_dir': c.vdir, 'part': '.volume-cin.part',
        'had_info': True}), 'journal', listed='listed', words=(J,),
        overrides=STALE, discardable=True),
    'journal-extend-huge': Setup(journal({'op': 'extend', 'size': 1 << 40}), 'journal', listed='listed',
                                 words=(J,), no_growth=True,
                                 overrides=STALE, discardable=True),
    'journal-extend-size-string': Setup(journal({'op': 'extend', 'size': '1G'}), 'journal', listed='flagged',
                                        words=(J,)),
    'journal-wrong-types': Setup(journal({'op': 'snapshot_create', 'snapshot': ['s9'], 'file': 7}), 'journal',
                                 listed='flagged', words=(J,)),
    'journal-missing-fields': Setup(journal({'op': 'snapshot_delete'}), 'journal', listed='flagged', words=(J,)),
    'journal-unknown-op': Setup(journal({'op': 'format', 'part': '.volume-victim.part'}), 'journal',
                                listed='flagged', words=(J,)),
    'journal-empty-object': Setup(journal({}), 'journal', listed='flagged', words=(J,)),
    'journal-empty-file': Setup(journal(b''), 'journal', listed='flagged', words=(J,)),
    'journal-invalid-json': Setup(journal(b'{"op": "delete",'), 'journal', listed='flagged', words=(J,)),
    'journal-2mib': Setup(journal({'op': 'delete', 'pad': 'x' * (2 * adv.MIB)}), 'journal', listed='flagged',
                          words=(J,)),
    'journal-list': Setup(journal(['create', '../' + adv.CANARY]), 'journal', listed='flagged', words=(J,)),
    'journal-snapshot-delete-outside': Setup(journal({'op': 'snapshot_delete', 'snapshot': 'gone',
                                                      'file': '../' + adv.CANARY, 'mode': 'stale'}),
                                             'journal', listed='flagged', words=(J,)),
    'journal-revert-abs': Setup(journal(lambda c: {'op': 'revert', 'tmp': c.out(adv.CANARY_DIR, 'file')}),
                                'journal', listed='flagged', words=(J,)),
    'journal-snapshot-create-other-volume': Setup(journal({'op': 'snapshot_create', 'snapshot': 'zz',
                                                           'file': 'volume-keep'}),
                                                  'journal', listed='flagged', words=(J,)),
    'journal-delete-foreign-files': Setup(journal(lambda c: {
        'op': 'delete', 'files': ['volume-keep', '../' + adv.CANARY, c.out(adv.CANARY), 'volume-victim.s1']}),
        'journal', listed='flagged', words=(J,)),
    # ---- journals the core itself wrote (its current format), with hostile values
    'real-journal-extend-huge': Setup(real_journal('extend', J, 0, leaf_is(2 * adv.MIB, 1 << 40)), 'journal',
                                      listed='listed', words=(J,), no_growth=True,
                                      overrides=STALE, discardable=True),
    'real-journal-extend-from-huge': Setup(real_journal('extend', J, 0, leaf_is(adv.MIB, 1 << 40)), 'journal',
                                           listed='listed', words=(J,), no_growth=True,
                                           overrides=STALE, discardable=True),
    'real-journal-extend-file-outside': Setup(real_journal('extend', J, 0, leaf_is('volume-victim.s1',
                                                                                   '../' + adv.CANARY)),
                                              'journal', listed='flagged', words=(J,)),
    'real-journal-clone-stale': Setup(real_journal('clone', J, 0), 'journal', listed='listed', words=(J,),
                                      overrides=STALE, discardable=True),
    'real-journal-clone-names-user-snapshot': Setup(real_journal('clone', J, 0, leaf_is('tmp-snap-fresh', S1)),
                                                    'journal', listed='listed', words=(J,),
                                                    overrides=STALE, discardable=True),
    'real-journal-create-part-outside': Setup(real_journal('create', 'volume-fresh.journal', 0,
                                                           substring('fresh', 'victim'),
                                                           leaf_is('.volume-victim.part', '../' + adv.CANARY)),
                                              'journal', listed='flagged', words=(J,)),
    'real-journal-create-part-absolute': Setup(real_journal('create', 'volume-fresh.journal', 1,
                                                            substring('fresh', 'victim'),
                                                            leaf_is('.volume-victim.part',
                                                                    lambda c: c.out(adv.CANARY))),
                                               'journal', listed='flagged', words=(J,)),
    'real-journal-snapshot-delete-outside': Setup(real_journal('snapshot_delete', J, 0,
                                                               leaf_is('volume-victim.s1', '../' + adv.CANARY)),
                                                  'journal', listed='flagged', words=(J,)),
    'real-journal-snapshot-delete-other-volume': Setup(real_journal('snapshot_delete', J, 0,
                                                                    leaf_is('volume-victim.s1', 'volume-keep.k1'),
                                                                    leaf_is('volume-victim', 'volume-keep')),
                                                       'journal', listed='flagged', words=(J,)),
    # ---- hostile .meta
    'meta-size-string': Setup(meta(dict(GOOD_META, size_bytes='1048576')), 'sidecar'),
    'meta-size-negative': Setup(meta(dict(GOOD_META, size_bytes=-adv.SIZE_BYTES)), 'sidecar'),
    'meta-size-huge': Setup(meta(dict(GOOD_META, size_bytes=1 << 70)), 'sidecar'),
    'meta-size-float': Setup(meta(dict(GOOD_META, size_bytes=adv.SIZE_BYTES + 0.5)), 'sidecar'),
    'meta-format-unknown': Setup(meta(dict(GOOD_META, format='vmdk')), 'sidecar'),
    'meta-list': Setup(meta([GOOD_META]), 'sidecar'),
    'meta-missing-keys': Setup(meta({'format': 'raw'}), 'sidecar'),
    # ---- hostile .info
    'info-other-volume': Setup(info(dict(VICTIM_INFO, evil='volume-keep'))),
    'info-active-other-volume': Setup(info({'active': 'volume-keep.k1', 's1': 'volume-victim.s1'})),
    'info-absolute': Setup(info(lambda c: dict(VICTIM_INFO, evil=c.out(adv.CANARY)))),
    'info-dotdot': Setup(info(dict(VICTIM_INFO, evil='../' + adv.CANARY))),
    'info-non-string': Setup(info(dict(VICTIM_INFO, evil={'file': 'volume-victim.s1'}))),
    'info-no-active': Setup(info({'s1': 'volume-victim.s1'})),
    # ---- leftovers of a deleted volume (ghosts)
    'ghost-meta-lock': Setup(remove('volume-plain'), 'ghost', target='plain', listed='absent'),
    'ghost-lock': Setup(remove('volume-plain', 'volume-plain.meta'), 'ghost', target='plain', listed='absent'),
    # ---- a raw volume is data: a guest-written qcow2 header (backing /etc/shadow)
    'raw-guest-header': Setup(guest_header('victim'), 'healthy', listed='ok', guest_header=True),
    'raw-guest-header-backing-fifo': Setup(guest_header('victim', fifo_backing=True), 'healthy', listed='ok',
                                           guest_header=True),
    'raw-guest-header-no-snapshot': Setup(guest_header('plain'), 'healthy', target='plain', listed='ok',
                                          guest_header=True),
    # ---- files whose names are no volume's (dotted / newline): never listed, never touched
    'phantom-dotted-names': Setup(lambda c: [write_file(n, meta_of(adv.SIZE_BYTES))(c) for n in
                                             ('volume-victim.s1.meta', 'volume-victim.info.meta')],
                                  'healthy', listed='ok'),
    'phantom-newline-name': Setup(lambda c: [write_file(n, b'not a volume\n')(c) for n in
                                             ('volume-victim\n', 'volume-victim\n.meta')],
                                  'healthy', listed='ok'),
}

CASES = []
for _setup in sorted(SETUPS):
    for _op in OPS:
        CASES.append(pytest.param(_setup, _op, False, id='%s-%s' % (_setup, _op)))
        if _op not in INFO_OPS:
            CASES.append(pytest.param(_setup, _op, True, id='%s-%s-check' % (_setup, _op)))


# ------------------------------------------------------------------ checks
ADVICE = ('remove', 'restore', 'delete', 'fix', 'rename', 'inspect', 'give', 'choose', 'use ', 'set ', 're-run',
          'rerun', 'create', 'replace', 'move', 'adopt', 'restate', 'check', 'run ', 'wait', 'complete', 'free ',
          'resolve', 'edit', 'repair', 'rebuild', 'recreate', 'must ')


def own_pattern(vol):
    v = re.escape(vol)
    part = r'[A-Za-z0-9][A-Za-z0-9_-]*'
    return re.compile(r'(?:volume-{v}(?:\.{p})?|\.volume-{v}\.part|\.volume-{v}(?:\.{p})?\.[^/]+\.tmp'
                      r'|\.volume-{v}\.{p}\.revert)\Z'.format(v=v, p=part))


def own_names(paths, vol):
    """Top-level names in the volume directory that belong to vol."""
    pattern = own_pattern(vol)
    prefix = VOLS + '/'
    return set(p for p in paths if p.startswith(prefix) and '/' not in p[len(prefix):]
               and pattern.match(p[len(prefix):]))


def error_problems(res, words, invalid_input=False):
    problems = []
    if res['status'] != 'error':
        return ['%s: %s' % (res['status'], res.get('msg'))]
    msg = res.get('msg') or ''
    if not res.get('storage'):
        problems.append('not a StorageError but %s:\n%s' % (res['classes'][0], res.get('traceback', msg)))
        return problems
    if invalid_input and 'InvalidInput' not in res['classes']:
        problems.append('a %s, not InvalidInput (bad input is refused before anything is looked at): %s'
                        % (res['classes'][0], msg))
    if 'unexpected error' in msg.lower() or 'this is a bug' in msg.lower():
        problems.append('reported as a bug: %s' % msg)
    if not any(w in msg or repr(w) in msg for w in words):
        problems.append('the error names none of %r: %s' % (list(words), msg))
    if not any(a in msg.lower() for a in ADVICE):
        problems.append('the error does not say what to do: %s' % msg)
    return problems


def read_info_active(ctx, target):
    path = ctx.v('volume-%s.info' % target)
    if os.path.isfile(path) and not os.path.islink(path):
        with open(path, 'rb') as handle:
            return json.loads(handle.read().decode('utf-8'))['active']
    return 'volume-%s' % target


def expected_views(setup, op, ctx, pristine):
    """[(label, path, fmt, expectations)] of the target's data after a
    successful real run (and of FRESH for copies)."""
    target = setup.target
    zero_b = (0, adv.B_OFF, adv.LEN)
    if setup.kind == 'ghost':
        if op in ('create', 'extend', 'adopt'):
            data = [(0, adv.A_OFF, adv.LEN)]
        elif op == 'create-image':
            data = [(adv.PAT['image'], adv.A_OFF, adv.LEN)]
        elif op == 'clone-into':
            data = [(adv.PAT['db'], adv.A_OFF, adv.LEN)]
        else:
            return []
        return [('%s (new)' % target, ctx.v('volume-%s' % target), 'raw', data)]
    if target == 'victim':
        live = [(adv.PAT['victim'][0], adv.A_OFF, adv.LEN), (adv.PAT['victim'][1], adv.B_OFF, adv.LEN)]
        at_s1 = [(adv.PAT['victim'][0], adv.A_OFF, adv.LEN), zero_b]
    else:
        live = [(adv.PAT['plain'], adv.A_OFF, adv.LEN), zero_b]
        at_s1 = None
    views = []
    if op not in ('absent', 'absent-force'):
        active = read_info_active(ctx, target)
        fmt = 'raw' if active == 'volume-%s' % target else 'qcow2'
        views.append(('%s active data' % target, ctx.v(active), fmt, at_s1 if op == 'snap-revert' else live))
    if op == 'clone':
        views.append(('%s (clone of %s)' % (FRESH, target), ctx.v('volume-' + FRESH), 'raw', live))
    if op == 'from-snapshot' and at_s1:
        views.append(('%s (from %s@s1)' % (FRESH, target), ctx.v('volume-' + FRESH), 'raw', at_s1))
    return views


def success_problems(setup, op, check, res, before, after, ctx, pristine):
    """A call that returned: what it changed, and what it returned."""
    problems = []
    target = setup.target
    changed_value, result = res['value'][0], res['value'][1]
    changes = adv.diff_manifest(before, after)
    if check or op in INFO_OPS:
        if changes:
            problems.append('%s changed files:\n%s' % ('check mode' if check else op, adv.describe_diff(changes)))
    else:
        own_before = own_names(before, target)
        own_after = own_names(after, target)
        mine = own_before | own_after
        if op in ('clone', 'from-snapshot'):
            mine |= own_names(after, FRESH)
        if op == 'clone-into':
            # the source of the copy: a temporary snapshot comes and goes,
            # its files keep their content (their mtime may change)
            source = own_names(before, SOURCE) | own_names(after, SOURCE)
            mine |= source
            moved = [c for c in changes if c[0] in source and _sans_mtime(c[1]) != _sans_mtime(c[2])]
            if moved:
                problems.append('the copy changed its source %s:\n%s' % (SOURCE, adv.describe_diff(moved)))
        outside = [c for c in changes if c[0] not in mine]
        if outside:
            problems.append('touched what is not the volume\'s own:\n%s' % adv.describe_diff(outside))
        prefix = VOLS + '/volume-%s' % target
        if op in ('absent', 'absent-force'):
            if own_after:
                problems.append('the volume was reported deleted but its names remain: %s' % sorted(own_after))
        else:
            leftovers = sorted(p for p in own_after if os.path.basename(p).startswith('.')
                               or p == prefix + '.journal')
            if leftovers:
                problems.append('temporary files or a journal remain after a successful %s: %s' % (op, leftovers))
            if setup.kind != 'ghost':
                problems += _own_changes(setup, op, before, after, own_before, own_after)
        if op in ('clone', 'from-snapshot'):
            fresh = sorted(os.path.basename(p) for p in own_names(after, FRESH))
            want = ['volume-fresh', 'volume-fresh.lock', 'volume-fresh.meta']
            if fresh != want:
                problems.append('the copy %s has files %s, expected %s' % (FRESH, fresh, want))
        views = expected_views(setup, op, ctx, pristine)
        if views:
            problems += sc.multi_problems(views)
        if setup.guest_header and op not in ('absent', 'absent-force'):
            problems += _header_problems(ctx, target, op, ctx.header)
        if setup.kind == 'ghost' and op in ('absent', 'absent-force') and not changed_value:
            problems.append('removing the leftovers of a deleted volume must report changed')
    if setup.no_growth:
        problems += _growth_problems(ctx, target, 2 * adv.MIB if op == 'extend' and not check else adv.SIZE_BYTES)
    if op == 'info-list':
        problems += listing_problems(setup, result, pristine)
    if op == 'info-name':
        problems += named_info_problems(setup, result.get('volume'), pristine)
    if op in ('extend',) and not check and setup.kind in ('healthy', 'ghost'):
        size = (result.get('volume') or {}).get('size_bytes')
        if size != 2 * adv.MIB:
            problems.append('extend to 2M reported size_bytes %r' % size)
    if setup.kind == 'ghost' and op in ('absent', 'absent-force') and check and not changed_value:
        problems.append('check mode: removing the leftovers of a deleted volume must report changed')
    return problems


def _own_changes(setup, op, before, after, own_before, own_after):
    """The target's files a successful operation may change."""
    target = setup.target
    base = VOLS + '/volume-%s' % target
    active = VOLS + '/' + ('volume-victim.s1' if target == 'victim' else 'volume-%s' % target)
    may = {
        'create': {base + '.meta', base + '.lock'},
        'create-image': {base + '.meta', base + '.lock'},
        'clone-into': {base + '.meta', base + '.lock'},
        'adopt': {base + '.meta', base + '.lock'},
        'extend': {active, base + '.meta', base + '.lock'},
        'clone': {active, base + '.lock'},
        'from-snapshot': {base + '.lock'},
        'snap-present': {base + '.info', base + '.lock', VOLS + '/volume-%s.%s' % (target, S2)},
        'snap-revert': {active, base + '.lock'},
        'snap-absent': own_before | own_after,
    }[op]
    may.add(base + '.journal')
    # the volume's own files may be rewritten with the same content (mtime)
    bad = [(p, before.get(p), after.get(p)) for p in sorted(own_before | own_after)
           if _sans_mtime(before.get(p)) != _sans_mtime(after.get(p)) and p not in may]
    if bad:
        return ['a successful %s changed files of %s it has no business with:\n%s'
                % (op, target, adv.describe_diff(bad))]
    return []


def _sans_mtime(entry):
    if entry and entry[0] == 'file':
        return entry[:5] + entry[6:]
    return entry


def _header_problems(ctx, target, op, header):
    active = read_info_active(ctx, target)
    fmt = 'raw' if active == 'volume-%s' % target else 'qcow2'
    problems = []
    got = sc.read_bytes(ctx.v(active), fmt, 0, 512)
    if got != header[:512]:
        problems.append('the guest data (a qcow2 header) at offset 0 of %s changed' % target)
    if op == 'clone' or (op == 'from-snapshot' and target == 'victim'):
        if sc.read_bytes(ctx.v('volume-' + FRESH), 'raw', 0, 512) != header[:512]:
            problems.append('the copy %s lacks the guest data (a qcow2 header) at offset 0' % FRESH)
    return problems


def _growth_problems(ctx, target, limit):
    problems = []
    for name in sorted(os.listdir(ctx.vdir)):
        if not own_pattern(target).match(name) or not os.path.isfile(ctx.v(name)) or os.path.islink(ctx.v(name)):
            continue
        size = os.path.getsize(ctx.v(name))
        if size > limit + adv.MIB:      # qcow2 metadata is small; growth to the journal's size is not
            problems.append('%s grew to %d bytes' % (name, size))
    path = ctx.v('volume-%s.meta' % target)
    if os.path.isfile(path) and not os.path.islink(path):
        try:
            recorded = sc.read_json(path).get('size_bytes')
        except ValueError:
            recorded = None
        if isinstance(recorded, int) and recorded > limit:
            problems.append('the record of %s says %d bytes' % (target, recorded))
    return problems


def listing_problems(setup, result, pristine):
    problems = []
    reference = pristine['reference']
    by_name = dict((v.get('name'), v) for v in result.get('volumes') or [])
    for name, want in sorted(reference.items()):
        if name == setup.target:
            continue
        got = adv.normalized(by_name.get(name))
        if got != want:
            problems.append('listing: volume %s is %r, expected %r' % (name, got, want))
    phantoms = sorted(set(by_name) - set(reference))
    if phantoms:
        problems.append('listing: phantom volumes %r' % phantoms)
    named = named_info_problems(setup, by_name.get(setup.target), pristine)
    problems += [p.replace('named', 'listing:', 1) for p in named]
    if setup.listed in ('ok', 'absent'):
        provisioned = result['capacity']['provisioned_bytes']
        listed = sum(v.get('size_bytes') or 0 for v in by_name.values())
        if provisioned != listed:
            problems.append('listing: provisioned_bytes %d, but the listed volumes hold %d' % (provisioned, listed))
    return problems


def named_info_problems(setup, desc, pristine):
    target, listed = setup.target, setup.listed
    if listed == 'absent':
        return [] if desc is None else ['named %s is reported although it is only leftovers: %r' % (target, desc)]
    if desc is None:
        return ['named %s is missing (one broken volume is still listed, with an error)' % target]
    if listed == 'error' and not desc.get('error'):
        return ['named %s carries no error: %r' % (target, adv.normalized(desc))]
    if listed == 'flagged' and not (desc.get('error') or desc.get('pending_operation')):
        return ['named %s carries neither an error nor a pending_operation' % target]
    if listed == 'ok' and adv.normalized(desc) != pristine['reference'][target]:
        return ['named %s is %r, expected %r' % (target, adv.normalized(desc), pristine['reference'][target])]
    return []


def refusal_problems(before, after, check, target, extra_own=(), ghost=False, discardable=False):
    """A refused call changes nothing (a real run may leave a lock file
    where none was, and remove the lock file of a volume that does not
    exist: the leftover lock of a ghost)."""
    changes = adv.diff_manifest(before, after)
    if not check:
        locks = set(VOLS + '/volume-%s.lock' % v for v in (target,) + tuple(extra_own))
        changes = [c for c in changes if not (c[0] in locks and c[1] is None and c[2] and c[2][0] == 'file')]
        if ghost:
            changes = [c for c in changes if not (c[0] == VOLS + '/volume-%s.lock' % target and c[2] is None
                                                  and c[1][0] == 'file')]
        if discardable:     # a stale journal discarded before the refusal
            changes = [c for c in changes if not (c[0] == VOLS + '/volume-%s.journal' % target and c[2] is None)]
    if changes:
        return ['the refused call changed files:\n%s' % adv.describe_diff(changes)]
    return []


# ------------------------------------------------------------------ the tests
def _case_root(pristine):
    root = tempfile.mkdtemp(prefix='case-', dir=pristine['scratch'])
    adv.copy_tree(pristine['root'], root)
    return root


@pytest.mark.parametrize('setup_name, op, check', CASES)
def test_hostile_setup(pristine, setup_name, op, check):
    setup = SETUPS[setup_name]
    root = _case_root(pristine)
    try:
        ctx = Ctx(root, pristine)
        setup.tamper(ctx)
        known = dict(pristine['digests'])
        before = adv.manifest(root, skip_mtime=(VOLS,), known=known)
        res = adv.run_isolated(call(op, ctx, setup.target, check), TIMEOUT)
        after = adv.manifest(root, skip_mtime=(VOLS,), known=known)
        expect = setup.expect(op)
        problems = []
        if res['status'] in ('hung', 'timeout', 'crash'):
            problems.append('%s: %s' % (res['status'], res['msg']))
        elif res['status'] == 'ok':
            if expect == REFUSE:
                problems.append('was not refused: changed=%r actions=%r' % (
                    res['value'][0], (res['value'][1] or {}).get('actions')))
                problems += refusal_problems(before, after, check, setup.target, (FRESH,), setup.kind == 'ghost',
                                             setup.discardable)
            else:
                problems += success_problems(setup, op, check, res, before, after, ctx, pristine)
        else:
            if expect == OK:
                problems.append('failed: %s' % (res.get('msg') if res.get('storage') else res.get('traceback')))
            else:
                problems += error_problems(res, setup.error_words(op))
            problems += refusal_problems(before, after, check, setup.target, (FRESH,), setup.kind == 'ghost',
                                         setup.discardable)
        if problems:
            # no assertion rewriting or traceback: a thousand failing cases
            # against an unfixed core must still report in seconds
            pytest.fail('%s / %s%s (expected: %s):\n%s' % (setup_name, op, ' (check mode)' if check else '', expect,
                                                           '\n'.join(problems)), pytrace=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------ colliding names
# Volume names with a dot are another volume's files (c.s1: the overlay of
# snapshot s1 of c; b.info: b's snapshot map; db.lock: db's lock), a
# trailing newline is not a name: refused as bad input before anything is
# touched (not even a lock file), whatever the operation.
BAD_VOLUME_NAMES = ['c.s1', 'b.info', 'db.lock', 'c.meta', 'db.journal', 'keep.k1', 'c\n', 'victim\n']
NAME_OPS = {
    'create': lambda vdir, n, check: volumes.ensure_volume(sc.vparams(vdir, n, mode=None, size=adv.SIZE), check),
    'absent': lambda vdir, n, check: volumes.ensure_volume(sc.vparams(vdir, n, mode=None, state='absent'), check),
    'absent-force': lambda vdir, n, check: volumes.ensure_volume(
        sc.vparams(vdir, n, mode=None, state='absent', force=True), check),
    'clone-into': lambda vdir, n, check: volumes.ensure_volume(
        sc.vparams(vdir, n, mode=None, source_volume='keep'), check),
    'clone-from': lambda vdir, n, check: volumes.ensure_volume(
        sc.vparams(vdir, FRESH, mode=None, source_volume=n), check),
    'snap-present': lambda vdir, n, check: volumes.ensure_snapshot(sc.sparams(vdir, n, 'n1', mode=None), check),
    'snap-absent': lambda vdir, n, check: volumes.ensure_snapshot(sc.sparams(vdir, n, 's1', 'absent', mode=None),
                                                                  check),
    'snap-revert': lambda vdir, n, check: volumes.ensure_snapshot(
        sc.sparams(vdir, n, 's1', 'reverted', mode=None), check),
    'info-name': lambda vdir, n, check: volumes.volume_info(dict(sc.LOCATION, volume_dir=vdir, name=n)),
}
NAME_CASES = []
for _name in BAD_VOLUME_NAMES:
    for _op in sorted(NAME_OPS):
        _label = _name.replace('\n', '<newline>')
        NAME_CASES.append(pytest.param(_name, _op, False, id='%s-%s' % (_label, _op)))
        if _op in ('create', 'absent', 'absent-force'):
            NAME_CASES.append(pytest.param(_name, _op, True, id='%s-%s-check' % (_label, _op)))

# Snapshot names with a dot, the reserved ones and a trailing newline.
BAD_SNAPSHOT_NAMES = ['a.b', 'k1.x', 'active', 'part', 'info', 'journal', 'x\n']
SNAP_OPS = {
    'snap-present': lambda vdir, s, check: volumes.ensure_snapshot(sc.sparams(vdir, 'keep', s, mode=None), check),
    'snap-absent': lambda vdir, s, check: volumes.ensure_snapshot(
        sc.sparams(vdir, 'keep', s, 'absent', mode=None), check),
    'snap-revert': lambda vdir, s, check: volumes.ensure_snapshot(
        sc.sparams(vdir, 'keep', s, 'reverted', mode=None), check),
    'from-snapshot': lambda vdir, s, check: volumes.ensure_volume(
        sc.vparams(vdir, FRESH, mode=None, source_volume='keep', source_snapshot=s), check),
}
SNAP_CASES = []
for _name in BAD_SNAPSHOT_NAMES:
    for _op in sorted(SNAP_OPS):
        SNAP_CASES.append(pytest.param(_name, _op, False, id='%s-%s' % (_name.replace('\n', '<newline>'), _op)))
    SNAP_CASES.append(pytest.param(_name, 'snap-present', True,
                                   id='%s-snap-present-check' % _name.replace('\n', '<newline>')))


def _refused_as_bad_input(pristine, func, name):
    root = _case_root(pristine)
    try:
        known = dict(pristine['digests'])
        before = adv.manifest(root, known=known)
        res = adv.run_isolated(func(os.path.join(root, VOLS)), TIMEOUT)
        after = adv.manifest(root, known=known)
        problems = []
        if res['status'] == 'ok':
            actions = (res['value'][1] or {}).get('actions')
            problems.append('was not refused: changed=%r actions=%r' % (res['value'][0], actions))
        else:
            problems += error_problems(res, (name, name.strip()), invalid_input=True)
        changes = adv.diff_manifest(before, after)
        if changes:
            problems.append('files changed:\n%s' % adv.describe_diff(changes))
        return problems
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize('name, op, check', NAME_CASES)
def test_volume_name_collides(pristine, name, op, check):
    problems = _refused_as_bad_input(pristine, lambda vdir: lambda: NAME_OPS[op](vdir, name, check), name)
    if problems:
        pytest.fail('volume name %r, %s%s:\n%s' % (name, op, ' (check mode)' if check else '', '\n'.join(problems)),
                    pytrace=False)


@pytest.mark.parametrize('name, op, check', SNAP_CASES)
def test_snapshot_name_collides(pristine, name, op, check):
    problems = _refused_as_bad_input(pristine, lambda vdir: lambda: SNAP_OPS[op](vdir, name, check), name)
    if problems:
        pytest.fail('snapshot name %r, %s%s:\n%s' % (name, op, ' (check mode)' if check else '', '\n'.join(problems)),
                    pytrace=False)
