"""NNI hub modules whose ``forward`` TorchScript cannot compile, as subclasses whose ``forward`` it compiles.

Each class is a subclass of one NNI hub class that writes its ``forward`` again: the same operations in the same
order, in code TorchScript compiles (arguments and lists typed, no ``isinstance`` on NNI types, what the module was
built with decided when TorchScript compiles it). :func:`.plain.plain` gives an exported module of the NNI class
its subclass (:func:`scriptable_class`), which changes the class only: the module keeps its attributes, children
and state dict keys, computes exactly what NNI's forward computed, is still an instance of the NNI class, and
pickles (under the subclass's name, which unpickling imports from here).
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from .._nni_internals import hub_autoformer as autoformer, hub_nasbench201 as nasbench201, hub_nasnet as nasnet

__all__ = ['scriptable_class']


# NDS spaces (nni/nas/hub/pytorch/nasnet.py): NASNet, ENAS, AmoebaNet, PNAS, DARTS

class ScriptableNDS(nasnet.NDS):
    """NNI's ``NDS.forward`` with the stems the net was built with, and without the auxiliary head (NNI refuses
    ``auxiliary_loss=True`` in a space to search).

    NNI's forward picks ``stem0``/``stem1`` (ImageNet) or ``stem`` (CIFAR) by ``self.dataset``, which TorchScript
    cannot decide, so it compiles both and fails on the missing one; here ``hasattr`` decides, when TorchScript
    compiles. The stages take and give the ``[pprev, prev]`` list of the last two cells' outputs, typed.
    """

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if hasattr(self, 'stem0'):  # built for dataset='imagenet'
            s0 = self.stem0(inputs)
            s1 = self.stem1(s0)
        else:
            s0 = self.stem(inputs)
            s1 = s0
        states: List[torch.Tensor] = [s0, s1]
        for stage in self.stages:
            states = stage(states)
        out = self.global_pooling(states[1])
        return self.classifier(out.view(out.size(0), -1))


class ScriptableNASNet(ScriptableNDS, nasnet.NASNet):
    """NNI's ``NASNet`` with :class:`ScriptableNDS`'s forward."""


class ScriptableENAS(ScriptableNDS, nasnet.ENAS):
    """NNI's ``ENAS`` with :class:`ScriptableNDS`'s forward."""


class ScriptableAmoebaNet(ScriptableNDS, nasnet.AmoebaNet):
    """NNI's ``AmoebaNet`` with :class:`ScriptableNDS`'s forward."""


class ScriptablePNAS(ScriptableNDS, nasnet.PNAS):
    """NNI's ``PNAS`` with :class:`ScriptableNDS`'s forward."""


class ScriptableDARTS(ScriptableNDS, nasnet.DARTS):
    """NNI's ``DARTS`` with :class:`ScriptableNDS`'s forward."""


class ScriptableNDSStage(nasnet.NDSStage):
    """NNI's ``Repeat.forward`` for a stage of fixed depth, typed for the ``[pprev, prev]`` list its cells pass
    on (NNI's leaves the input unannotated: TorchScript takes it for a tensor). A stage of fixed depth holds
    exactly its blocks and runs them all (:func:`scriptable_class` gives this class to no other stage)."""

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        for block in self.blocks:
            x = block(x)
        return x


class ScriptableCellPreprocessor(nasnet.CellPreprocessor):
    """NNI's ``CellPreprocessor.forward``, its list of the two predecessors typed."""

    def forward(self, cells: List[torch.Tensor]) -> List[torch.Tensor]:
        assert len(cells) == 2
        return [self.pre0(cells[0]), self.pre1(cells[1])]


class ScriptableCellPostprocessor(nasnet.CellPostprocessor):
    """NNI's ``CellPostprocessor.forward``, its list of the cell's inputs typed."""

    def forward(self, this_cell: torch.Tensor, previous_cells: List[torch.Tensor]) -> List[torch.Tensor]:
        return [previous_cells[-1], this_cell]


# AutoFormer (nni/nas/hub/pytorch/autoformer.py)

class ScriptableRelativePosition2D(autoformer.RelativePosition2D):
    """NNI's ``RelativePosition2D.forward``, its lengths typed ``int`` and the padding value a ``float`` (NNI's
    pads with the int ``0``; TorchScript's ``F.pad`` takes a float: the long tensor gets the same zeros)."""

    def forward(self, length_q: int, length_k: int) -> torch.Tensor:
        length_q = length_q - 1  # the class token has no distance
        length_k = length_k - 1
        range_vec_q = torch.arange(length_q, device=self.embeddings_table_v.device)
        range_vec_k = torch.arange(length_k, device=self.embeddings_table_v.device)
        length_q_sqrt = int(length_q ** 0.5)
        distance_mat_v = (torch.div(range_vec_k[None, :], length_q_sqrt, rounding_mode='trunc')
                          - torch.div(range_vec_q[:, None], length_q_sqrt, rounding_mode='trunc'))
        distance_mat_h = range_vec_k[None, :] % length_q_sqrt - range_vec_q[:, None] % length_q_sqrt
        final_mat_v = torch.clamp(distance_mat_v, -self.length, self.length) + self.length + 1
        final_mat_h = torch.clamp(distance_mat_h, -self.length, self.length) + self.length + 1
        final_mat_v = F.pad(final_mat_v, (1, 0, 1, 0), 'constant', 0.0).long()  # 0: the class token
        final_mat_h = F.pad(final_mat_h, (1, 0, 1, 0), 'constant', 0.0).long()
        return self.embeddings_table_v[final_mat_v] + self.embeddings_table_h[final_mat_h]


class ScriptableRelativePositionSelfAttention(autoformer.RelativePositionSelfAttention):
    """NNI's ``RelativePositionSelfAttention.forward`` without its ``isinstance(..., nni.mutable.Mutable)`` tests
    (``head_dim`` and ``num_heads`` are the architecture's ints in an exported module), ``rpe`` a constant so that
    TorchScript compiles the relative position embeddings only where the module has them."""

    __constants__ = ['rpe']

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        q = self.q(x).reshape(B, N, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
        k = self.k(x).reshape(B, N, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
        v = self.v(x).reshape(B, N, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
        num_heads, head_dim = q.size(1), q.size(3)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        if self.rpe:
            r_p_k = self.rel_pos_embed_k(N, N)
            attn = attn + (q.permute(2, 0, 1, 3).reshape(N, num_heads * B, head_dim) @ r_p_k.transpose(2, 1)
                           ).transpose(1, 0).reshape(B, num_heads, N, N) * self.scale
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(B, N, num_heads * head_dim)
        if self.rpe:
            attn_1 = attn.permute(2, 0, 1, 3).reshape(N, B * num_heads, N)
            r_p_v = self.rel_pos_embed_v(N, N)
            x = x + ((attn_1 @ r_p_v).transpose(1, 0).reshape(B, num_heads, N, head_dim).transpose(2, 1)
                     .reshape(B, N, num_heads * head_dim))
        return self.proj_drop(self.proj(x))


class ScriptableTransformerEncoderLayer(autoformer.TransformerEncoderLayer):
    """NNI's ``TransformerEncoderLayer.forward`` with its ``maybe_layer_norm`` written out (NNI's passes the layer
    norm to that method, and TorchScript takes an unannotated argument for a tensor): a layer norm before the
    attention and the MLP with ``pre_norm``, after them without."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        if self.normalize_before:
            x = self.attn_layer_norm(x)
        x = residual + self.drop_path(self.dropout(self.attn(x)))
        if not self.normalize_before:
            x = self.attn_layer_norm(x)
        residual = x
        if self.normalize_before:
            x = self.ffn_layer_norm(x)
        x = self.dropout(self.fc2(self.dropout(self.activation_fn(self.fc1(x)))))
        x = residual + self.drop_path(x)
        if not self.normalize_before:
            x = self.ffn_layer_norm(x)
        return x


# NAS-Bench-201 (nni/nas/hub/pytorch/nasbench201.py)

class ScriptablePooling(nasbench201.Pooling):
    """NNI's ``Pooling.forward``, testing ``preprocess`` against ``None`` (NNI's ``if self.preprocess:`` does not
    compile where it is ``None``: inside the cells)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocess is not None:
            x = self.preprocess(x)
        return self.op(x)


_SCRIPTABLE: dict[type, type] = {
    nasnet.NDS: ScriptableNDS, nasnet.NASNet: ScriptableNASNet, nasnet.ENAS: ScriptableENAS,
    nasnet.AmoebaNet: ScriptableAmoebaNet, nasnet.PNAS: ScriptablePNAS, nasnet.DARTS: ScriptableDARTS,
    nasnet.NDSStage: ScriptableNDSStage, nasnet.CellPreprocessor: ScriptableCellPreprocessor,
    nasnet.CellPostprocessor: ScriptableCellPostprocessor,
    autoformer.RelativePosition2D: ScriptableRelativePosition2D,
    autoformer.RelativePositionSelfAttention: ScriptableRelativePositionSelfAttention,
    autoformer.TransformerEncoderLayer: ScriptableTransformerEncoderLayer,
    nasbench201.Pooling: ScriptablePooling,
}


def scriptable_class(module: nn.Module) -> type | None:
    """The subclass whose forward TorchScript compiles for ``module``, an instance of exactly one of the NNI hub
    classes above; ``None`` for any other module (a subclass of those keeps its class, and its forward), and for
    an NDS stage whose depth is not a fixed number of blocks (a searched depth exports as a list sequential of
    its chosen blocks, not as this stage)."""
    if isinstance(module, nasnet.NDSStage) and not (isinstance(module.depth_choice, int)
                                                    and module.depth_choice == len(module.blocks)):
        return None
    return _SCRIPTABLE.get(type(module))
