# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors raised by the core. Modules turn them into fail_json(**err.to_fail())."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class StorageError(Exception):
    """A failure with a message for the operator and optional details.

    The message says what failed, on which object, why and what to do.
    Details (cmd, rc, stdout, stderr, path, ...) are returned beside it.
    """

    def __init__(self, msg, **details):
        super(StorageError, self).__init__(msg)
        self.msg = msg
        self.details = dict((k, v) for k, v in details.items() if v is not None)

    def to_fail(self):
        result = dict(self.details)
        # fail_json decorates a result holding `path` with that file's
        # owner, mode and size: report the file under another key
        if 'path' in result:
            result['file'] = result.pop('path')
        result['msg'] = self.msg
        return result

    def __str__(self):
        return self.msg


class InvalidInput(StorageError):
    """An option value is unusable (bad name, size, path, share...)."""


class UnsafeImage(StorageError):
    """An image file failed the safety checks; nothing was done with it."""


class NotFound(StorageError):
    """A named object does not exist where it was looked for."""


class Conflict(StorageError):
    """The request conflicts with what exists (shrink, busy, name clash...)."""


class CommandFailed(StorageError):
    """An external command returned non-zero or timed out."""


class LockTimeout(StorageError):
    """Another operation holds the lock of the object for too long."""


class Unsupported(StorageError):
    """The backend lacks a capability the request needs."""


class Busy(StorageError):
    """The object is in use (children, watchers, sessions, a running guest)."""


class MissingDependency(StorageError):
    """A library a backend needs is not installed on the managed host."""
