"""Turn an :class:`ArchitectureSpec` into a module with ``forward`` and ``forward_with_maps``,
its attention maps named after where they sit (``backbone.stage3.block1.attn.spatial``)."""

import itertools
from collections import OrderedDict
from typing import List, Optional, Tuple

from torch import nn

from models.attention.base import name_attention_maps
from models.attention.factory import create_attention
from models.attention.spatial_transformer import SpatialTransformer
from models.zoo.blocks import BasicBlock, Stem, TopFormerBlock
from models.zoo.chain import Chain
from models.zoo.heads import DANetHead, DetrHead, PoolLinearHead, ccnet_head, nonlocal_head
from models.zoo.necks import TransformerNeck
from models.zoo.networks import Segmenter
from models.zoo.specs import ArchitectureSpec, NeckSpec, ResNetSpec, TopFormerSpec

IMAGE_CHANNELS = 3
STEM_STRIDE = 4


def halve(size: Tuple[int, int]) -> Tuple[int, int]:
    """Spatial size after a 3x3 convolution (or pool) with stride 2 and padding 1."""
    return (size[0] + 1) // 2, (size[1] + 1) // 2


def build_resnet(spec: ResNetSpec, input_size: Tuple[int, int]) -> Tuple[Chain, int]:
    """Stem and stages; returns the backbone and its output width."""
    parts: List[Tuple[str, nn.Module]] = [("stem", Stem(IMAGE_CHANNELS, spec.stem_channels))]
    size = halve(halve(input_size))
    stride, dilation, in_channels = STEM_STRIDE, 1, spec.stem_channels
    for index, stage in enumerate(spec.stages):
        first_stride = 1
        if index > 0 and stride < spec.output_stride:
            first_stride, stride, size = 2, stride * 2, halve(size)
        elif index > 0:
            dilation *= 2
        blocks = []
        for block in range(stage.blocks):
            blocks.append(
                (
                    f"block{block + 1}",
                    BasicBlock(
                        in_channels if block == 0 else stage.channels,
                        stage.channels,
                        stride=first_stride if block == 0 else 1,
                        dilation=dilation,
                        attn_layer=stage.attn_layer,
                        augmented=stage.augmented,
                        output_shape=size,
                    ),
                )
            )
        parts.append((f"stage{index + 1}", Chain(OrderedDict(blocks))))
        in_channels = stage.channels
    return Chain(OrderedDict(parts)), in_channels


def build_topformer(spec: TopFormerSpec) -> Tuple[Chain, int]:
    parts: List[Tuple[str, nn.Module]] = [("stem", Stem(IMAGE_CHANNELS, spec.pyramid[0]))]
    for index, (in_width, out_width) in enumerate(itertools.pairwise(spec.pyramid)):
        parts.append(
            (f"pyramid{index + 1}", Chain(OrderedDict(block1=BasicBlock(in_width, out_width, 2))))
        )
    width = spec.pyramid[-1]
    for index in range(spec.blocks):
        block = TopFormerBlock(width, spec.key_dim, spec.num_heads, spec.attn_ratio, spec.mlp_ratio)
        parts.append((f"transformer{index + 1}", block))
    return Chain(OrderedDict(parts)), width


def build_neck(spec: NeckSpec, channels: int) -> nn.Module:
    if spec.kind == "transformer":
        return TransformerNeck(channels, spec.num_layers, spec.num_heads)
    return create_attention(spec.kind, channels)


def build_head(name: str, channels: int, num_classes: int) -> nn.Module:
    heads = {
        "linear": lambda: PoolLinearHead(channels, num_classes),
        "detr": lambda: DetrHead(channels, num_classes),
        "danet": lambda: DANetHead(channels, num_classes),
        "ccnet": lambda: ccnet_head(channels, num_classes),
        "nonlocal": lambda: nonlocal_head(channels, num_classes),
    }
    if name not in heads:
        raise ValueError(f"unknown head {name!r}; known: {sorted(heads)}")
    return heads[name]()


def build_model(
    spec: ArchitectureSpec, num_classes: int, input_size: Optional[Tuple[int, int]] = None
) -> nn.Module:
    """A fresh (randomly initialised) model for ``spec``, in eval mode, maps named."""
    size = input_size or spec.input_size
    if isinstance(spec.backbone, ResNetSpec):
        backbone, channels = build_resnet(spec.backbone, size)
    else:
        backbone, channels = build_topformer(spec.backbone)
    parts: List[Tuple[str, nn.Module]] = []
    if spec.stn:
        parts.append(("stn", SpatialTransformer(IMAGE_CHANNELS)))
    parts.append(("backbone", backbone))
    if spec.neck is not None:
        parts.append(("neck", build_neck(spec.neck, channels)))
    parts.append(("head", build_head(spec.head, channels, num_classes)))
    network = Chain if spec.task == "classification" else Segmenter
    model = network(OrderedDict(parts))
    name_attention_maps(model)
    return model.eval()
