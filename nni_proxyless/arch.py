"""Architecture parameters: one logit tensor per label, the paths sampled from them, the ``two``-mode rescale.

Every mixed op asks this store which of its candidates runs at each step. Labels shared by several choices
share one logit tensor and one sample per step. Sampling is drawn from a ``torch.Generator`` seeded by
``(seed, step, phase)``, so every process of a distributed search draws the same paths without talking, and a
resumed search draws what the uninterrupted one would have drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations, permutations
from typing import Any, Literal, Sequence

import torch
from torch import nn

__all__ = ['ArchParameters', 'Choice', 'Path', 'BinaryMode']

BinaryMode = Literal['two', 'full_v2']
ChoiceKind = Literal['layer', 'input', 'depth']
Occurrence = tuple[tuple[str, frozenset], ...]

_MAX_SUBSETS = 100_000


@dataclass(frozen=True)
class Choice:
    """What a label chooses from.

    Attributes:
        label: the NNI label.
        kind: ``'layer'`` (a ``LayerChoice``), ``'input'`` (an ``InputChoice``) or ``'depth'`` (a ``Repeat``).
        values: the candidates as NNI's samples spell them (names, input indices, depths).
        n_chosen: how many candidates one sample takes (only ``InputChoice`` takes more than one).
    """

    label: str
    kind: ChoiceKind
    values: tuple
    n_chosen: int = 1

    def __post_init__(self) -> None:
        # NNI's labels are a str subclass; plain strings keep checkpoints loadable with weights_only=True
        object.__setattr__(self, 'label', str.__str__(self.label))

    def sample_value(self, indices: Sequence[int]) -> Any:
        """The value NNI's ``freeze`` expects for these candidate indices."""
        if self.kind == 'input':
            return sorted(int(i) for i in indices)
        return self.values[indices[0]]


@dataclass
class Path:
    """The candidates of one label that run in the current step.

    Attributes:
        active: indices of the candidates whose outputs are used (one, or ``n_chosen`` for an ``InputChoice``).
        gated: indices whose binary gates receive gradients (architecture step only; empty otherwise).
        support: indices the gate weights are a softmax over: the sampled pair in ``two`` mode, all candidates
            in ``full_v2`` mode.
        logits: the label's logit tensor during an architecture step, ``None`` otherwise.
    """

    active: tuple[int, ...]
    gated: tuple[int, ...] = ()
    support: tuple[int, ...] = ()
    logits: torch.Tensor | None = None

    def weights(self) -> torch.Tensor:
        """Gate weights over all candidates: the softmax over ``support``, zero elsewhere (differentiable)."""
        assert self.logits is not None, 'weights exist only during an architecture step'
        support = list(self.support)
        weights = torch.zeros_like(self.logits)
        return weights.index_put((torch.tensor(support),), torch.softmax(self.logits[support], dim=-1))


