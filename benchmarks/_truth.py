"""The ground-truth tables of the digits spaces and what is scored against them: ranks, random search, Kendall tau.

Pure functions over the tables ``ground_truth.py`` writes (no training here): the true rank of an architecture,
random search at a given compute simulated from the table's recorded trainings, the rank correlation of a
searcher's distribution with the true accuracies, and how noisy the truth itself is.

A table's rows hold architectures in the space's canonical form: labels the network does not use (the kernels of
blocks beyond ``DigitsValueSpace``'s depth) are left out. Exports that carry them (NNI's DARTS and Proxyless
export every label) are found by :meth:`Truth.row` as the row whose labels are a subset of theirs.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from scipy.stats import kendalltau

TOP = 10  # "in the true top 10"

# space key (``ground_truth.py --space``) -> how many architectures a complete table holds
ARCHITECTURES = {'cell': 125, 'value': 117}
_MISSING = object()  # a label an export lacks (never equal to a table's value)


def key(arch: dict[str, Any]) -> tuple:
    """An architecture as a hashable key, in the labels' sorted order."""
    return tuple(sorted(arch.items()))


@dataclass
class Truth:
    """The table: every architecture with its true accuracy and the figures of its trainings."""

    rows: list[dict]  # arch, true_accuracy, test, val, short_val per seed; value tables: parameters, mflops
    seeds: int
    epochs: int
    short_epochs: int
    about: dict = field(default_factory=dict)  # how it was made: command, machine, space, recipe, split, time
    space_key: str = 'cell'

    @classmethod
    def load(cls, path: Path) -> 'Truth':
        """Read a table of ``ground_truth.py``; refuses one that does not hold every architecture of its space."""
        data = json.loads(Path(path).read_text())
        about = {k: data.get(k) for k in ('command', 'machine', 'space', 'recipe', 'split', 'wall_seconds', 'started')}
        space_key = data.get('space_key', 'cell')  # tables from before the value space are the cell space's
        truth = cls(data['architectures'], data['seeds'], data['epochs'], data['short_epochs'], about, space_key)
        expected = ARCHITECTURES.get(space_key)
        if expected is None or len(truth.rows) < expected:
            raise ValueError(f'{path} holds {len(truth.rows)} architectures of space {space_key!r}, not the whole '
                             f'space ({expected}): regenerate it with `python benchmarks/ground_truth.py --space '
                             f'{space_key} --json {path}`.')
        return truth

    def __post_init__(self) -> None:
        self._by_key = {key(row['arch']): row for row in self.rows}
        accuracies = sorted((row['true_accuracy'] for row in self.rows), reverse=True)
        self.best = accuracies[0]
        self.top_threshold = accuracies[min(TOP, len(accuracies)) - 1]

    def row(self, arch: dict) -> dict:
        """The row of ``arch``: the one with its labels and values, else the one whose labels are a subset of its
        labels with the same values (an export carrying labels the network does not use)."""
        found = self._by_key.get(key(arch))
        if found is not None:
            return found
        matches = [row for row in self.rows if all(arch.get(label, _MISSING) == value
                                                   for label, value in row['arch'].items())]
        if len(matches) != 1:
            problem = 'is not in' if not matches else f'matches {len(matches)} rows of'
            raise KeyError(f'{arch} {problem} the ground-truth table of space {self.space_key!r} (built for '
                           'another space?)')
        return matches[0]

    def restricted(self, keep: Callable[[dict], bool]) -> 'Truth':
        """The table of the rows ``keep`` accepts (ranks, the best and random search then among those alone)."""
        rows = [row for row in self.rows if keep(row)]
        if not rows:
            raise ValueError(f'No architecture of space {self.space_key!r} is kept: loosen the condition.')
        return Truth(rows, self.seeds, self.epochs, self.short_epochs, self.about, self.space_key)

    def accuracy(self, arch: dict) -> float:
        return self.row(arch)['true_accuracy']

    def rank(self, arch: dict) -> int:
        """1 + the number of architectures with a strictly higher true accuracy (1 = the best)."""
        accuracy = self.accuracy(arch)
        return 1 + sum(row['true_accuracy'] > accuracy for row in self.rows)

    def score(self, arch: dict) -> dict:
        """True accuracy, regret (best true accuracy minus this one's), rank, and whether it is in the top 10."""
        accuracy = self.accuracy(arch)
        return {'true_accuracy': accuracy, 'regret': round(self.best - accuracy, 4), 'rank': self.rank(arch),
                'in_top': accuracy >= self.top_threshold}


