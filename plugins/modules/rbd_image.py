#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: rbd_image
short_description: Manage Ceph RBD images, their snapshots and clones
version_added: 0.1.0
description:
  - Creates, clones, resizes, flattens, rolls back and deletes (or moves to the trash) one RBD image, changes its
    features and manages its snapshots, through the C(rados) and C(rbd) Python bindings (never the C(rbd) CLI's
    text).
  - The task first reads the image and lists the actions it needs (C(actions)), then performs them; in check mode it
    only lists them. A task that finds the image as asked changes nothing.
  - Object size, data pool and parent are fixed when an image is made; asking another value for an existing image
    is an error, not a silent no-op.
author:
  - Blockyard storage team (@blockyard)
extends_documentation_fragment:
  - blockyard.storage.ceph
  - blockyard.storage.attributes
requirements:
  - python3-rados and python3-rbd (the Ceph Python bindings) on the managed host, in the Python that runs the module.
options:
  name:
    description: Name of the image (letters, digits, C(_), C(-) and C(.), not first; at most 200 characters).
    type: str
    required: true
  pool:
    description: Pool that holds the image.
    type: str
    required: true
  namespace:
    description: RBD namespace in O(pool) (it must exist). Without it, the pool's default namespace.
    type: str
  state:
    description:
      - V(present) makes the image as the options say; V(absent) deletes it (or moves it to the trash, O(trash)).
        An absent image that does not exist is success.
    type: str
    default: present
    choices: [present, absent]
  size:
    description:
      - Size of the image, an integer of GiB or a string with a unit (C(512M), C(10G), C(1T); binary multiples), as
        in M(blockyard.storage.volume). Required to create an image unless O(clone_from) is given (a clone then
        takes its parent snapshot's size).
      - A larger size grows the image. A smaller one is an error naming both sizes unless O(allow_shrink=true).
    type: raw
  features:
    description:
      - The image features, by Ceph's names (C(layering), C(striping), C(exclusive-lock), C(object-map),
        C(fast-diff), C(deep-flatten), C(journaling)). C(object-map) and C(journaling) need C(exclusive-lock),
        C(fast-diff) needs C(object-map). C(data-pool) follows O(data_pool) and is not listed here.
      - On an existing image only C(exclusive-lock), C(object-map), C(fast-diff) and C(journaling) can be toggled,
        and C(deep-flatten) disabled (C(update_features)); any other difference is an error.
    type: list
    elements: str
    default: [layering]
  object_size:
    description:
      - Size of the RADOS objects the image is striped over (its order), a power of two from C(4K) to C(32M), as a
        string with a unit (C(4M)) or an integer of bytes. Ceph's default (4 MiB) without it. Fixed at creation.
    type: raw
  data_pool:
    description:
      - Pool for the image's data objects (an erasure-coded or other replicated pool); the metadata stays in
        O(pool). Fixed at creation.
    type: str
  clone_from:
    description:
      - Create the image as a copy-on-write clone of a snapshot of another image. The snapshot is protected first
        when it is not (an action). Used only to create the image; an existing image with another parent is an
        error.
    type: dict
    suboptions:
      pool:
        description: Pool of the parent image.
        type: str
        required: true
      namespace:
        description: Namespace of the parent image in its pool.
        type: str
      image:
        description: Name of the parent image.
        type: str
        required: true
      snapshot:
        description: Name of the parent's snapshot to clone.
        type: str
        required: true
  flatten:
    description:
      - Copy the parent's data into the clone and detach it from its parent (no change when it has none).
    type: bool
    default: false
  snapshots:
    description:
      - Snapshots of the image to create, protect, unprotect or remove. Snapshots not listed are left alone.
      - A snapshot with clones cannot be unprotected or removed (an error naming the clones).
    type: list
    elements: dict
    suboptions:
      name:
        description: Snapshot name (the rules of image names).
        type: str
        required: true
      state:
        description: V(present) creates the snapshot (of the image as it is after this task's resize), V(absent)
          unprotects and removes it.
        type: str
        default: present
        choices: [present, absent]
      protected:
        description: Protect (V(true)) or unprotect (V(false)) the snapshot; without it the protection is left as
          it is (a new snapshot is unprotected).
        type: bool
  rollback_to:
    description:
      - Roll the image back to this snapshot, discarding what was written since. No change when nothing was written
        since the snapshot (found with C(diff_iterate)) and the size is the snapshot's (or O(size)'s). Runs before
        O(size), O(features) and O(snapshots) are applied.
      - The image must not be in use (watchers), or the rollback is refused.
    type: str
  trash:
    description:
      - With O(state=absent), move the image to the RBD trash (restorable with C(rbd trash restore)) instead of
        removing it. Its unprotected snapshots go with it.
    type: bool
    default: false
  trash_delay:
    description: With O(trash=true), seconds during which the trashed image may not be purged.
    type: int
    default: 0
  allow_shrink:
    description: Allow O(size) to shrink the image (the data past the new end is lost).
    type: bool
    default: false
  force:
    description:
      - With O(state=absent), an image with protected snapshots or with clones is refused with an error naming them.
        With O(force=true) the clones are flattened, the snapshots unprotected and removed, then the image removed
        (or trashed). An image in use (watchers) is refused even with O(force=true).
    type: bool
    default: false
