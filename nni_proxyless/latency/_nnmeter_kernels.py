"""nn-Meter's kernel detection on a recorded op graph: fuse ops into kernels, then compute each kernel's features.

Fusion follows nn-Meter 2.0's ``RuleSplitter`` with the device's ``fusion_rules.json``:

1. Multi-op blocks first: squeeze-and-excitation blocks (:func:`_se_blocks`) become one ``se`` op, and every
   obeyed rule of three or more ops (``BF_conv_bn_relu``) fuses a chain of those op types into one op.
2. Then pairs, in execution order: an op (or a fused group, typed by its first op) absorbs its consumer when the
   rule ``BF_<type>_<consumer type>`` is obeyed, and keeps trying with the new consumers. Under the rule ``MON``
   (multiple outbound nodes) false, an op whose output feeds several ops fuses with none of them.

A kernel is named by its ops joined with ``-`` (``conv-bn-relu``, ``bn-relu``, ``add-relu``, ``se-relu``) and
priced by nn-Meter's predictor for that name (``get_kernel_name``: every conv kernel by ``conv-bn-relu``, every
depthwise one by ``dwconv-bn-relu``, ``fc-relu`` by ``fc``, ...). Its features come from its first op, with the
layouts and formulas of nn-Meter's ``get_predict_features`` (see :func:`features`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ._nnmeter_graph import Op

__all__ = ['Kernel', 'FusionRules', 'DEFAULT_RULES', 'detect_kernels', 'predictor_name', 'features']

# fused op strings priced by a predictor of another name (nn-Meter's get_kernel_name)
_ALIASES = {'fc-relu': 'fc', 'gap': 'global-avgpool', 'bn-relu': 'bnrelu', 'add-relu': 'addrelu', 'se-relu': 'se'}
# ops an SE block's gating branch may contain, from the global pooling to the gate
_SE_BRANCH = frozenset({'gap', 'conv', 'fc', 'relu', 'hswish', 'sigmoid', 'hardsigmoid', 'add', 'div', 'mul'})


@dataclass(frozen=True)
class Kernel:
    """One nn-Meter kernel of a call.

    Attributes:
        name: the predictor that prices it (``'conv-bn-relu'``, ``'fc'``, ...; the op string when none does).
        op: its fused op types as nn-Meter names them, e.g. ``'dwconv-bn-relu'``, ``'conv-bn'``, ``'add'``.
        features: its feature row in nn-Meter's layout for ``name``; ``()`` when nn-Meter has no layout for it.
        where: the module that ran its first op (``'path (Type)'``).
    """

    name: str
    op: str
    features: tuple[float, ...]
    where: str


@dataclass(frozen=True)
class FusionRules:
    """The obeyed fusion rules of an nn-Meter predictor package.

    Attributes:
        pairs: ``(producer type, consumer type)`` pairs that fuse (``BF_conv_bn`` -> ``('conv', 'bn')``).
        chains: op-type chains of three or more that fuse (``BF_conv_bn_relu``).
        multi_outbound: nn-Meter's ``MON`` rule: an op feeding several ops may still fuse (with the first one).
    """

    pairs: frozenset[tuple[str, str]]
    chains: tuple[tuple[str, ...], ...]
    multi_outbound: bool = False

    @classmethod
    def from_json(cls, rules: dict[str, Any]) -> 'FusionRules':
        """Parse ``fusion_rules.json`` (``{"BF_conv_bn": {"obey": true}, "MON": {"obey": false}, ...}``).

        Raises:
            ValueError: a rule is not an object with an ``obey`` entry.
        """
        obeyed = []
        for name, rule in rules.items():
            if not isinstance(rule, dict) or 'obey' not in rule:
                raise ValueError(f'fusion rule {name!r} is not an object with "obey": {rule!r}')
            if name.startswith('BF_') and rule['obey']:
                obeyed.append(tuple(name.split('_')[1:]))
        pairs = frozenset(ops for ops in obeyed if len(ops) == 2)
        chains = tuple(ops for ops in obeyed if len(ops) > 2)
        return cls(pairs, chains, bool((rules.get('MON') or {}).get('obey')))


DEFAULT_RULES = FusionRules(
    frozenset({('conv', 'bn'), ('conv', 'relu'), ('conv', 'hswish'), ('dwconv', 'bn'), ('dwconv', 'relu'),
               ('bn', 'relu'), ('add', 'relu'), ('fc', 'relu'), ('se', 'relu')}),
    (('conv', 'bn', 'relu'), ('dwconv', 'bn', 'relu')))
"""Rules used when a package has no ``fusion_rules.json``: conv/dwconv-bn-relu, bn-relu, add-relu, fc-relu, se-relu."""


def detect_kernels(ops: Sequence[Op], rules: FusionRules) -> list[Kernel]:
    """Fuse a call's ops into nn-Meter kernels, with their features (see the module docstring)."""
    consumers: list[set[int]] = [set() for _ in ops]
    for j, op in enumerate(ops):
        for i in op.inputs:
            if i >= 0:
                consumers[i].add(j)
    blocks = _fused_blocks(ops, consumers, rules)
    block_of = {member: first for first, (_, members) in blocks.items() for member in members}
    outs = {first: {block_of[c] for m in members for c in consumers[m]} - {first}
            for first, (_, members) in blocks.items()}
    types = {first: kind for first, (kind, _) in blocks.items()}
    kernels = []
    for first, members in _fuse_pairs(sorted(blocks), types, outs, rules).items():
        op = '-'.join(types[m] for m in members)
        name = predictor_name(op)
        kernels.append(Kernel(name, op, features(name, ops[first]), ops[first].where))
    return kernels


