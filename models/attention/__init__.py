"""Attention modules of the seeds, one family per file, all TorchScript-compatible.

Each module's ``forward`` is the fast path; ``forward_with_maps`` also returns its compact
attention maps (see base.py for the convention).
"""

from models.attention.augmented_conv import AugmentedConv2d
from models.attention.base import AttentionModule, Identity, name_attention_maps
from models.attention.cbam import CBAM, ChannelGate, SpatialGate
from models.attention.channel_attention import ChannelSelfAttention
from models.attention.criss_cross import CrissCrossAttention
from models.attention.cross_attention import Conv2dCrossAttention
from models.attention.factory import ATTENTION_MODULES, create_attention
from models.attention.non_local import NonLocalBlock
from models.attention.positional_encoding import PositionEmbeddingSine
from models.attention.self_attention import SelfAttention2d
from models.attention.spatial_transformer import SpatialTransformer
from models.attention.squeeze_excite import SqueezeExcitation
from models.attention.topformer import TopFormerAttention
from models.attention.transformer import TransformerDecoderLayer, TransformerEncoderLayer
from models.attention.transformer_stack import TransformerDecoder, TransformerEncoder

__all__ = [
    "ATTENTION_MODULES",
    "CBAM",
    "AttentionModule",
    "AugmentedConv2d",
    "ChannelGate",
    "ChannelSelfAttention",
    "Conv2dCrossAttention",
    "CrissCrossAttention",
    "Identity",
    "NonLocalBlock",
    "PositionEmbeddingSine",
    "SelfAttention2d",
    "SpatialGate",
    "SpatialTransformer",
    "SqueezeExcitation",
    "TopFormerAttention",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "create_attention",
    "name_attention_maps",
]