notes:
  - Supports check mode and diff mode (the diff shows the image's size, features, object size, data pool, parent and
    snapshots before and after).
seealso:
  - module: blockyard.storage.volume
  - name: Ceph RBD documentation
    description: Images, snapshots, layering and the trash.
    link: https://docs.ceph.com/en/latest/rbd/
'''

EXAMPLES = r'''
- name: A 10 GiB image with the features a guest disk wants
  blockyard.storage.rbd_image:
    name: db01
    pool: rbd
    size: 10G
    features: [layering, exclusive-lock, object-map, fast-diff, deep-flatten]
    ceph_user: blockyard
    ceph_keyring: /etc/ceph/ceph.client.blockyard.keyring

- name: A golden image with a protected snapshot
  blockyard.storage.rbd_image:
    name: golden
    pool: rbd
    size: 2G
    snapshots:
      - name: base
        protected: true

- name: A clone of it, data in an erasure-coded pool
  blockyard.storage.rbd_image:
    name: vm01-disk
    pool: rbd
    data_pool: rbd-ec
    clone_from:
      pool: rbd
      image: golden
      snapshot: base

- name: Undo everything written since the snapshot
  blockyard.storage.rbd_image:
    name: db01
    pool: rbd
    rollback_to: before-upgrade

- name: Move it to the trash for a day
  blockyard.storage.rbd_image:
    name: db01
    pool: rbd
    state: absent
    trash: true
    trash_delay: 86400
'''

RETURN = r'''
image:
  description:
    - The image after the task (in check mode, as it would be; C(id) is null for an image not yet made). Only C(name),
      C(pool) and C(namespace) when absent.
  returned: always
  type: dict
  contains:
    name:
      description: Image name.
      type: str
      sample: db01
    pool:
      description: Pool of the image.
      type: str
      sample: rbd
    namespace:
      description: Namespace of the image, or null.
      type: str
    size_bytes:
      description: Size of the image.
      type: int
      sample: 10737418240
    features:
      description: Feature names of the image (with C(data-pool) when it has one).
      type: list
      elements: str
      sample: [exclusive-lock, layering]
    object_size_bytes:
      description: Size of its objects.
      type: int
      sample: 4194304
    order:
      description: log2 of the object size.
      type: int
      sample: 22
    data_pool:
      description: Pool of its data objects, or null.
      type: str
    parent:
      description: The snapshot the image is a clone of (C(pool), C(namespace), C(image), C(snapshot)), or null.
      type: dict
    snapshots:
      description: Its snapshots, each with C(name), C(size_bytes), C(protected) and C(children) (the clones, as
        C(pool/image) or C(pool/namespace/image)).
      type: list
      elements: dict
    watchers:
      description: Addresses of the clients that have the image open.
      type: list
      elements: str
    id:
      description: The image's RBD id.
      type: str
actions:
  description: What the task did (or would do), in order.
  returned: always
  type: list
  elements: str
  sample: ["create image rbd/db01 of 10737418240 bytes (features layering, object size 4194304)"]
diff:
  description:
    - The image before and after (C(state), C(size_bytes), C(features), C(object_size_bytes), C(data_pool),
      C(parent), and C(snapshots) as a map of name to C(protected)); C({state = absent}) when it does not exist.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.blockyard.storage.plugins.module_utils import common, rbd_images


def main():
    module = AnsibleModule(
        argument_spec=rbd_images.argument_spec(),
        supports_check_mode=True,
    )
    common.run(module, rbd_images.ensure_image)


if __name__ == '__main__':
    main()
