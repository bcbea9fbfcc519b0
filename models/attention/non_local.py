"""Non-local block (embedded Gaussian) for 1-D sequences, 2-D images and 3-D videos.

Paper: Wang et al., "Non-local Neural Networks", CVPR 2018 (arXiv:1711.07971).
Seed: 003 ``_NonLocalBlockND`` (004 describes the same block in prose): 1x1 convs ``theta``,
``phi`` and ``g`` (with biases) map C -> C_i channels (the seed's ``inter_channels``: C // 2,
at least 1);
with ``sub_sample``, ``phi`` and ``g`` are followed by a max-pool (kernel 2, (2, 2) or
(1, 2, 2): time is never pooled), which shrinks the key positions; ``f = theta^T phi``,
**unscaled**; softmax over the key axis; ``y = f g`` reshaped to (B, C_i, *spatial);
``z = W(y) + x`` where ``W`` is a 1x1 conv C_i -> C followed by BatchNorm when ``bn_layer``.
The BN weight and bias (or, without BN, the conv weight and bias) start at 0, so a fresh block
is the identity.

Differences from the seed:

* The seed's stray ``print(f.shape)`` in ``forward`` is dropped.
* ``inter_channels`` is named as in every module here: ``rd_channels`` for the explicit width,
  else ``max(channels // reduction, 1)`` with ``reduction=2`` (the seed's ``C // 2``).
* ``dimension`` defaults to 2 (the seed's ``NONLocalBlock2D`` usage; the ``_NonLocalBlockND``
  base defaults to 3). Invalid arguments raise ``ValueError`` (the seed asserts).
* The max-pool is one module applied after ``phi`` and ``g`` (the seed wraps each conv in an
  ``nn.Sequential`` sharing one pool layer): same math, different state-dict keys.
* ``forward`` checks the input rank and channels, and that sub-sampled sizes are at least 2
  (max-pool floors odd sizes, as in the seed; a size of 1 would leave no key position).

Maps: ``attention`` (B, *key_spatial), the attention mass each key position receives, averaged
over query positions (sums to 1). Key positions are those after sub-sampling: (B, L // 2) for
1-D, (B, H // 2, W // 2) for 2-D, (B, T, H // 2, W // 2) for 3-D; without ``sub_sample``, the
input's spatial shape.
"""

from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from models.attention.base import AttentionModule, reduced_channels
from models.attention.functional import explicit_attention, fast_attention, received_attention

#: Max-pool kernel on phi and g per dimension: halves every axis except time.
POOL_KERNELS = {1: (2,), 2: (2, 2), 3: (1, 2, 2)}
CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
POOLS = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
NORMS = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


class NonLocalBlock(AttentionModule):
    #: Max-pool kernel per spatial axis, to check input sizes; empty without sub-sampling. The
    #: class-level annotation types the empty list for TorchScript, which cannot infer it.
    pool_kernel: List[int]

    def __init__(
        self,
        channels: int,
        reduction: int = 2,
        rd_channels: Optional[int] = None,
        dimension: int = 2,
        sub_sample: bool = True,
        bn_layer: bool = True,
    ) -> None:
        super().__init__()
        if dimension not in CONVS:
            raise ValueError(
                f"dimension must be 1, 2 or 3 (sequence, image, video), got {dimension}"
            )
        inner = reduced_channels(channels, reduction, rd_channels)  # the seed's C_i
        conv = CONVS[dimension]
        self.channels = channels
        self.rd_channels = inner
        self.dimension = dimension
        self.pool_kernel = list(POOL_KERNELS[dimension]) if sub_sample else []

        self.theta = conv(channels, inner, kernel_size=1)
        self.phi = conv(channels, inner, kernel_size=1)
        self.g = conv(channels, inner, kernel_size=1)
        self.pool = (
            POOLS[dimension](kernel_size=POOL_KERNELS[dimension]) if sub_sample else nn.Identity()
        )
        if bn_layer:
            self.W = nn.Sequential(conv(inner, channels, kernel_size=1), NORMS[dimension](channels))
            zeroed = self.W[1]
        else:
            self.W = conv(inner, channels, kernel_size=1)
            zeroed = self.W
        nn.init.zeros_(zeroed.weight)
        nn.init.zeros_(zeroed.bias)
        # The seed's dot product is unscaled: softmax(Q K^T), not softmax(Q K^T / sqrt(d)).
        self.scale: float = 1.0
        self.map_names = ["attention"]

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != self.dimension + 2 or x.shape[1] != self.channels:
            raise ValueError(
                f"NonLocalBlock(dimension={self.dimension}) expects (B, {self.channels}, "
                f"{self.dimension} spatial axes) input, got {list(x.shape)}"
            )
        for axis, kernel in enumerate(self.pool_kernel):
            if x.shape[axis + 2] < kernel:
                raise ValueError(
                    f"NonLocalBlock with sub_sample max-pools the spatial axes with kernel "
                    f"{self.pool_kernel}, so they must be at least that large; "
                    f"got input shape {list(x.shape)}"
                )

    def _project(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor, List[int]]:
        """Single-head theta (B, 1, N, C_i), phi and g (B, 1, M, C_i), and the key shape."""
        self._check_input(x)
        theta = self.theta(x).flatten(2).transpose(1, 2)[:, None]  # (B, 1, N, C_i)
        phi = self.pool(self.phi(x))  # (B, C_i, *key_spatial)
        key_shape: List[int] = phi.shape[2:]
        phi = phi.flatten(2).transpose(1, 2)[:, None]  # (B, 1, M, C_i)
        g = self.pool(self.g(x)).flatten(2).transpose(1, 2)[:, None]  # (B, 1, M, C_i)
        return theta, phi, g, key_shape

    def _residual(self, attended: Tensor, x: Tensor) -> Tensor:
        spatial: List[int] = x.shape[2:]
        y = attended[:, 0].transpose(1, 2).unflatten(2, spatial)  # (B, C_i, *spatial)
        return self.W(y) + x  # (B, C, *spatial)

    def forward(self, x: Tensor) -> Tensor:
        theta, phi, g, _ = self._project(x)
        return self._residual(fast_attention(theta, phi, g, scale=self.scale), x)

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        theta, phi, g, key_shape = self._project(x)
        attended, weights = explicit_attention(theta, phi, g, scale=self.scale)  # (B, 1, N, M)
        received = received_attention(weights).unflatten(1, key_shape)  # (B, *key_spatial)
        return self._residual(attended, x), {self.map_key("attention"): received}
