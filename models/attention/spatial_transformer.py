"""Spatial transformer: a learned affine warp of the feature map ("where to look").

Paper: Jaderberg et al., "Spatial Transformer Networks", NeurIPS 2015 (arXiv:1506.02025).
Seed: 004 ``STN``: only the sampler, a C/CUDA ``BilinearSampler`` over ``BHWD`` tensors that
reads the input at the points of a given sampling grid. The paper's three parts are a
localisation network predicting ``theta`` (2 x 3), the grid generator mapping every output
pixel ``(x_t, y_t)`` to ``theta @ (x_t, y_t, 1)`` in normalised [-1, 1] coordinates, and the
bilinear sampler.

Here, deliberately different from the seed:

* sampler and grid: ``F.affine_grid`` + ``F.grid_sample`` (bilinear, zeros padding,
  ``align_corners=False``) in the ``(B, C, H, W)`` layout instead of the seed's compiled
  ``BHWD`` extension; the output has the input's shape (the seed's output takes the grid's
  height and width).
* localisation network (not in the seed; a small one in the spirit of the paper and of the
  PyTorch STN tutorial): ``conv3x3 -> ReLU -> conv3x3 (stride 2) -> ReLU ->
  AdaptiveAvgPool2d(pooled_size) -> flatten -> Linear -> ReLU -> Linear(hidden, 6)``; the
  adaptive pool lets it take any input size, and ``act_layer`` replaces the ReLUs.
* the last Linear starts with zero weights and the identity bias ``[1, 0, 0, 0, 1, 0]``, as the
  paper recommends, so a fresh module returns its input (up to float rounding: at the
  identity, ``align_corners=False`` samples exactly the pixel centres).

Maps: ``theta`` (B, 2, 3), the affine transform from output to input coordinates.
"""

from typing import Dict, Tuple, Type

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.attention.base import AttentionModule, check_layer, positive

IDENTITY_THETA = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


class SpatialTransformer(AttentionModule):
    def __init__(
        self,
        channels: int,
        localisation_channels: int = 8,
        pooled_size: int = 4,
        hidden_features: int = 32,
        act_layer: Type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        for name, value in (
            ("channels", channels),
            ("localisation_channels", localisation_channels),
            ("pooled_size", pooled_size),
            ("hidden_features", hidden_features),
        ):
            positive(name, value)
        check_layer("act_layer", act_layer)
        self.channels = channels
        self.localisation = nn.Sequential(
            nn.Conv2d(channels, localisation_channels, 3, padding=1),
            act_layer(),
            nn.Conv2d(localisation_channels, localisation_channels, 3, stride=2, padding=1),
            act_layer(),
            nn.AdaptiveAvgPool2d(pooled_size),
            nn.Flatten(),
        )
        self.regressor = nn.Sequential(
            nn.Linear(localisation_channels * pooled_size * pooled_size, hidden_features),
            act_layer(),
            nn.Linear(hidden_features, 6),
        )
        # Start at the identity transform: the module is a no-op until it learns to warp.
        nn.init.zeros_(self.regressor[2].weight)
        with torch.no_grad():
            self.regressor[2].bias.copy_(torch.tensor(IDENTITY_THETA))
        self.map_names = ["theta"]

    def theta(self, x: Tensor) -> Tensor:
        """The affine transforms (B, 2, 3) the localisation network predicts for x."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"SpatialTransformer expects (B, {self.channels}, H, W), got {list(x.shape)}"
            )
        return self.regressor(self.localisation(x)).view(-1, 2, 3)  # (B, 2, 3)

    def warp(self, x: Tensor, theta: Tensor) -> Tensor:
        """Sample x on the grid theta maps the output pixels to: (B, C, H, W)."""
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.warp(x, self.theta(x))

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        theta = self.theta(x)
        return self.warp(x, theta), {self.map_key("theta"): theta}