def random_search(truth: Truth, budget: float, protocol_epochs: int, rng: random.Random) -> dict:
    """One random search of ``budget`` subnet-epochs: ``max(1, budget // protocol_epochs)`` distinct uniform
    architectures, each trained alone once (one of the table's seeds, drawn), the best search-val accuracy wins.

    ``protocol_epochs`` is the table's ``epochs`` (full training, field ``val``) or ``short_epochs`` (``short_val``).
    """
    field = 'val' if protocol_epochs == truth.epochs else 'short_val'
    if protocol_epochs not in (truth.epochs, truth.short_epochs):
        raise ValueError(f'protocol_epochs must be {truth.epochs} or {truth.short_epochs}, got {protocol_epochs}.')
    count = min(len(truth.rows), max(1, int(budget // protocol_epochs)))
    sampled = rng.sample(truth.rows, count)
    scored = [(row[field][rng.randrange(truth.seeds)], -i, row) for i, row in enumerate(sampled)]
    return truth.score(max(scored)[2]['arch']) | {'architectures': count}


def random_search_summary(truth: Truth, budget: float, protocol_epochs: int, repeats: int, seed: int) -> dict:
    """Medians and quartiles over ``repeats`` simulated random searches at ``budget`` subnet-epochs."""
    rng = random.Random(seed)
    runs = [random_search(truth, budget, protocol_epochs, rng) for _ in range(repeats)]
    accuracies = [run['true_accuracy'] for run in runs]
    quartiles = statistics.quantiles(accuracies, n=4)
    return {'budget': round(budget, 2), 'protocol_epochs': protocol_epochs, 'architectures': runs[0]['architectures'],
            'repeats': repeats, 'true_accuracy_median': statistics.median(accuracies),
            'true_accuracy_quartiles': [quartiles[0], quartiles[2]],
            'regret_median': round(statistics.median(run['regret'] for run in runs), 4),
            'regret_mean': round(statistics.mean(run['regret'] for run in runs), 4),
            'rank_median': statistics.median(run['rank'] for run in runs),
            'in_top_fraction': round(sum(run['in_top'] for run in runs) / repeats, 4)}


def product_probabilities(truth: Truth, probabilities: dict[str, dict[Any, float]]) -> list[float]:
    """P(m) = prod over labels of p_label(m_label), for every architecture of the table in its order.

    A label a row leaves out (unused by that network) counts at its most probable value, as our export ranks
    architectures, so that a shallow network is not preferred merely for having fewer labels.
    """
    return [math.prod(probs[row['arch'][label]] if label in row['arch'] else max(probs.values())
                      for label, probs in probabilities.items()) for row in truth.rows]


def kendall_tau(truth: Truth, probabilities: dict[str, dict[Any, float]]) -> float:
    """Kendall's tau-b between a searcher's product distribution over architectures and the true accuracies."""
    tau = kendalltau(product_probabilities(truth, probabilities), [row['true_accuracy'] for row in truth.rows])
    return round(float(tau.statistic), 4)


def truth_noise(truth: Truth) -> dict:
    """How much the truth depends on the training seed.

    ``seed_tau``: Kendall tau between the test accuracies of two training seeds, median over seed pairs.
    ``single_seed_best_rank``: for each seed, the architecture best by that seed's test accuracy alone, ranked by
    the mean of the other seeds (an exhaustive search that trains each architecture once, scored on fresh seeds).
    ``test_std_median``: the median over architectures of the standard deviation of test accuracy over seeds.
    """
    columns = [[row['test'][seed] for row in truth.rows] for seed in range(truth.seeds)]
    taus = [kendalltau(columns[a], columns[b]).statistic for a, b in itertools.combinations(range(truth.seeds), 2)]
    ranks = []
    for seed in range(truth.seeds):
        others = [[row['test'][s] for s in range(truth.seeds) if s != seed] for row in truth.rows]
        means = [statistics.mean(values) for values in others]
        best = max(range(len(truth.rows)), key=lambda i: columns[seed][i])
        ranks.append(1 + sum(mean > means[best] for mean in means))
    return {'seed_tau': round(float(statistics.median(taus)), 4), 'single_seed_best_rank': ranks,
            'test_std_median': round(statistics.median(statistics.stdev(row['test']) for row in truth.rows), 4)}
