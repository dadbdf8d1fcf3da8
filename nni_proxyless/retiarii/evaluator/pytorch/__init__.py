"""NNI 2.x's ``nni.retiarii.evaluator.pytorch``: the Lightning evaluators of :mod:`.lightning`."""

from .lightning import (Classification, ClassificationModule, DataLoader, Lightning, LightningModule, Regression,
                        RegressionModule, Trainer)

__all__ = ['Classification', 'Regression', 'Lightning', 'LightningModule', 'DataLoader', 'Trainer',
           'ClassificationModule', 'RegressionModule']
