"""Quiet the warnings NNI 3.0 prints about PyTorch releases newer than it knows.

NNI 3.0 walks ``torch.nn`` at import time and warns for every class that is not an ``nn.Module``
("... is found to be not a nn.Module, which is unexpected"). Those warnings say nothing about the user's
code, so they are filtered here, by message, before NNI is imported. Other warnings are left alone.
"""

import warnings

warnings.filterwarnings(
    'ignore', message=r'.* is found to be not a nn\.Module, which is unexpected', category=RuntimeWarning)
