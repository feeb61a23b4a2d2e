"""ResNet-20 in PyTorch, the network of ``tce_jax.training.models.get("resnet20")``.

Bench-only reference for ``benchmarks/train_bench.py``: 3x3 stem with 16
channels, three stages of three basic blocks (16/32/64 channels), option-A
shortcuts (subsample + zero-pad channels), BatchNorm (momentum 0.1 in PyTorch's
convention = 0.9 in Flax's, eps 1e-5), global average pooling, linear head.
"""

import torch
import torch.nn.functional as F
from torch import nn


class _BasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.stride = stride
        self.pad = channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        residual = x
        if self.stride != 1 or self.pad:
            residual = x[:, :, :: self.stride, :: self.stride]
            half = self.pad // 2
            residual = F.pad(residual, (0, 0, 0, 0, half, self.pad - half))
        return F.relu(y + residual)


class CifarResNet(nn.Module):
    """CIFAR ResNet-(6n+2) with option-A shortcuts (He et al., 2016)."""

    def __init__(self, depth: int = 20, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        blocks_per_stage = (depth - 2) // 6
        self.stem = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(16)
        layers, channels = [], 16
        for stage, stage_channels in enumerate((16, 32, 64)):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(_BasicBlock(channels, stage_channels, stride))
                channels = stage_channels
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_bn(self.stem(x)))
        x = self.blocks(x)
        return self.head(x.mean(dim=(2, 3)))
