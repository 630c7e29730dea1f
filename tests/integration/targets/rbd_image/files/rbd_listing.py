# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print (JSON) what a check-mode task must not change in the given pools:
every image with its size, features, parent, snapshots (size, protection),
metadata, and the trash. Usage: rbd_listing.py CONF POOL...
rbd_listing.py CONF --purge-trash PREFIX POOL removes the trashed images
whose names start with PREFIX (test cleanup)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import sys

import rados
import rbd


def purge(cluster, prefix, pool):
    ioctx = cluster.open_ioctx(pool)
    try:
        for entry in list(rbd.RBD().trash_list(ioctx)):
            if entry['name'].startswith(prefix):
                rbd.RBD().trash_remove(ioctx, entry['id'], force=True)
                print('removed %s' % entry['name'])
    finally:
        ioctx.close()


def main():
    conf, pools = sys.argv[1], sys.argv[2:]
    cluster = rados.Rados(conffile=conf, rados_id='admin')
    cluster.connect(timeout=30)
    if pools[0] == '--purge-trash':
        try:
            purge(cluster, pools[1], pools[2])
        finally:
            cluster.shutdown()
        return
    out = {}
    try:
        for pool in pools:
            ioctx = cluster.open_ioctx(pool)
            try:
                for name in sorted(rbd.RBD().list(ioctx)):
                    with rbd.Image(ioctx, name, read_only=True) as image:
                        try:
                            parent = image.get_parent_image_spec()
                        except rbd.ImageNotFound:
                            parent = None
                        out['%s/%s' % (pool, name)] = {
                            'size': image.size(), 'features': image.features(), 'parent': parent,
                            'snapshots': [[s['name'], s['size'], image.is_protected_snap(s['name'])]
                                          for s in image.list_snaps()],
                            'metadata': sorted(image.metadata_list()),
                        }
                out[pool + ' trash'] = sorted(e['name'] for e in rbd.RBD().trash_list(ioctx))
            finally:
                ioctx.close()
    finally:
        cluster.shutdown()
    print(json.dumps(out, sort_keys=True, default=str))


if __name__ == '__main__':
    main()
