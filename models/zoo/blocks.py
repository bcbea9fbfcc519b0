"""Convolutional building blocks that host attention modules.

``BasicBlock`` is the ResNet basic block of seeds 003 (CBAM ``BasicBlock``) and 004
(``SEBasicBlock``): conv3x3-BN-ReLU, conv3x3-BN, attention, + shortcut, ReLU. The attention
sits where both seeds put it, after the second BN and before the residual sum.
``attn_layer`` is anything :func:`create_attention` takes (a name such as ``"cbam"``, an
attention class, or None). With ``augmented`` the first convolution is an
:class:`AugmentedConv2d` (Bello et al.), as the paper does in its AA-ResNets.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from models.attention.augmented_conv import AugmentedConv2d
from models.attention.factory import AttnLayer, create_attention
from models.attention.topformer import TopFormerAttention
from models.zoo.chain import NoMaps


def conv_bn_relu(
    in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1
) -> nn.Sequential:
    padding = dilation * (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class Stem(NoMaps):
    """Two 3x3 convolutions (the first strided) and a max-pool: output stride 4."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            conv_bn_relu(in_channels, out_channels // 2, stride=2),
            conv_bn_relu(out_channels // 2, out_channels),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


@dataclass(frozen=True)
class AugmentedSpec:
    """Attention-augmented first convolution: key/value depths as fractions of the width
    (the paper's kappa = dk / F_out and upsilon = dv / F_out), rounded to whole heads."""

    key_ratio: float = 0.25
    value_ratio: float = 0.25
    num_heads: int = 4
    relative: bool = True

    def build(
        self, in_channels: int, out_channels: int, stride: int, shape: Tuple[int, int]
    ) -> AugmentedConv2d:
        heads = self.num_heads
        return AugmentedConv2d(
            in_channels,
            out_channels,
            3,
            key_dim=max(1, round(out_channels * self.key_ratio / heads)),
            value_dim=max(1, round(out_channels * self.value_ratio / heads)),
            num_heads=heads,
            relative=self.relative,
            stride=stride,
            shape=shape,
        )


class PlainConv2d(NoMaps, nn.Conv2d):
    """A convolution that answers ``forward_with_maps`` (with no maps), so a block's first
    convolution can be plain or attention-augmented behind one interface."""


class BasicBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        dilation: int = 1,
        attn_layer: AttnLayer = None,
        augmented: Optional[AugmentedSpec] = None,
        output_shape: Tuple[int, int] = (0, 0),
    ) -> None:
        super().__init__()
        if augmented is not None:
            self.conv1: nn.Module = augmented.build(in_channels, out_channels, stride, output_shape)
        else:
            self.conv1 = PlainConv2d(
                in_channels, out_channels, 3, stride, dilation, dilation, bias=False
            )
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Sequential(
            nn.Conv2d(out_channels, out_channels, 3, 1, dilation, dilation, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.attn = create_attention(attn_layer, out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.relu(self.bn1(self.conv1(x))))
        return self.relu(self.attn(out) + self.shortcut(x))

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        out, maps = self.conv1.forward_with_maps(x)
        out, attn_maps = self.attn.forward_with_maps(self.conv2(self.relu(self.bn1(out))))
        maps.update(attn_maps)
        return self.relu(out + self.shortcut(x)), maps


class TopFormerBlock(nn.Module):
    """TopFormer's transformer block: ``x + attn(x)``, then ``x + mlp(x)`` with a depthwise MLP.

    TopFormerAttention has no residual of its own and starts at zero output (its last BN
    weight is 0), so the block is the identity at initialisation, as in TopFormer.
    """

    def __init__(
        self,
        channels: int,
        key_dim: int = 16,
        num_heads: int = 4,
        attn_ratio: float = 2.0,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        hidden = int(channels * mlp_ratio)
        self.attn = TopFormerAttention(channels, key_dim, num_heads, attn_ratio)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        delta, maps = self.attn.forward_with_maps(x)
        x = x + delta
        return x + self.mlp(x), maps
