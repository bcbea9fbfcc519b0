"""CBAM: a channel gate followed by a spatial gate.

Paper: Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018 (arXiv:1807.06521).
Seed: 003 ``ChannelAttention``, ``SpatialAttention`` and the CBAM ``BasicBlock``:

* channel gate: global average- and max-pooled descriptors (B, C, 1, 1) go through one shared
  MLP (1x1 conv ``C -> C // r``, ReLU, 1x1 conv ``C // r -> C``, no biases); the two results
  are summed and passed through a sigmoid;
* spatial gate: the channel-wise mean and max (B, 1, H, W) are concatenated (mean first) and
  passed through a ``k x k`` conv (padding ``k // 2``, no bias, 2 -> 1 channels) and a sigmoid;
* the block applies ``out = ca(out) * out`` then ``out = sa(out) * out``.

Differences from the seed:

* ``ChannelGate`` and ``SpatialGate`` return the gated input ``x * gate`` (the seed's modules
  return the gate and the block multiplies); the gate itself is the map.
* The seed's ``ChannelAttention`` hard-codes ``in_planes // 16`` and ignores its ``ratio``
  argument (a bug); ``reduction`` is honoured here. The hidden width is clamped to at least 1
  so small channel counts (C < reduction) still build; ``rd_channels`` sets it explicitly.
* ``act_layer`` (the MLP's ReLU) and ``gate_layer`` (the sigmoid of both gates) can be
  swapped, as in timm's CbamModule; the defaults are the seed's.
* ``kernel_size`` other than 3 or 7 raises ``ValueError`` (the seed asserts).
* ``SpatialGate`` takes ``channels`` first, like every module, and checks the input has that
  many channels; the gate's math does not depend on it.

Maps: ``channel`` (B, C), the sigmoid channel gate; ``spatial`` (B, H, W), the sigmoid spatial
mask (values in (0, 1), not a distribution). In ``CBAM`` the mask is computed on the
channel-gated features, as in the seed block.

The gate arithmetic lives in plain ``nn.Module`` cores, so ``CBAM`` holds no nested
``AttentionModule``: :func:`models.attention.base.name_attention_maps` lists exactly CBAM's own
two maps, with CBAM's prefix.
"""

from typing import Dict, Optional, Tuple, Type

import torch
from torch import Tensor, nn

from models.attention.base import AttentionModule, check_layer, positive, reduced_channels

SPATIAL_KERNEL_SIZES = (3, 7)


class _ChannelGateCore(nn.Module):
    """Computes the channel gate (B, C); not an AttentionModule, so it exposes no maps."""

    def __init__(
        self,
        channels: int,
        reduction: int,
        rd_channels: Optional[int],
        act_layer: Type[nn.Module],
        gate_layer: Type[nn.Module],
    ) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction, rd_channels)
        # The shared MLP, as 1x1 convs on (B, C, 1, 1) descriptors like the seed.
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=False)
        self.act = check_layer("act_layer", act_layer)()
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=False)
        self.gate = check_layer("gate_layer", gate_layer)()

    def mlp(self, descriptor: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(descriptor)))

    def forward(self, x: Tensor) -> Tensor:
        avg = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        peak = x.amax(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        return self.gate(self.mlp(avg) + self.mlp(peak)).flatten(1)  # (B, C)


class _SpatialGateCore(nn.Module):
    """Computes the spatial mask (B, H, W); not an AttentionModule, so it exposes no maps."""

    def __init__(self, kernel_size: int, gate_layer: Type[nn.Module]) -> None:
        super().__init__()
        if kernel_size not in SPATIAL_KERNEL_SIZES:
            raise ValueError(f"kernel_size must be 3 or 7 (as in CBAM), got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.gate = check_layer("gate_layer", gate_layer)()

    def forward(self, x: Tensor) -> Tensor:
        avg = x.mean(dim=1, keepdim=True)  # (B, 1, H, W)
        peak = x.amax(dim=1, keepdim=True)  # (B, 1, H, W)
        pooled = torch.cat([avg, peak], dim=1)  # (B, 2, H, W)
        return self.gate(self.conv(pooled)).squeeze(1)  # (B, H, W)


class ChannelGate(AttentionModule):
    """CBAM channel attention: ``x * sigmoid(MLP(avgpool x) + MLP(maxpool x))``."""

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        rd_channels: Optional[int] = None,
        act_layer: Type[nn.Module] = nn.ReLU,
        gate_layer: Type[nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.core = _ChannelGateCore(channels, reduction, rd_channels, act_layer, gate_layer)
        self.map_names = ["channel"]

    def forward(self, x: Tensor) -> Tensor:
        return x * self.core(x)[:, :, None, None]

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        gate = self.core(x)  # (B, C)
        return x * gate[:, :, None, None], {self.map_key("channel"): gate}


class SpatialGate(AttentionModule):
    """CBAM spatial attention: ``x * sigmoid(conv([mean_c x, max_c x]))``."""

    def __init__(
        self, channels: int, kernel_size: int = 7, gate_layer: Type[nn.Module] = nn.Sigmoid
    ) -> None:
        super().__init__()
        self.channels = positive("channels", channels)
        self.core = _SpatialGateCore(kernel_size, gate_layer)
        self.map_names = ["spatial"]

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"SpatialGate expects (B, {self.channels}, H, W) input, got {list(x.shape)}"
            )

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return x * self.core(x)[:, None]

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        self._check_input(x)
        mask = self.core(x)  # (B, H, W)
        return x * mask[:, None], {self.map_key("spatial"): mask}


class CBAM(AttentionModule):
    """Channel gate then spatial gate, as in the seed's CBAM BasicBlock."""

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        rd_channels: Optional[int] = None,
        kernel_size: int = 7,
        act_layer: Type[nn.Module] = nn.ReLU,
        gate_layer: Type[nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.channel_gate = _ChannelGateCore(
            channels, reduction, rd_channels, act_layer, gate_layer
        )
        self.spatial_gate = _SpatialGateCore(kernel_size, gate_layer)
        self.map_names = ["channel", "spatial"]

    def forward(self, x: Tensor) -> Tensor:
        x = x * self.channel_gate(x)[:, :, None, None]
        return x * self.spatial_gate(x)[:, None]

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        gate = self.channel_gate(x)  # (B, C)
        x = x * gate[:, :, None, None]
        mask = self.spatial_gate(x)  # (B, H, W)
        maps = {self.map_key("channel"): gate, self.map_key("spatial"): mask}
        return x * mask[:, None], maps
