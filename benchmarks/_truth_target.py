"""The search under a FLOPs target on the value truth: the target, which architectures meet it, and the scores.

The target is the median of the table's MFLOPs (``ground_truth.py`` counts them with torch's flop counter at one
8x8 image, as the package's ``applied_hardware='flops'`` does). An export is scored against the architectures
that meet the target: its regret is the best true accuracy among them minus its own, its rank is 1 + the number
of them with a strictly higher true accuracy. Random search at equal compute draws from them alone (it can count
FLOPs without training).
"""

from __future__ import annotations

import statistics
from typing import Any

import _truth as t

AGREEMENT = 0.01  # largest relative difference at which the table's MFLOPs and the package's count as the same


def target_mflops(truth: t.Truth) -> float:
    """The median of the table's MFLOPs."""
    return statistics.median(row['mflops'] for row in truth.rows)


def package_mflops(truth: t.Truth, target: float) -> dict[tuple, float]:
    """The package's FLOPs table (``strategy.latency_table.predict``) for every architecture of the table."""
    from _truth_searchers import DEFAULT, SPACES, flops_options
    from nni_proxyless import Proxyless
    strategy = Proxyless(**flops_options(target, DEFAULT))
    strategy.mutate_model(SPACES[truth.space_key]())
    table = strategy.latency_table
    return {t.key(row['arch']): table.predict(row['arch']) for row in truth.rows}


def flops_check(truth: t.Truth, package: dict[tuple, float]) -> dict[str, Any]:
    """How closely the package's MFLOPs agree with the table's; which figure then decides "meets the target"."""
    differences = [abs(package[t.key(row['arch'])] - row['mflops']) / row['mflops'] for row in truth.rows]
    largest = max(differences)
    worst = truth.rows[differences.index(largest)]
    return {'architectures': len(differences), 'largest_relative_difference': round(largest, 6),
            'at': worst['arch'], 'agree': largest <= AGREEMENT, 'tolerance': AGREEMENT,
            'meets_by': 'table' if largest <= AGREEMENT else 'package'}


def mflops_of(truth: t.Truth, package: dict[tuple, float], check: dict, arch: dict) -> float:
    """An architecture's MFLOPs by the figure the check chose (the table's when the two agree)."""
    row = truth.row(arch)
    return row['mflops'] if check['meets_by'] == 'table' else package[t.key(row['arch'])]


def qualifying(truth: t.Truth, package: dict[tuple, float], check: dict, target: float) -> t.Truth:
    """The table of the architectures that meet the target."""
    return truth.restricted(lambda row: mflops_of(truth, package, check, row['arch']) <= target)


def score(truth: t.Truth, within: t.Truth, arch: dict, mflops: float, target: float) -> dict[str, Any]:
    """An export under the target: regret and rank among the qualifying architectures, whether it meets the
    target, its MFLOPs over the target."""
    accuracy = truth.accuracy(arch)
    return {'true_accuracy': accuracy, 'regret': round(within.best - accuracy, 4),
            'rank': 1 + sum(row['true_accuracy'] > accuracy for row in within.rows),
            'meets_target': mflops <= target, 'mflops': round(mflops, 6),
            'mflops_over_target': round(mflops / target, 4)}


def summarise(runs: list[dict], within: t.Truth, repeats: int) -> dict[str, Any]:
    """Over seeds: mean regret, median rank among qualifying ones, how many met the target, the cost; random
    search among the qualifying architectures at that cost under both protocols."""
    cost = statistics.median(run['cost_subnet_epochs'] for run in runs)
    return {'cost_subnet_epochs': round(cost, 2),
            'regret_mean': round(statistics.mean(run['regret'] for run in runs), 4),
            'regret_median': round(statistics.median(run['regret'] for run in runs), 4),
            'rank_median': statistics.median(run['rank'] for run in runs), 'ranks': [run['rank'] for run in runs],
            'meets_target': sum(run['meets_target'] for run in runs),
            'mflops_over_target_median': round(statistics.median(run['mflops_over_target'] for run in runs), 4),
            'random': {str(e): t.random_search_summary(within, cost, e, repeats, seed=0)
                       for e in (within.short_epochs, within.epochs)},
            'runs': runs}
