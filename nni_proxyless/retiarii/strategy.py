"""What NNI 2.x scripts use from ``nni.retiarii.strategy``, on NNI 3.0.

``Proxyless`` is this package's :class:`nni_proxyless.Proxyless`. The other 2.x strategies are NNI 3.0's own
(``nni.nas.strategy``): the one-shot ``DARTS``, ``GumbelDARTS``, ``ENAS``, ``RandomOneShot`` and the multi-trial
``Random``, ``GridSearch``, ``RegularizedEvolution``, ``TPE`` (``TPEStrategy``), ``PolicyBasedRL``; their
arguments are NNI 3.0's. 2.x's ``BaseStrategy`` (custom strategies with ``run(base_model, applied_mutators)``)
has no equivalent and raises an error naming NNI 3.0's ``nni.nas.strategy.Strategy``.
"""

from nni.nas.strategy import (DARTS, ENAS, GridSearch, GumbelDARTS, PolicyBasedRL, Random, RandomOneShot,
                              RegularizedEvolution, TPE, TPEStrategy)

from ..strategy import Proxyless
from ._errors import removed_names

__all__ = ['Proxyless', 'DARTS', 'GumbelDARTS', 'ENAS', 'RandomOneShot', 'Random', 'GridSearch',
           'RegularizedEvolution', 'TPE', 'TPEStrategy', 'PolicyBasedRL']

__getattr__ = removed_names(__name__, {
    'BaseStrategy': 'nni.nas.strategy.Strategy (NNI 3.0\'s base class: implement _initialize / _run with '
                    'self.engine.submit_models and list_models; the 2.x run(base_model, applied_mutators) is gone)',
    '_LocalDebugStrategy': 'model_space.freeze(arch) and run the model yourself',
})