def predictor_name(op: str) -> str:
    """nn-Meter's predictor for a fused op string (its ``get_kernel_name``)."""
    first = op.split('-')[0]
    if first == 'dwconv':
        return 'dwconv-bn-relu'
    if first == 'conv':
        return 'conv-bn-relu'
    return _ALIASES.get(op, op)


def features(name: str, op: Op) -> tuple[float, ...]:
    """A kernel's feature row in nn-Meter 2.0's layout (``get_predict_features``), from its first op.

    Convs: ``[inputh, cin, cout, ks, s, flops/2e6, params/1e6]`` with nn-Meter's counts ``params = cout *
    (ks*ks*cin + 1)`` (``cout * (ks*ks + 1)`` depthwise; groups and a missing bias are not counted) and ``flops =
    2 * inputh/s * inputh/s * params``. ``fc``: ``[cin, cout, flop/2e6, flop/1e6]`` with ``flop = (2*cin + 1) *
    cout``. Pools: ``[inputh, cin, cout, ks, s]``. ``global-avgpool``: ``[1, cin]`` (nn-Meter's inputh lookup
    always falls back to 1). ``se``: ``[inputw, cin]`` of the block's input. ``add``/``addrelu``: ``[inputh,
    cin1, cin2]``. ``concat``: ``[inputh, n, c1, c2, c3, c4]``, zero-padded (more than 4 inputs: the first 4
    channels and n = 6, as nn-Meter does). Others: ``[inputh, cin]``. A 2-D input (N, C) is a 1x1 map. ``()``
    when nn-Meter has no layout for ``name``.
    """
    if name in ('conv-bn-relu', 'dwconv-bn-relu'):
        h, cin, cout, k, s = _hw(op)[0], _channels(op), op.out_shape[1], op.ks, op.stride
        params = cout * (k * k + 1) if name == 'dwconv-bn-relu' else cout * (k * k * cin + 1)
        flops = 2 * h / s * h / s * params  # nn-Meter's expression and order: the same floats
        return (h, cin, cout, k, s, flops / 2e6, params / 1e6)
    if name == 'fc':
        cin, cout = op.in_shapes[0][-1], op.out_shape[-1]
        flop = (2 * cin + 1) * cout
        return (cin, cout, flop / 2e6, flop / 1e6)
    if name in ('maxpool', 'avgpool'):
        return (_hw(op)[0], _channels(op), op.out_shape[1], op.ks, op.stride)
    if name == 'global-avgpool':
        return (1, _channels(op))
    if name == 'se':  # its first op is the global pool of the block's input
        return (_hw(op)[1], _channels(op))
    if name in ('add', 'addrelu'):
        second = op.in_shapes[1] if len(op.in_shapes) > 1 else op.in_shapes[0]
        return (_hw(op)[0], _channels(op), second[1] if len(second) > 1 else second[0])
    if name == 'concat':
        return _concat_features(op)
    if name in ('hswish', 'bn', 'relu', 'bnrelu', 'split', 'channelshuffle'):
        return (_hw(op)[0], _channels(op))
    return ()


