"""``fixed_arch``: NNI 2.x's context in which a model space's choices build the chosen candidates only.

``with fixed_arch('arch.json'): model = Net(...)`` builds the subnet of an exported architecture (each
``LayerChoice`` becomes its chosen candidate, each ``InputChoice`` its chosen inputs, a ``Repeat`` its depth), for
retraining from scratch. It is NNI 3.0's :func:`nni.nas.space.model_context`, with 2.x's argument: a dict or the
path of a JSON file holding one (what ``ProxylessTrainer.export(path)`` and ``export_top_models(formatter='dict')``
give).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from nni.mutable.frozen import frozen_context
from nni.nas.space import model_context

__all__ = ['fixed_arch']

_logger = logging.getLogger('nni.proxyless.retiarii')


def fixed_arch(fixed_arch: str | os.PathLike | dict[str, Any], verbose: bool = True) -> frozen_context:
    """The context in which model spaces are built as the architecture ``fixed_arch`` (NNI 2.x's signature).

    Args:
        fixed_arch: the architecture: a dict ``{label: chosen value}``, or the path of a JSON file holding one.
        verbose: log the architecture.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not JSON, or does not hold a dict keyed by labels.

    Example::

        with fixed_arch('checkpoint.json'):
            model = SearchMobileNet(...)        # the exported subnet, no choice left
    """
    arch = _load(fixed_arch)
    if verbose:
        _logger.info('Fixed architecture: %s', arch)
    return model_context(arch)


def _load(source: Any) -> dict[str, Any]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f'fixed_arch: no file {str(path)!r}; pass the path of the JSON file that '
                                    'export wrote, or the architecture dict itself.')
        try:
            source = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f'fixed_arch: {str(path)!r} is not JSON ({exc}); it should hold the dict that '
                             'export(path) wrote, e.g. {"s0_c0": 2, ...}.') from None
    if not isinstance(source, dict) or not all(isinstance(label, str) for label in source):
        raise ValueError(f'fixed_arch takes a dict {{label: chosen value}} or the path of a JSON file holding '
                         f'one, got {type(source).__name__}: {source!r:.200}')
    return dict(source)
