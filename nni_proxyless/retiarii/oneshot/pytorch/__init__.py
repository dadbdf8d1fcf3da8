"""NNI 2.x's ``nni.retiarii.oneshot.pytorch``: ``ProxylessTrainer``, taking what NNI 2.x's took.

:class:`ProxylessTrainer` is :class:`nni_proxyless.ProxylessTrainer` with NNI 2.x's leniencies, so that 2.x
scripts (e.g. NNI 2.9's ``examples/nas/oneshot/proxylessnas``) run with their imports changed only:

* ``model`` may be a plain ``nn.Module`` holding labelled choices (2.x's one-shot trainers took one); it is
  searched as it is, inside a model space that holds it (its choices become mixed ops in place, as in 2.x);
* ``ref_latency=None`` means the default, 65.0;
* ``fit()`` is 2.x's name of ``train()``.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from nni.nas.nn.pytorch import ModelSpace

from ....trainer import ProxylessTrainer as _ProxylessTrainer

__all__ = ['ProxylessTrainer']

_DEFAULT_REF_LATENCY = 65.0


class _ModuleSpace(ModelSpace):
    """A model space around a plain module built outside one (NNI 2.x's one-shot trainers took such modules)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)


class ProxylessTrainer(_ProxylessTrainer):
    """NNI 2.x's ``ProxylessTrainer(model, loss, metrics, optimizer, num_epochs, dataset, ...)``.

    The arguments are :class:`nni_proxyless.ProxylessTrainer`'s; ``model`` may also be a plain ``nn.Module``
    whose choices carry labels, and ``ref_latency=None`` is the default 65.0.

    Example::

        from nni_proxyless.retiarii.oneshot.pytorch import ProxylessTrainer
        trainer = ProxylessTrainer(model, loss=criterion, dataset=dataset, optimizer=optimizer,
                                   metrics=lambda output, target: accuracy(output, target, topk=(1, 5)),
                                   num_epochs=120)
        trainer.fit()
        json.dump(trainer.export(), open('checkpoint.json', 'w'))
    """

    def __init__(self, model: nn.Module, *args: Any, ref_latency: float | None = _DEFAULT_REF_LATENCY,
                 **kwargs: Any) -> None:
        if isinstance(model, nn.Module) and not isinstance(model, ModelSpace):
            model = _ModuleSpace(model)
        super().__init__(model, *args, ref_latency=_DEFAULT_REF_LATENCY if ref_latency is None else ref_latency,
                         **kwargs)

    def fit(self) -> None:
        """Run the search (NNI 2.x's name of :meth:`train`)."""
        self.train()
