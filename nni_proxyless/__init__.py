"""nni-proxyless: ProxylessNAS as a strategy for NNI 3.0.

Example::

    from nni.nas.experiment import NasExperiment
    from nni_proxyless import Proxyless

    exp = NasExperiment(model_space, evaluator, Proxyless(seed=0))
    exp.run()
    print(exp.export_top_models(top_k=3, formatter='dict'))

Public names are imported on first use, so that light entry points (the web UI's relay process) do not pay
for torch and Lightning.
"""

from importlib import import_module
from typing import Any

from . import _compat  # noqa: F401  (before NNI is imported)

__all__ = ['Proxyless', 'ProxylessTrainer', 'Architecture', 'ArchParameters', 'FrontPick', 'strategies']
__version__ = '0.1.0'

_LOCATIONS = {'Proxyless': '.strategy', 'ProxylessTrainer': '.trainer', 'Architecture': '.export',
              'ArchParameters': '.arch', 'FrontPick': '.front', 'strategies': '._entry_points'}


def __getattr__(name: str) -> Any:
    if name in _LOCATIONS:
        value = getattr(import_module(_LOCATIONS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
