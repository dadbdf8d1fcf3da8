"""The searchers of the ground-truth comparison and one search of theirs, runnable in a worker process.

A search returns what it did (its export, its final distribution, the wall time of its training batches, the
wall time of one epoch of a random subnet timed just before it in the same process); scoring against a table is
``truth_search.py``'s, so a worker needs no table.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

import _harness as h
import _spaces as s
from nni_proxyless import Proxyless

DEFAULT = 'ours default'
RERANKED = 'ours default, top-10 re-ranked'
ARCH_UPDATE_EVERY = 5  # the package's default: an architecture step every 5 weight steps
RERANK_TOP = 10

SPACES = {'cell': s.DigitsCellSpace, 'value': s.DigitsValueSpace}


def budget_rule(architecture_steps: int) -> float:
    """The package's former default learning rate, written out: ``max(1e-3, 10 / S)`` for ``S`` architecture
    steps (it gives each logit room to move by 10 in the search)."""
    return max(1e-3, 10 / architecture_steps) if architecture_steps > 0 else 1e-3


def _nni(name: str) -> Callable[..., Any]:
    return lambda seed, steps, **extra: h.nni_strategy(name)()


# name -> strategy of (seed, architecture steps of the plan, extra options); NNI's at their defaults
SEARCHERS: dict[str, Callable[..., Any]] = {
    DEFAULT: lambda seed, steps, **extra: Proxyless(seed=seed, **extra),
    'ours 1e-3': lambda seed, steps, **extra: Proxyless(arc_learning_rate=1e-3, seed=seed, **extra),
    'ours budget rule': lambda seed, steps, **extra: Proxyless(arc_learning_rate=budget_rule(steps), seed=seed,
                                                               **extra),
    'ours full_v2': lambda seed, steps, **extra: Proxyless(binary_mode='full_v2', seed=seed, **extra),
    'ours REINFORCE': lambda seed, steps, **extra: Proxyless(arch_update='reinforce', seed=seed, **extra),
    'NNI Proxyless': _nni('Proxyless'),
    'NNI DARTS': _nni('DARTS'),
}
# name under the FLOPs target -> (searcher, latency loss): as a user writes it (``latency_target`` with the default
# loss and ``ref_latency``), the loss scaled to the target (``ref_latency`` = the target), no latency loss at all
TARGETED: dict[str, tuple[str, dict[str, Any]]] = {
    DEFAULT: (DEFAULT, {}),
    'ours default, loss at the target': (DEFAULT, {'ref_latency': 'target'}),
    'ours default, no latency loss': (DEFAULT, {'grad_reg_loss_type': None}),
    'ours 1e-3, loss at the target': ('ours 1e-3', {'ref_latency': 'target'}),
}


def flops_options(target_mflops: float | None, name: str) -> dict[str, Any]:
    """The options of the targeted setting ``name``: FLOPs on one 8x8 image, only architectures within the target
    exported (``None``: no target), and its latency loss."""
    loss = {key: target_mflops if value == 'target' else value for key, value in TARGETED[name][1].items()}
    target = {} if target_mflops is None else {'latency_target': target_mflops}
    return dict(applied_hardware='flops', dummy_input=(1, 1, 8, 8), **target, **loss)


@dataclass(frozen=True)
class Job:
    """One search: a searcher on a truth's space at a budget and seed (``target_mflops``: under that target)."""

    truth: str
    searcher: str
    seed: int
    epochs: int
    index: int  # seeds the random subnet timed before the search
    target_mflops: float | None = None


def evaluator(data: dict, epochs: int, seed: int, callbacks: list):
    """NNI's Classification as every searcher gets it: Adam 3e-3, batch 64, search-train and search-val."""
    from nni.nas.evaluator.pytorch import Classification
    return Classification(train_dataloaders=s.digits_loader(data['train'], seed=seed),
                          val_dataloaders=s.digits_loader(data['val'], shuffle=False), num_classes=10,
                          learning_rate=3e-3, max_epochs=epochs, accelerator='cpu', enable_progress_bar=False,
                          logger=False, enable_checkpointing=False, enable_model_summary=False,
                          num_sanity_val_steps=0, callbacks=callbacks)


def architecture_steps(data: dict, epochs: int) -> int:
    """Architecture steps of a plan: (batches per epoch x epochs) weight steps, one architecture step per 5."""
    return len(s.digits_loader(data['train'])) * epochs // ARCH_UPDATE_EVERY