def _concat_features(op: Op) -> tuple[float, ...]:
    row = [_hw(op)[0], len(op.in_shapes)] + [s[1] if len(s) > 1 else s[0] for s in op.in_shapes]
    if len(row) > 6:
        row = row[:6]
        row[1] = 6  # sic: nn-Meter's value for more than 4 inputs
    return tuple(row + [0] * (6 - len(row)))


def _hw(op: Op) -> tuple[int, int]:
    """(H, W) of the first input: NCHW, (N, g, C/g, H, W) for a channel shuffle, 1x1 for (N, C)."""
    shape = op.in_shapes[0]
    if len(shape) in (4, 5):
        return shape[-2], shape[-1]
    if len(shape) == 2:
        return 1, 1
    raise ValueError(f'{op.where}: nn-Meter\'s {op.type} kernel takes (N, C, H, W) or (N, C) tensors, got {shape}')


def _channels(op: Op) -> int:
    shape = op.in_shapes[0]
    return shape[1] * shape[2] if len(shape) == 5 else shape[1]


def _fused_blocks(ops: Sequence[Op], consumers: list[set[int]],
                  rules: FusionRules) -> dict[int, tuple[str, list[int]]]:
    """nn-Meter's multi-op blocks (SE blocks, rule chains) and single ops: first op -> (type, members)."""
    found = [('se', members) for members in _se_blocks(ops, consumers)]
    found += [('-'.join(chain), members) for chain in rules.chains for start in range(len(ops))
              if (members := _chain_at(ops, consumers, start, chain))]
    blocks: dict[int, tuple[str, list[int]]] = {}
    taken: set[int] = set()
    for kind, members in found:
        if taken.isdisjoint(members):
            blocks[members[0]] = (kind, members)
            taken.update(members)
    blocks.update((i, (op.type, [i])) for i, op in enumerate(ops) if i not in taken)
    return blocks


def _chain_at(ops: Sequence[Op], consumers: list[set[int]], start: int, chain: tuple[str, ...]) -> list[int]:
    """The ops of ``chain``'s types from ``start``, each the only consumer of the previous; [] if none."""
    if ops[start].type != chain[0]:
        return []
    members = [start]
    for kind in chain[1:]:
        following = consumers[members[-1]]
        if len(following) != 1 or ops[min(following)].type != kind:
            return []
        members.append(min(following))
    return members


def _se_blocks(ops: Sequence[Op], consumers: list[set[int]]) -> list[list[int]]:
    """SE blocks: ``x * gate`` where ``gate`` comes from a global pool of ``x`` through a single-consumer chain."""
    blocks = []
    for j, op in enumerate(ops):
        if op.type != 'mul' or len(op.inputs) != 2:
            continue
        for x, gate in (op.inputs, op.inputs[::-1]):
            branch = _se_branch(ops, consumers, gate, j)
            if branch and ops[branch[-1]].inputs[0] == x:
                blocks.append(sorted(branch + [j]))
                break
    return blocks


def _se_branch(ops: Sequence[Op], consumers: list[set[int]], node: int, mul: int) -> list[int]:
    """The ops from ``node`` back to a global pool, each single-input and consumed only by the next; [] if none."""
    branch, after = [], mul
    while node >= 0 and ops[node].type in _SE_BRANCH and consumers[node] == {after} and len(ops[node].inputs) == 1:
        branch.append(node)
        if ops[node].type == 'gap':
            return branch
        node, after = ops[node].inputs[0], node
    return []


def _fuse_pairs(order: list[int], types: dict[int, str], outs: dict[int, set[int]],
                rules: FusionRules) -> dict[int, list[int]]:
    """nn-Meter's pairwise fusion over the block-fused graph, in execution order: root -> its members."""
    root = {n: n for n in order}
    members = {n: [n] for n in order}
    for n in order:
        if root[n] != n:
            continue
        pending = set(outs[n])
        while pending and (rules.multi_outbound or len(pending) == 1):
            fused = next((m for m in sorted(pending) if root[m] == m and (types[n], types[m]) in rules.pairs), None)
            if fused is None:
                break
            root[fused] = n
            members[n].append(fused)
            pending = (pending | outs[fused]) - {fused} if rules.multi_outbound else set(outs[fused])
    return {n: sorted(ms) for n, ms in members.items() if root[n] == n}
