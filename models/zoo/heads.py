"""Prediction heads: classification (pool + linear, DETR queries) and segmentation
(DANet dual attention, CCNet recurrent criss-cross, Non-local). Segmentation heads return
logits at feature resolution; :class:`models.zoo.networks.Segmenter` upsamples them."""

from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from models.attention.base import reduced_channels
from models.attention.channel_attention import ChannelSelfAttention
from models.attention.criss_cross import CrissCrossAttention
from models.attention.non_local import NonLocalBlock
from models.attention.positional_encoding import PositionEmbeddingSine
from models.attention.self_attention import SelfAttention2d
from models.attention.transformer_stack import TransformerDecoder, TransformerEncoder
from models.zoo.blocks import conv_bn_relu
from models.zoo.chain import NoMaps
from models.zoo.necks import maps_to_grid, to_tokens

SEGMENTATION_DROPOUT = 0.1
#: Segmentation heads attend at a quarter of the backbone's width (DANet's and CCNet's
#: ``inter_channels = in_channels // 4``).
HEAD_REDUCTION = 4


class PoolLinearHead(NoMaps):
    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.mean(dim=(2, 3)))


class DetrHead(nn.Module):
    """DETR encoder-decoder: learned queries read the feature map; their mean is classified."""

    def __init__(
        self,
        channels: int,
        num_classes: int,
        num_queries: int = 4,
        num_layers: int = 2,
        num_heads: int = 4,
        dim_feedforward: Optional[int] = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        feedforward = dim_feedforward or 4 * channels
        self.position = PositionEmbeddingSine(channels // 2)
        self.encoder = TransformerEncoder(channels, num_layers, num_heads, feedforward, dropout)
        self.decoder = TransformerDecoder(channels, num_layers, num_heads, feedforward, dropout)
        self.query_embed = nn.Parameter(torch.randn(num_queries, channels) * 0.02)
        self.fc = nn.Linear(channels, num_classes)

    def _prepare(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        query_pos = self.query_embed.unsqueeze(0).expand(x.shape[0], -1, -1)  # (B, Q, C)
        return to_tokens(x), to_tokens(self.position(x)), query_pos

    def forward(self, x: Tensor) -> Tensor:
        tokens, pos, query_pos = self._prepare(x)
        memory = self.encoder(tokens, pos)
        queries = self.decoder(torch.zeros_like(query_pos), memory, pos, query_pos)
        return self.fc(queries.mean(dim=1))

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        height, width = x.shape[2], x.shape[3]
        tokens, pos, query_pos = self._prepare(x)
        memory, encoder_maps = self.encoder.forward_with_maps(tokens, pos)
        queries, decoder_maps = self.decoder.forward_with_maps(
            torch.zeros_like(query_pos), memory, pos, query_pos
        )
        maps = maps_to_grid(encoder_maps, height, width)
        for name, value in decoder_maps.items():
            if name.endswith("cross_attention"):  # over the feature grid, not the queries
                value = value.reshape(value.shape[0], height, width)
            maps[name] = value
        return self.fc(queries.mean(dim=1)), maps


def head_channels(channels: int) -> int:
    """The width a segmentation head reduces the backbone's features to before attending."""
    return reduced_channels(channels, HEAD_REDUCTION)


def segmentation_classifier(channels: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Dropout2d(SEGMENTATION_DROPOUT), nn.Conv2d(channels, num_classes, 1))


class DANetHead(nn.Module):
    """DANet dual attention head (seed 003 ``DANetHead``): position (PAM) and channel (CAM)
    branches, summed, classified.

    Differences from the seed: its final 1x1 convolutions hard-code 512 input channels (a bug
    for any other width): they take the branch width, :func:`head_channels`, here. The seed
    also returns the two branch predictions for auxiliary losses; only the fused prediction is
    served.
    """

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        inter = head_channels(channels)
        self.position_in = conv_bn_relu(channels, inter)
        self.channel_in = conv_bn_relu(channels, inter)
        self.position = SelfAttention2d(inter)
        self.channel = ChannelSelfAttention(inter)
        self.position_out = conv_bn_relu(inter, inter)
        self.channel_out = conv_bn_relu(inter, inter)
        self.classifier = segmentation_classifier(inter, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        position = self.position_out(self.position(self.position_in(x)))
        channel = self.channel_out(self.channel(self.channel_in(x)))
        return self.classifier(position + channel)

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        position, maps = self.position.forward_with_maps(self.position_in(x))
        channel, channel_maps = self.channel.forward_with_maps(self.channel_in(x))
        maps.update(channel_maps)
        fused = self.position_out(position) + self.channel_out(channel)
        return self.classifier(fused), maps


class ContextHead(nn.Module):
    """CCNet's RCCA module shape, with any context attention in the middle: reduce (3x3),
    attend, 3x3, concatenate with the input, bottleneck 3x3, classify. CCNet uses recurrent
    criss-cross attention (R=2); the Non-local segmenter puts a Non-local block there.
    ``attention`` takes the reduced width, :func:`head_channels`."""

    def __init__(self, channels: int, num_classes: int, attention: nn.Module) -> None:
        super().__init__()
        inter = head_channels(channels)
        self.reduce = conv_bn_relu(channels, inter)
        self.attention = attention
        self.expand = conv_bn_relu(inter, inter)
        self.bottleneck = conv_bn_relu(channels + inter, inter)
        self.classifier = segmentation_classifier(inter, num_classes)

    def _classify(self, x: Tensor, context: Tensor) -> Tensor:
        fused = self.bottleneck(torch.cat([x, self.expand(context)], dim=1))
        return self.classifier(fused)

    def forward(self, x: Tensor) -> Tensor:
        return self._classify(x, self.attention(self.reduce(x)))

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        context, maps = self.attention.forward_with_maps(self.reduce(x))
        return self._classify(x, context), maps


def ccnet_head(channels: int, num_classes: int, recurrence: int = 2) -> ContextHead:
    attention = CrissCrossAttention(head_channels(channels), recurrence=recurrence)
    return ContextHead(channels, num_classes, attention)


def nonlocal_head(channels: int, num_classes: int) -> ContextHead:
    attention = NonLocalBlock(head_channels(channels), sub_sample=True)
    return ContextHead(channels, num_classes, attention)