class ArchParameters(nn.Module):
    """The architecture logits of a search space, one tensor per label.

    Args:
        seed: seeds the path sampler; the same seed draws the same paths at the same step.

    Example::

        arch = ArchParameters(seed=0)
        arch.register(Choice('conv', 'layer', ('k3', 'k5')))
        paths = arch.sample(step=0)            # {'conv': Path(active=(1,))}
    """

    def __init__(self, *, seed: int = 0):
        super().__init__()
        self.seed = int(seed)
        self.choices: dict[str, Choice] = {}
        self.logits = nn.ParameterList()
        self._index: dict[str, int] = {}
        # Labels nested in a Repeat block or a LayerChoice candidate take part only when their enclosing
        # choices select them: label -> occurrences, each a tuple of (enclosing label, values that select it).
        self.conditions: dict[str, list[Occurrence]] = {}

    # ----------------------------------------------------------------------------------------- registry

    def register(self, choice: Choice) -> None:
        """Add a label, or check that a shared label chooses from the same candidates."""
        known = self.choices.get(choice.label)
        if known is not None:
            if known != choice:
                raise ValueError(f'Label {choice.label!r} is shared by choices that differ: {known} and {choice}. '
                                 'Shared labels must have the same kind and candidates.')
            return
        if len(choice.values) < 1 or not 1 <= choice.n_chosen <= len(choice.values):
            raise ValueError(f'Label {choice.label!r}: cannot choose {choice.n_chosen} of {len(choice.values)} '
                             'candidates.')
        self.choices[choice.label] = choice
        self._index[choice.label] = len(self.logits)
        self.logits.append(nn.Parameter(torch.zeros(len(choice.values))))

    def add_occurrence(self, label: str, occurrence: Occurrence) -> None:
        """Record one place where ``label`` occurs: active when every enclosing label takes a selecting value."""
        occurrences = self.conditions.setdefault(label, [])
        if occurrence not in occurrences:
            occurrences.append(occurrence)

    def labels(self) -> list[str]:
        """All labels, in registration order."""
        return list(self.choices)

    def logit(self, label: str) -> nn.Parameter:
        """The logit tensor of ``label``."""
        return self.logits[self._index[label]]

    # ------------------------------------------------------------------------------------ distributions

    def probs(self, label: str) -> torch.Tensor:
        """Candidate probabilities of ``label`` (a detached copy)."""
        return torch.softmax(self.logit(label).detach(), dim=-1)

    def entropy(self) -> float:
        """Sum over labels of the entropy (nats) of each label's distribution."""
        return float(sum(torch.special.entr(self.probs(label)).sum() for label in self.choices))

    def is_active(self, label: str, sample: dict[str, Any]) -> bool:
        """Whether ``label`` takes part in the architecture ``sample`` (which gives its enclosing labels)."""
        occurrences = self.conditions.get(label)
        if not occurrences:
            return True
        return any(all(outer in sample and sample[outer] in selecting for outer, selecting in occurrence)
                   for occurrence in occurrences)

    def label_distribution(self, label: str) -> list[tuple[Any, float]]:
        """Every value ``label`` can take in an export, with its log-probability, most probable first.

        For an ``InputChoice`` taking ``m > 1`` inputs the values are the ``m``-subsets, with the probability
        of drawing that subset in ``m`` draws without replacement.
        """
        choice = self.choices[label]
        log_p = torch.log_softmax(self.logit(label).detach().double(), dim=-1).tolist()
        if choice.n_chosen == 1:
            pairs = [(choice.sample_value([i]), log_p[i]) for i in range(len(log_p))]
        else:
            pairs = [(choice.sample_value(s), _log_prob_of_subset(log_p, s))
                     for s in _subsets(len(log_p), choice.n_chosen, label)]
        return sorted(pairs, key=lambda pair: -pair[1])

    def argmax(self) -> dict[str, Any]:
        """The most probable value of every label (ties go to the first candidate)."""
        return {label: self.label_distribution(label)[0][0] for label in self.choices}

    # -------------------------------------------------------------------------------------------- paths

    def generator(self, step: int, phase: int) -> torch.Generator:
        """The sampler for one step and phase (0: weights, 1: architecture, 2 and up: free for callers)."""
        return torch.Generator().manual_seed(((self.seed * 1_000_003 + step) * 1_009 + phase) % (2 ** 63))

    def sample(self, step: int, phase: int = 0) -> dict[str, Path]:
        """Paths of a whole architecture drawn from the distribution (``n_chosen`` inputs for an InputChoice).

        Phase 0 is the weight step's draw; other phases give independent draws at the same step.
        """
        rng = self.generator(step, phase)
        paths = {}
        for label, choice in self.choices.items():
            drawn = torch.multinomial(self.probs(label), choice.n_chosen, generator=rng)
            paths[label] = Path(active=tuple(drawn.tolist()))
        return paths

    def sample_for_update(self, step: int, mode: BinaryMode) -> dict[str, Path]:
        """Paths for an architecture step, with gates and the live logits (DESIGN section 3).

        ``two`` mode draws two distinct candidates, then the active one from the softmax over the pair;
        ``full_v2`` draws the active candidate from the full distribution and gates all candidates.
        An ``InputChoice`` taking several inputs gates the inputs it draws, weighted over all candidates.
        """
        rng = self.generator(step, 1)
        paths = {}
        for label, choice in self.choices.items():
            logits, probs = self.logit(label), self.probs(label)
            everything = tuple(range(len(probs)))
            if choice.n_chosen > 1:
                drawn = tuple(torch.multinomial(probs, choice.n_chosen, generator=rng).tolist())
                paths[label] = Path(active=drawn, gated=drawn, support=everything, logits=logits)
            elif mode == 'two' and len(probs) > 1:
                pair = tuple(torch.multinomial(probs, 2, generator=rng).tolist())
                q = torch.softmax(logits.detach()[list(pair)], dim=-1)
                active = pair[int(torch.multinomial(q, 1, generator=rng))]
                paths[label] = Path(active=(active,), gated=pair, support=pair, logits=logits)
            else:
                active = int(torch.multinomial(probs, 1, generator=rng))
                paths[label] = Path(active=(active,), gated=everything, support=everything, logits=logits)
        return paths

    def argmax_paths(self) -> dict[str, Path]:
        """Paths of the most probable architecture (what validation and export use)."""
        paths = {}
        for label, choice in self.choices.items():
            # ranked by the logits themselves: float32 probabilities can tie where the logits do not
            drawn = torch.argsort(self.logit(label).detach(), descending=True, stable=True)[:choice.n_chosen]
            paths[label] = Path(active=tuple(drawn.tolist()))
        return paths

    def sample_of(self, paths: dict[str, Path]) -> dict[str, Any]:
        """The NNI sample of an architecture given by its paths (labels it does not use are dropped)."""
        full = {label: self.choices[label].sample_value(path.active) for label, path in paths.items()}
        return {label: value for label, value in full.items() if self.is_active(label, full)}

    def paths_for(self, sample: dict[str, Any]) -> dict[str, Path]:
        """Paths of a fixed architecture given as an NNI sample (inactive labels may be missing)."""
        paths = {}
        for label, choice in self.choices.items():
            if label not in sample:
                paths[label] = Path(active=tuple(range(choice.n_chosen)))  # inactive: any valid path
            elif choice.kind == 'input':
                paths[label] = Path(active=tuple(sample[label]))
            else:
                paths[label] = Path(active=(choice.values.index(sample[label]),))
        return paths

    # ------------------------------------------------------------------------------------- two-mode rescale

    @staticmethod
    def pairs_of(paths: dict[str, Path]) -> dict[str, tuple[int, ...]]:
        """Labels updated on a sampled pair (``two`` mode) and the pair, for :meth:`rescale`."""
        return {label: path.support for label, path in paths.items()
                if path.logits is not None and len(path.support) < len(path.logits)}

    def snapshot(self, pairs: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
        """The pair logits before an optimiser step."""
        return {label: self.logit(label).detach()[list(pair)].clone() for label, pair in pairs.items()}

    @torch.no_grad()
    def rescale(self, pairs: dict[str, tuple[int, ...]], before: dict[str, torch.Tensor]) -> None:
        """Shift each updated pair so that the candidates outside the pair keep their probabilities.

        With the pair's logits before (old) and after (new) the step,
        ``offset = log(sum exp(new) / sum exp(old))`` and ``a_m -= offset`` for ``m`` in the pair.
        """
        for label, pair in pairs.items():
            logits = self.logit(label)
            index = list(pair)
            offset = torch.logsumexp(logits[index], dim=0) - torch.logsumexp(before[label], dim=0)
            logits[index] -= offset


def _subsets(n: int, m: int, label: str) -> list[tuple[int, ...]]:
    if math.comb(n, m) * math.factorial(m) > _MAX_SUBSETS:
        raise ValueError(f'InputChoice {label!r} chooses {m} of {n} inputs: too many subsets to rank exactly '
                         f'(limit {_MAX_SUBSETS} ordered draws).')
    return list(combinations(range(n), m))


def _log_prob_of_subset(log_p: list[float], subset: tuple[int, ...]) -> float:
    """Log-probability that ``len(subset)`` draws without replacement give exactly ``subset``."""
    total = 0.0
    for order in permutations(subset):
        remaining, log_prob = 1.0, 0.0
        for i in order:
            log_prob += log_p[i] - math.log(max(remaining, 1e-300))
            remaining -= math.exp(log_p[i])
        total += math.exp(log_prob)
    return math.log(total)
