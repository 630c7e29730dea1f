# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockyard.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan-then-act: an operation first lists its actions (what check mode
returns and every result reports as `actions`), then performs them."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.blockyard.storage.plugins.module_utils.errors import StorageError
from ansible_collections.blockyard.storage.plugins.module_utils.runner import checkpoint


class Plan:
    def __init__(self, name='plan'):
        self.name = name
        self.steps = []
        self.after = None       # the Volume the plan leaves (None: absent); check mode reports it
        self.warnings = []
        self.rollbacks = []
        self.final_rollbacks = []   # undos that run after all the others (last=True)
        self.diff_changes = []  # files whose owner/group/mode the plan changes (the diff shows them)

    def add(self, text, func=None, *args, **kwargs):
        """Add an action: text for the operator, func(*args) to perform it.
        A step with empty text is bookkeeping (journal) and is not listed."""
        self.steps.append((text, func, args, kwargs))
        return self

    def extend(self, other):
        self.steps.extend(other.steps)
        self.rollbacks.extend(other.rollbacks)
        self.final_rollbacks.extend(other.final_rollbacks)
        return self

    @property
    def actions(self):
        return [text for text, _f, _a, _k in self.steps if text]

    def __len__(self):
        return len(self.actions)

    def __bool__(self):
        return bool(self.actions)

    __nonzero__ = __bool__

    def on_failure(self, func, *args, **kwargs):
        """Register an undo for a step that fails cleanly (an exception, not
        a crash: a crash is left to the journal and the next run). Undos run
        newest first (last=True: after all the others); an undo that fails
        itself does not hide the error."""
        last = kwargs.pop('last', False)
        (self.final_rollbacks if last else self.rollbacks).append((func, args, kwargs))
        return self

    def execute(self):
        done = []
        try:
            for index, (text, func, args, kwargs) in enumerate(self.steps):
                checkpoint('%s.%d' % (self.name, index))
                if func is not None:
                    func(*args, **kwargs)
                if text:
                    done.append(text)
        except Exception as exc:
            # a failed run reports what it had done before the error
            if isinstance(exc, StorageError):
                exc.details['actions_done'] = done
            for func, args, kwargs in list(reversed(self.rollbacks)) + list(reversed(self.final_rollbacks)):
                try:
                    func(*args, **kwargs)
                except Exception:  # noqa: the original error is the one to report
                    pass
            raise
