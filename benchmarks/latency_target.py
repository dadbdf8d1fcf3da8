"""Accuracy of the architecture exported under a latency target, against NNI's Proxyless and random architectures.

Space: ``DigitsConvSpace`` (three choices of kernel 1/3/5 x width 8/16/48 bottlenecks or skip, then global
average pooling: 1000 architectures on 8x8 digits). Latency is the FLOPs proxy (``applied_hardware='flops'``,
MFLOPs at one 1x8x8 image), deterministic, so "equal predicted latency" is exact and the script does no timing.
The target T is the ``--target-quantile`` of the FLOPs of all 1000 architectures. Digits are split 900
search-train / 400 search-val / 497 test.

* ours, hard target: ``Proxyless(applied_hardware=<the FLOPs table>, latency_target=T, grad_reg_loss_type=None,
  arch_update_every=1, arc_learning_rate=1e-3)``, top-1 export (the most probable architecture predicted within T);
* ours, soft: ``grad_reg_loss_type='add#linear'`` (lambda 0.1) with ``ref_latency=T`` and no hard target;
* NNI 3.0's ``Proxyless`` with its FLOPs penalty (``FlopsProfiler``, hinge at T converted to NNI's FLOPs unit;
  run without it if the penalty fails), its export (a sample from its softmax);
* random: ``--randoms`` architectures per search seed, uniformly among those within 10% of the hard-target
  export's FLOPs, and uniformly among all architectures within T.

Each search runs ``--search-epochs`` epochs (Adam 3e-3, batch 64) for ``--seeds`` seeds. Every architecture is
then retrained from scratch on search-train + search-val for ``--train-epochs`` epochs (Adam 3e-3, batch 64)
with ``--train-seeds`` seeds and scored on the test part; we report mean +- std over all (architecture,
training seed) pairs. Run: ``python benchmarks/latency_target.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import _harness as h
import _spaces as s
from conftest import run_search
from nni.nas.evaluator.pytorch import Classification
from nni_proxyless import Proxyless
from nni_proxyless.latency import build_latency_table

INPUT = (1, 1, 8, 8)


def _evaluator(data: dict, epochs: int, seed: int) -> Classification:
    return Classification(train_dataloaders=s.digits_loader(data['train'], seed=seed),
                          val_dataloaders=s.digits_loader(data['val'], shuffle=False), num_classes=10,
                          learning_rate=3e-3, max_epochs=epochs, accelerator='cpu', enable_progress_bar=False,
                          logger=False, enable_checkpointing=False, enable_model_summary=False,
                          num_sanity_val_steps=0)


def _nni_with_penalty(target_mflops: float, archs: list[dict], table) -> object:
    """NNI's Proxyless with its expectation FLOPs penalty, a hinge at the target in NNI's own FLOPs count."""
    from nni.nas.profiler.pytorch.flops import FlopsProfiler
    profiler = FlopsProfiler(s.DigitsConvSpace(), torch.randn(INPUT))
    scale = statistics.median(profiler.profile(a) / table.predict(a) for a in archs[::37])
    penalty = {'profiler': profiler, 'baseline': target_mflops * scale, 'nonlinear': 'positive', 'scale': 1.0}
    return h.nni_strategy('Proxyless')(penalty=penalty)


OURS_HARD, OURS_SOFT = 'ours, latency_target', 'ours, add#linear'
RANDOM_EQUAL, RANDOM_WITHIN = 'random, equal FLOPs', 'random within target'


def _strategy(method: str, seed: int, target: float, context: dict):
    if method == OURS_HARD:
        return Proxyless(applied_hardware=context['table'], latency_target=target, grad_reg_loss_type=None,
                         dummy_input=INPUT, arch_update_every=1, arc_learning_rate=1e-3, seed=seed)
    if method == OURS_SOFT:
        return Proxyless(applied_hardware=context['table'], grad_reg_loss_type='add#linear', ref_latency=target,
                         grad_reg_loss_params={'lambda': 0.1}, dummy_input=INPUT, arch_update_every=1,
                         arc_learning_rate=1e-3, seed=seed)
    if context.get('nni_penalty_error') is None:
        return _nni_with_penalty(target, context['archs'], context['table'])
    return h.nni_strategy('Proxyless')()


def search(method: str, seed: int, data: dict, epochs: int, target: float, context: dict, workdir: Path) -> dict:
    """One search; its export. NNI's penalty is dropped (and the error kept in ``context``) if it fails.

    For ours, the last epoch's report (expected and argmax latency under the final distribution) is
    kept in ``context['final_reports']``.
    """
    torch.manual_seed(seed)
    strategy = _strategy(method, seed, target, context)
    try:
        exp = run_search(s.DigitsConvSpace(), strategy, _evaluator(data, epochs, seed), workdir)
    except (TypeError, ValueError) as error:
        if method != 'NNI Proxyless' or context.get('nni_penalty_error') is not None:
            raise
        cause = error.__context__ or error
        context['nni_penalty_error'] = f'{type(cause).__name__}: {cause}'
        return search(method, seed, data, epochs, target, context, workdir.with_name(workdir.name + '-nopenalty'))
    reports = getattr(strategy.oneshot_module, 'reports', None)
    if reports:
        figures = {k: round(float(v), 4) for k, v in reports[-1].items() if 'latency' in k}
        context.setdefault('final_reports', {}).setdefault(method, []).append(figures)
    return dict(exp.export_top_models(top_k=1, formatter='dict')[0])


def retrain(arch: dict, data: dict, epochs: int, seed: int) -> float:
    """Test accuracy of ``arch`` trained from scratch on search-train + search-val (Adam 3e-3, batch 64)."""
    torch.manual_seed(seed)
    model = s.DigitsConvSpace().freeze(arch)
    x = torch.cat([data['train'][0], data['val'][0]])
    y = torch.cat([data['train'][1], data['val'][1]])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=gen).split(64):
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        return (model(data['test'][0]).argmax(1) == data['test'][1]).float().mean().item()


def _randoms(archs: list[dict], accept, count: int, seed: int) -> list[dict]:
    chosen = [a for a in archs if accept(a)]
    return random.Random(seed).sample(chosen, min(count, len(chosen)))


def _score(group: list[tuple[dict, list[float]]], table, target: float) -> dict:
    accuracies = [acc for _, accs in group for acc in accs]
    return {'architectures': [{'arch': a, 'mflops': round(table.predict(a), 4), 'test_accuracy': accs}
                              for a, accs in group],
            'accuracy_mean': round(statistics.mean(accuracies), 4),
            'accuracy_std': round(statistics.stdev(accuracies), 4) if len(accuracies) > 1 else 0.0,
            'mflops_mean': round(statistics.mean(table.predict(a) for a, _ in group), 4),
            'within_target': sum(table.predict(a) <= target for a, _ in group), 'count': len(group)}


def _searches(args, data: dict, target: float, context: dict) -> dict[str, list[dict]]:
    """Exports of every method and seed, and the random draws beside them."""
    table, archs = context['table'], context['archs']
    groups = {name: [] for name in (OURS_HARD, OURS_SOFT, 'NNI Proxyless', RANDOM_EQUAL, RANDOM_WITHIN)}
    with tempfile.TemporaryDirectory() as workdir:
        for seed in range(args.seeds):
            for method in (OURS_HARD, OURS_SOFT, 'NNI Proxyless'):
                folder = Path(workdir) / f'{len(groups[method])}-{seed}-{method.replace(" ", "_")}'
                groups[method].append(search(method, seed, data, args.search_epochs, target, context, folder))
            ours = table.predict(groups[OURS_HARD][-1])
            groups[RANDOM_EQUAL] += _randoms(archs, lambda a: abs(table.predict(a) - ours) <= 0.1 * ours,
                                             args.randoms, seed)
            groups[RANDOM_WITHIN] += _randoms(archs, lambda a: table.predict(a) <= target, args.randoms, seed)
    return groups


def run(args) -> dict:
    """Searches, random draws and retraining; the figures per group."""
    data, space = s.digits_tensors(), s.DigitsConvSpace()
    table = build_latency_table(space, 'flops', INPUT)
    archs = s.all_samples(space)
    ranked = sorted(table.predict(a) for a in archs)
    target = ranked[int(args.target_quantile * (len(ranked) - 1))]
    context = {'table': table, 'archs': archs}
    groups = _searches(args, data, target, context)
    scored = {name: _score([(a, [retrain(a, data, args.train_epochs, t) for t in range(args.train_seeds)])
                            for a in group], table, target) for name, group in groups.items()}
    return {'target_mflops': round(target, 4), 'nni_penalty_error': context.get('nni_penalty_error'),
            'space_mflops': [round(ranked[0], 4), round(ranked[-1], 4)],
            'architectures_within_target': sum(f <= target for f in ranked), 'groups': scored,
            'final_reports': context.get('final_reports', {})}


def main(argv: list[str] | None = None) -> dict:
    parser = h.parser(__doc__)
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--search-epochs', type=int, default=15)
    parser.add_argument('--train-epochs', type=int, default=15)
    parser.add_argument('--train-seeds', type=int, default=2)
    parser.add_argument('--randoms', type=int, default=2)
    parser.add_argument('--target-quantile', type=float, default=0.25)
    args = parser.parse_args(argv)
    started, result = time.perf_counter(), h.start('latency_target.py', argv)
    if args.quick:
        args.seeds, args.search_epochs, args.train_epochs, args.train_seeds, args.randoms = 1, 1, 1, 1, 1
    result.update(space='DigitsConvSpace: 3 choices of k1/3/5 x w8/16/48 or skip, 8x8 digits, FLOPs proxy',
                  seeds=args.seeds, search_epochs=args.search_epochs, train_epochs=args.train_epochs,
                  train_seeds=args.train_seeds, **run(args))
    return h.finish(result, args.json, started)


if __name__ == '__main__':
    main()