def subnet_epoch_seconds(space_key: str, data: dict, seed: int) -> float:
    """Wall time of one training epoch of a random subnet of the space alone (same evaluator; its first batch
    run but not timed, the epoch's time extrapolated to it)."""
    space = SPACES[space_key]()
    trained = evaluator(data, 1, seed, [])
    trained.module.set_model(space.freeze(s.random_sample(space, seed)))
    timer = h.EpochTimer(skip=1)
    h.quiet_trainer(max_epochs=1, callbacks=[timer]).fit(trained.module, trained.train_dataloaders)
    return timer.seconds / timer.batches * (timer.batches + 1)


def prepared(job: Job) -> tuple[dict, dict]:
    """This process made ready for ``job`` (one torch thread, Lightning quiet): the digits data, and the job's
    record begun with the wall time of a random subnet epoch timed here."""
    torch.set_num_threads(1)
    h.quiet_lightning()
    data = s.digits_tensors()
    record = {'truth': job.truth, 'searcher': job.searcher, 'seed': job.seed, 'epochs': job.epochs,
              'target_mflops': job.target_mflops, 'index': job.index, 'worker': os.getpid(),
              'unit_seconds': round(subnet_epoch_seconds(job.truth, data, job.index), 5)}
    return data, record


def one_search(job: Job) -> dict:
    """Time a random subnet epoch, then run the search; what it exported and how long its batches took."""
    data, record = prepared(job)
    searcher, extra = job.searcher, {}
    if job.target_mflops is not None:
        searcher, extra = TARGETED[job.searcher][0], flops_options(job.target_mflops, job.searcher)
    strategy = SEARCHERS[searcher](job.seed, architecture_steps(data, job.epochs), **extra)
    try:
        record.update(search(job, strategy, data))
    except Exception as error:  # noqa: BLE001  NNI's strategies refuse some spaces: recorded, not fatal
        if not job.searcher.startswith('NNI'):
            raise
        record['unsupported'] = f'{type(error).__name__}: {str(error).strip().splitlines()[0]}'
    return record


def search(job: Job, strategy, data: dict) -> dict:
    """Run ``strategy`` on the job's space and budget (``torch.manual_seed(job.seed)`` first): its top-1 export,
    final distribution, the wall time of its training batches (``strategy`` stays searched for further exports)."""
    from conftest import run_search
    torch.manual_seed(job.seed)
    timer, recorder = h.EpochTimer(skip=0), h.DistributionRecorder()
    with tempfile.TemporaryDirectory() as workdir:
        exp = run_search(SPACES[job.truth](), strategy, evaluator(data, job.epochs, job.seed, [timer, recorder]),
                         Path(workdir))
        export = dict(exp.export_top_models(top_k=1, formatter='dict')[0])
    final = recorder.history[-1]
    maximum = sum(math.log(len(values)) for values in final.values())
    rate = None
    if isinstance(strategy, Proxyless):
        rate = strategy.oneshot_module.architecture_optimizers().optimizer.param_groups[0]['lr']
    return {'export': export, 'argmax': recorder.argmaxes()[-1], 'final_probabilities': _plain(final),
            'arc_learning_rate': rate,
            'settled_at': recorder.settled_at(), 'entropy_fraction': round(h.entropy_of(final) / maximum, 4),
            'train_seconds': round(timer.seconds, 3), **_reranked(job, strategy)}


def _reranked(job: Job, strategy) -> dict:
    """For ours default (no target): the top 10 re-ranked by the supernet's validation accuracy, and its time."""
    if job.searcher != DEFAULT or job.target_mflops is not None:
        return {}
    if not hasattr(strategy, 'rerank'):
        return {'rerank': None}
    started = time.perf_counter()
    best = strategy.rerank(strategy.top_architectures(RERANK_TOP))[0]
    return {'rerank': {'export': dict(best), 'supernet_metric': float(best.supernet_metric),
                       'seconds': round(time.perf_counter() - started, 3)}}


def _plain(probabilities: dict) -> list[list]:
    """A label -> value -> probability dict as JSON-safe rows ``[label, value, probability]`` (values may be
    ints, which JSON keys would turn into strings)."""
    return [[label, value, round(p, 6)] for label, probs in probabilities.items() for value, p in probs.items()]


def probabilities(rows: list[list]) -> dict[str, dict[Any, float]]:
    """The inverse of :func:`_plain`."""
    out: dict[str, dict[Any, float]] = {}
    for label, value, p in rows:
        out.setdefault(label, {})[value] = p
    return out
