"""Architectures as data: a few frozen dataclasses that say which backbone, which attention
where, which neck and which head. :mod:`models.zoo.registry` names instances of them and
:mod:`models.zoo.builder` turns one into a module."""

from dataclasses import dataclass, field
from typing import Literal, Optional, Tuple

from models.attention.factory import AttnLayer
from models.zoo.blocks import AugmentedSpec

Task = Literal["classification", "segmentation"]


@dataclass(frozen=True)
class StageSpec:
    """``blocks`` basic blocks of width ``channels``; the first one strides (or dilates)."""

    channels: int
    blocks: int = 1
    attn_layer: AttnLayer = None  # what create_attention takes, in every block of the stage
    augmented: Optional[AugmentedSpec] = None  # attention-augmented first convolution


@dataclass(frozen=True)
class ResNetSpec:
    """Stem (output stride 4), then stages that each halve the resolution, until
    ``output_stride``; later stages keep the resolution and dilate instead (DeepLab style)."""

    stages: Tuple[StageSpec, ...]
    stem_channels: int = 32
    output_stride: int = 32


@dataclass(frozen=True)
class TopFormerSpec:
    """A light TopFormer-style model: a strided convolutional token pyramid down to stride 16,
    then TopFormer transformer blocks on the coarse tokens."""

    pyramid: Tuple[int, ...] = (16, 32, 64)
    blocks: int = 2
    key_dim: int = 16
    num_heads: int = 4
    attn_ratio: float = 2.0
    mlp_ratio: float = 2.0


@dataclass(frozen=True)
class NeckSpec:
    """Global attention after the backbone: a create_attention name or ``"transformer"``."""

    kind: str
    num_layers: int = 2
    num_heads: int = 4


@dataclass(frozen=True)
class ArchitectureSpec:
    name: str
    task: Task
    description: str
    backbone: ResNetSpec | TopFormerSpec
    head: str  # classification: "linear" | "detr"; segmentation: "danet" | "ccnet" | "nonlocal"
    neck: Optional[NeckSpec] = None
    stn: bool = False  # spatial transformer front end
    input_size: Tuple[int, int] = (224, 224)
    tags: Tuple[str, ...] = field(default_factory=tuple)
