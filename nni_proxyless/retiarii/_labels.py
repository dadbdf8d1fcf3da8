"""Labels of a ``@model_wrapper`` space as NNI 2.x gave them, on NNI 3.0's label scopes.

NNI 2.x kept an explicit ``label='conv1'`` as written and numbered unlabeled choices per model instance:
``model_1``, ``model_2``, ... (a nested ``@model_wrapper`` model: ``model_3_1``, ...). NNI 3.0 refuses unlabeled
choices in a ``ModelSpace`` unless the space has a label prefix, and then prefixes every label, explicit ones
included (``model/conv1``). :class:`WrapperLabelScope` gives 2.x's labels instead: it hides its own name from the
labels made inside it (as NNI's ``strict_label_scope`` does) and numbers unlabeled choices itself. A new scope is
made for every instance, so the same script builds the same labels every time it runs.
"""

from __future__ import annotations

from nni.mutable.utils import label_scope

from .._nni_internals import strict_label_scope

__all__ = ['WrapperLabelScope', 'scope_for_new_space']

PREFIX = 'model'
"""What NNI 2.x's unlabeled choices were numbered under (its ``ModelNamespace`` key)."""


class WrapperLabelScope(strict_label_scope):
    """Explicit labels unchanged; unlabeled mutables numbered ``{prefix}_1``, ``{prefix}_2``, ...

    Args:
        prefix: the start of every automatic label (``'model'`` for a top-level space).
    """

    def __init__(self, prefix: str = PREFIX) -> None:
        super().__init__(prefix)
        self.prefix = prefix
        self._count = 0

    def __enter__(self) -> 'WrapperLabelScope':
        self._count = 0  # entering a scope restarts its numbering, as NNI's scopes do
        super().__enter__()
        return self

    def next_label(self) -> str:
        """The next automatic label: ``{prefix}_{n}``."""
        self._count += 1
        return f'{self.prefix}_{self._count}'


def scope_for_new_space() -> label_scope:
    """The label scope for a ``@model_wrapper`` space being built now (nested in an enclosing one, if any)."""
    parent = label_scope.current()
    return WrapperLabelScope(PREFIX if parent is None else parent.next_label())
