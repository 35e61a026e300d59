"""ECGFounder's Net1D (Li et al., NEJM AI 2025), laid out so its released 12-lead checkpoint loads key for key.

Facts taken from github.com/PKUDigitalHealth/ECGFounder at 04edac7 (``net1d.py``, ``finetune_model.py``,
``ptbxl_eval.py``, ``dataset.py``, ``util.py``); the code here is our own.

* Released configuration (``finetune_model.py``, ``ptbxl_eval.py``): 12 input channels, a stride-2
  kernel-16 first convolution to 64 channels, then 7 stages of 64/160/160/400/400/1024/1024 channels
  with 2/2/2/3/3/4/4 blocks. Each block is pre-activation conv1×1 → grouped conv k=16 (16 channels per
  group; stride 2 in a stage's first block) → conv1×1, then squeeze-and-excitation (halving), plus a
  shortcut that max-pools when the block downsamples and zero-pads channels when they grow. Swish
  activations, "same" padding, convolutions with bias.
* ``use_bn=False`` and ``use_do=False`` in every released configuration: the BatchNorm layers upstream
  registers are never run. They are not part of this module (the importer drops them, after checking
  that their statistics were never updated), nor is the 150-class ``dense`` head.
* Input: 500 Hz × 10 s (5000 samples), canonical lead order (upstream reorders MIMIC's aVF/aVL to it),
  filtered by ``util.filter_bandpass`` (``iirnotch(50, 30)``, ``butter(N=4, [0.67, 40])``, both with
  ``filtfilt``, then minus a ``medfilt`` of ``int(0.4 * fs) + 1`` samples) and z-scored with the mean and
  standard deviation of the whole record (``dataset.py``). :data:`ECGFOUNDER_CONTRACT` declares exactly that.

At the trained 500 Hz every stage halves the time axis (5000 → 20 tokens, ~0.5 s each). Built for
another rate, only as many stages downsample as keep ~0.5 s per token (weights are shaped the same).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from meit.data.contract import EncoderContract
from meit.models.encoders.base import ECGEncoder

#: the input the released weights were trained on (see the module docstring)
ECGFOUNDER_CONTRACT = EncoderContract(leads=12, fs=500, seconds=10.0, normalisation="zscore_record",
                                      notch_hz=50.0, bandpass=(0.67, 40.0), bandpass_order=4, baseline="median")

#: the released Net1D configuration
BASE_FILTERS = 64
FILTERS: tuple[int, ...] = (64, 160, 160, 400, 400, 1024, 1024)
BLOCKS: tuple[int, ...] = (2, 2, 2, 3, 3, 4, 4)
KERNEL = 16
GROUP_WIDTH = 16
_TRAINED_FS = 500
_TRAINED_FACTOR = 2 ** (1 + len(FILTERS))  # first conv + one halving per stage


def _pad_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow-style "same" padding (extra sample on the right), computed from the input length."""
    length = x.shape[-1]
    out = (length + stride - 1) // stride
    total = max(0, (out - 1) * stride + kernel - length)
    return F.pad(x, (total // 2, total - total // 2))


class _SameConv(nn.Module):
    """A Conv1d under a ``conv`` child, so keys read ``….conv.weight`` as in the checkpoints."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv1d(cin, cout, kernel, stride=stride, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(_pad_same(x, self.kernel, self.stride))


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, downsample: bool, first: bool):
        super().__init__()
        self.cin, self.cout, self.downsample, self.first = cin, cout, downsample, first
        self.conv1 = _SameConv(cin, cout, 1)
        self.conv2 = _SameConv(cout, cout, KERNEL, stride=2 if downsample else 1, groups=cout // GROUP_WIDTH)
        self.conv3 = _SameConv(cout, cout, 1)
        self.se_fc1 = nn.Linear(cout, cout // 2)
        self.se_fc2 = nn.Linear(cout // 2, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.first else F.silu(x)  # the network's very first block gets the stem's activation
        out = self.conv1(out)
        out = self.conv2(F.silu(out))
        out = self.conv3(F.silu(out))
        gate = torch.sigmoid(self.se_fc2(F.silu(self.se_fc1(out.mean(dim=-1)))))
        out = out * gate.unsqueeze(-1)
        identity = x
        if self.downsample:
            # upstream pads one zero on the right, then max-pools with kernel = stride = 2
            identity = F.max_pool1d(F.pad(identity, (0, 1)), 2)
        if self.cout != self.cin:
            grow = self.cout - self.cin
            identity = F.pad(identity, (0, 0, grow // 2, grow - grow // 2))
        return out + identity


class _Stage(nn.Module):
    def __init__(self, cin: int, cout: int, blocks: int, downsample: bool, first_stage: bool):
        super().__init__()
        self.block_list = nn.ModuleList(
            _Block(cin if i == 0 else cout, cout, downsample=downsample and i == 0, first=first_stage and i == 0)
            for i in range(blocks)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.block_list:
            x = block(x)
        return x


class ECGFounderNet1d(ECGEncoder):
    """ECGFounder's Net1D trunk. Tokens: last-stage time steps ``[B, ~T/256, 1024]``; pooled: their mean
    (upstream's ``deep_features``)."""

    def __init__(self, contract: EncoderContract):
        super().__init__()
        self.contract = contract
        self.first_conv = _SameConv(contract.leads, BASE_FILTERS, KERNEL, stride=2)
        # keep ~0.5 s per output step at any rate: at 500 Hz every stage halves, as upstream
        budget = _TRAINED_FACTOR * contract.fs / _TRAINED_FS
        factor, stages, cin = 2, [], BASE_FILTERS
        for i, (cout, blocks) in enumerate(zip(FILTERS, BLOCKS, strict=True)):
            down = factor * 2 <= budget * (1 + 1e-9)
            factor *= 2 if down else 1
            stages.append(_Stage(cin, cout, blocks, down, first_stage=i == 0))
            cin = cout
        self.stage_list = nn.ModuleList(stages)
        self.out_dim = cin

    def forward(self, ecg: torch.Tensor, pooled: bool = False) -> torch.Tensor:
        x = F.silu(self.first_conv(ecg))
        for stage in self.stage_list:
            x = stage(x)
        if pooled:
            return x.mean(dim=-1, keepdim=True).transpose(1, 2)
        return x.transpose(1, 2)


def ecgfounder_net1d(contract: EncoderContract, **kw) -> ECGFounderNet1d:
    """ECGFounder's released 12-lead Net1D (weights: 500 Hz, 10 s, record-wide z-score after filtering)."""
    return ECGFounderNet1d(contract, **kw)
