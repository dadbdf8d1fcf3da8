"""NNI 2.x's ``nni.retiarii.evaluator.pytorch.lightning``: NNI 3.0's Lightning evaluators, unchanged.

``import nni_proxyless.retiarii.evaluator.pytorch.lightning as pl`` then ``pl.Classification(...)``,
``pl.Regression(...)``, ``pl.Lightning(module, pl.Trainer(...), train_dataloaders=pl.DataLoader(...))``.
"""

from nni.nas.evaluator.pytorch.lightning import (Classification, ClassificationModule, DataLoader, Lightning,
                                                 LightningModule, Regression, RegressionModule, Trainer)

__all__ = ['Classification', 'Regression', 'Lightning', 'LightningModule', 'DataLoader', 'Trainer',
           'ClassificationModule', 'RegressionModule']
