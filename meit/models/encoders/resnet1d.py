"""1D ResNets (18/34 with basic blocks, 50 with bottlenecks) over 12-lead ECGs.

The stem's stride grows with the sampling rate (2 per 100 Hz, rounded), so the first stage sees about
the same number of steps at 100 Hz and at 500 Hz; this keeps the encoder cheap next to the LLM.
Output: time tokens ``[B, T', C]`` or one average-pooled vector ``[B, 1, C]``.
"""

from __future__ import annotations

import torch
from torch import nn

from meit.data.contract import EncoderContract
from meit.models.encoders.base import ECGEncoder


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv1d:
    return nn.Conv1d(cin, cout, kernel_size=k, stride=stride, padding=k // 2, bias=False)


class BasicBlock1d(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, kernel_size: int = 7):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = _conv(cin, width, kernel_size, stride)
        self.bn1 = nn.BatchNorm1d(width)
        self.conv2 = _conv(width, cout, kernel_size)
        self.bn2 = nn.BatchNorm1d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(_conv(cin, cout, 1, stride), nn.BatchNorm1d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck1d(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, kernel_size: int = 7):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = _conv(cin, width, 1)
        self.bn1 = nn.BatchNorm1d(width)
        self.conv2 = _conv(width, width, kernel_size, stride)
        self.bn2 = nn.BatchNorm1d(width)
        self.conv3 = _conv(width, cout, 1)
        self.bn3 = nn.BatchNorm1d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(_conv(cin, cout, 1, stride), nn.BatchNorm1d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet1d(ECGEncoder):
    def __init__(
        self,
        contract: EncoderContract,
        block: type[BasicBlock1d] | type[Bottleneck1d],
        layers: tuple[int, int, int, int],
        base_width: int = 64,
        kernel_size: int = 7,
    ):
        super().__init__()
        self.contract = contract
        stem_stride = 2 * max(1, round(contract.fs / 100))
        stem_kernel = max(15, stem_stride + 1) | 1
        self.stem = nn.Sequential(
            nn.Conv1d(contract.leads, base_width, stem_kernel, stride=stem_stride, padding=stem_kernel // 2,
                      bias=False),
            nn.BatchNorm1d(base_width),
            nn.ReLU(inplace=True),
            nn.MaxPool1d(kernel_size=3, stride=2, padding=1),
        )
        cin = base_width
        stages = []
        for i, n in enumerate(layers):
            width = base_width * 2**i
            blocks = []
            for j in range(n):
                stride = 2 if (j == 0 and i > 0) else 1
                blocks.append(block(cin, width, stride, kernel_size))
                cin = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.out_dim = cin
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # zero-init the last BN of each residual branch: every block starts as identity
        for m in self.modules():
            last = getattr(m, "bn3", None) if isinstance(m, Bottleneck1d) else getattr(m, "bn2", None)
            if isinstance(m, BasicBlock1d | Bottleneck1d) and last is not None:
                nn.init.zeros_(last.weight)

    def forward(self, ecg: torch.Tensor, pooled: bool = False) -> torch.Tensor:
        x = self.stages(self.stem(ecg))  # [B, C, T']
        if pooled:
            return x.mean(dim=-1, keepdim=True).transpose(1, 2)
        return x.transpose(1, 2)

    def encode(self, ecg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self(ecg)
        return tokens, tokens.mean(dim=1)


def resnet1d_18(contract: EncoderContract, **kw) -> ResNet1d:
    return ResNet1d(contract, BasicBlock1d, (2, 2, 2, 2), **kw)


def resnet1d_34(contract: EncoderContract, **kw) -> ResNet1d:
    return ResNet1d(contract, BasicBlock1d, (3, 4, 6, 3), **kw)


def resnet1d_50(contract: EncoderContract, **kw) -> ResNet1d:
    return ResNet1d(contract, Bottleneck1d, (3, 4, 6, 3), **kw)


def resnet1d_tiny(contract: EncoderContract, **kw) -> ResNet1d:
    """A very small ResNet (one basic block per stage, width 16) for tests and smoke runs."""
    kw.setdefault("base_width", 16)
    return ResNet1d(contract, BasicBlock1d, (1, 1, 1, 1), **kw)
