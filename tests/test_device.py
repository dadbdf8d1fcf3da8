"""The search's steps on an accelerator: every tensor where the model is, and no wait for the device.

There is no GPU in the test environment. PyTorch's ``meta`` device stands in for one: tensors there have shapes
and dtypes but no values, so an operation that mixes them with CPU tensors fails, and reading a value
(``.item()``, ``bool()``) fails. A dispatch mode records, in addition, what is allowed but would make the host wait
for a real GPU: copies between the host and the device, and host tensors handed to device operations (index
tensors, cost vectors). Sampling, which reads the logits on the host by design (once after each change, see
``ArchParameters``), and the finite-loss check (one step late on CUDA, see ``_loss_check.py``) are not part of
this audit; their own tests are in ``test_precision.py`` and below.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from nni.nas.evaluator.pytorch.lightning import LightningModule
from nni_proxyless import Proxyless
from nni_proxyless.arch import Selection
from nni_proxyless.latency import LatencyObjective, LatencyTable
from nni_proxyless.latency.loss import LatencyLoss
from nni_proxyless.latency.table import Term
from nni_proxyless.reinforce import ReinforceUpdate
from nni_proxyless.training import ProxylessModule, SearchSettings

from conftest import ConvSpace

aten = torch.ops.aten
DEVICE = 'meta'


class HostWaits(TorchDispatchMode):
    """Records every operation that would make the host wait for the device on a real GPU."""

    def __init__(self):
        super().__init__()
        self.waits: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        on_device = [t for t in tensors if t.device.type == DEVICE]
        on_host = [t for t in tensors if t.device.type == 'cpu']
        if func is aten._local_scalar_dense.default and on_device:
            self.waits.append(f'{func}: reads a device value')
        elif func is aten._to_copy.default and str(kwargs.get('device', '')).startswith(('cpu', DEVICE)) \
                and torch.device(kwargs['device']).type != tensors[0].device.type:
            self.waits.append(f'{func}: copies {tensors[0].device.type} -> {kwargs["device"]}')
        elif func is aten.copy_.default and tensors[0].device.type != tensors[1].device.type:
            self.waits.append(f'{func}: copies {tensors[1].device.type} -> {tensors[0].device.type}')
        elif on_device and [t for t in on_host if t.dim() > 0]:
            self.waits.append(f'{func}: host tensors {[tuple(t.shape) for t in on_host]} in a device operation')
        return func(*args, **kwargs)


class CrossEntropy(LightningModule):
    """A minimal evaluator module (NNI's Classification reads its metrics' values, which the meta device has not)."""

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Trainer:
    """What the steps read of a Lightning trainer."""

    class strategy:  # noqa: N801
        @staticmethod
        def batch_to_device(batch):
            return batch

    precision_plugin = None
    current_epoch = 0
    world_size = 1


def _table(arch) -> LatencyTable:
    labels = {label: list(choice.values) for label, choice in arch.choices.items()}
    terms = [Term(costs=tuple(float(i + 1) for i in range(len(values))), labels=(label,))
             for label, values in labels.items()]
    nested = Term(costs=(0.5,), when=(('conv1', ['k3', 'k5']),))  # a term counted only under some candidates
    return LatencyTable(labels=labels, fixed=1.0, terms=terms + [nested])


def _search_module(binary_mode: str, reinforce: bool = False):
    """A ProxylessModule on ConvSpace with a latency loss (or REINFORCE), its selections drawn beforehand."""
    torch.manual_seed(0)
    strategy = Proxyless(seed=0, binary_mode=binary_mode, arch_update_every=1)
    supernet = strategy.mutate_model(ConvSpace())
    arch = strategy.arch
    draws = (arch.sample(0), arch.sample_for_update(0, binary_mode))
    table = _table(arch)
    update = ReinforceUpdate(samples=3, ref_latency=3.0, latency=table.predict) if reinforce else None
    settings = SearchSettings(arch_update_every=1, binary_mode=binary_mode, arc_learning_rate=1e-3)  # no trainer
    module = ProxylessModule(CrossEntropy(), arch=arch, settings=settings,
                             arch_loader=lambda: None, reinforce=update,
                             latency=LatencyObjective(table, LatencyLoss('add#linear', {'lambda': 0.1}, 3.0)))
    module.set_model(supernet)
    return module, draws


def _on_device(module, draws, trainer):
    """Move the module to the stand-in device and replace what needs values or a real trainer."""
    module.to(DEVICE)
    arch = module.arch
    weights, gated = draws
    live = {label: Selection(s.active, s.gated, s.support, arch.logit(label)) for label, s in gated.items()}
    x, y = torch.empty(8, 1, 8, 8, device=DEVICE), torch.zeros(8, dtype=torch.long, device=DEVICE)
    weight_optimizer = torch.optim.SGD(module.training_module.parameters(), lr=0.1)
    arch_optimizer = module.configure_architecture_optimizers()

    def weight_step(loss, batch_idx, *args):
        weight_optimizer.zero_grad()
        loss.backward()
        weight_optimizer.step()

    module.trainer = trainer
    module.arch.sample = lambda step, phase=0: weights
    module.arch.sample_for_update = lambda step, mode: live
    module._arch_batches.next = lambda: (x, y)
    module._arch_optimizer = lambda: arch_optimizer
    module._check_finite = lambda loss, where: None
    module.advance_optimization = weight_step
    module.advance_lr_schedulers = lambda batch_idx: None
    module.log = lambda *args, **kwargs: None
    return x, y


def _audited_steps(binary_mode: str, reinforce: bool = False) -> list[str]:
    module, draws = _search_module(binary_mode, reinforce)
    x, y = _on_device(module, draws, _Trainer())
    module.training_step((x, y), 0)  # first steps: one-time copies (the latency costs to the device)
    with HostWaits() as audit:
        for step in (1, 2):
            module.training_step((x, y), step)  # a weight step, then an architecture step (every 1)
    assert module.step_count == 3
    return audit.waits


def test_two_mode_steps_never_wait_for_the_device():
    """Weight and architecture steps (two mode, latency loss, rescale) on a device: no host wait, no mixed devices."""
    assert _audited_steps('two') == []


def test_full_v2_steps_never_wait_for_the_device():
    """The same in full_v2 mode (every candidate gated)."""
    assert _audited_steps('full_v2') == []


def test_reinforce_steps_never_wait_for_the_device():
    """REINFORCE: rewards (accuracy times latency ratio), baseline and policy loss stay on the device."""
    assert _audited_steps('two', reinforce=True) == []


def test_the_audit_sees_host_waits():
    """The audit itself: a value read, a host-to-device copy and a host index tensor are each recorded."""
    with HostWaits() as audit:
        x = torch.ones(3, device=DEVICE)
        torch.tensor([1.0, 2.0]).to(DEVICE)
        x[torch.tensor([0, 1])]
        try:
            x.sum().item()
        except Exception:  # the meta device has no value to give; the audit saw the attempt first
            pass
    assert len(audit.waits) == 3, audit.waits


def test_host_copy_of_device_logits_is_made_once_per_change():
    """Logits off the CPU are read through one cached host copy, refreshed after any in-place change."""
    module, _ = _search_module('two')
    arch = module.arch
    logits = list(arch.logits)
    first = arch._host_copy(logits)
    assert arch._host_copy(logits) is first  # unchanged: the same copy, no new transfer
    optimizer = torch.optim.Adam(logits, lr=0.1)
    for logit in logits:
        logit.grad = torch.ones_like(logit)
    optimizer.step()
    second = arch._host_copy(logits)
    assert second is not first and all(torch.equal(c, l.detach()) for c, l in zip(second, logits))
    arch.load_state_dict({name: torch.zeros_like(p) for name, p in arch.state_dict().items()})
    assert all(float(c.abs().sum()) == 0 for c in arch._host_copy(logits))


def test_checkpoints_keep_the_cuda_random_state(monkeypatch):
    """With CUDA in use, the random-state callback saves the device's generator state and restores it on load
    (here a CUDA runtime without a GPU is simulated: the state is a plain tensor)."""
    from nni_proxyless.callbacks import RandomStateKeeper
    saved, restored = torch.arange(16, dtype=torch.uint8), []
    monkeypatch.setattr(torch.cuda, 'is_initialized', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'get_rng_state', lambda device='cuda': saved.clone())
    monkeypatch.setattr(torch.cuda, 'set_rng_state', lambda state, device='cuda': restored.append(state))
    state = RandomStateKeeper().state_dict()
    assert torch.equal(state['cuda'], saved)
    RandomStateKeeper().load_state_dict(state)
    assert len(restored) == 1 and torch.equal(restored[0], saved)


def test_architecture_batches_leave_the_cuda_generators_alone(monkeypatch):
    """Drawing architecture batches seeds only the CPU generator its loader uses: reseeding the CUDA generators
    (which torch.manual_seed does) would repeat a GPU run's dropout masks after every pass."""
    from nni_proxyless._arch_batches import ArchBatches
    seeded = []
    monkeypatch.setattr(torch.cuda, 'manual_seed_all', seeded.append)
    data = torch.utils.data.TensorDataset(torch.arange(8.0))
    batches = ArchBatches(lambda: torch.utils.data.DataLoader(data, batch_size=4, shuffle=True), lambda: 0)
    first = [batches.next()[0] for _ in range(3)]  # two passes
    assert seeded == [] and sorted(torch.cat(first[:2]).tolist()) == list(range(8))
