"""Attention modules of the seeds, one family per file, all TorchScript-compatible.

Each module's ``forward`` is the fast path; ``forward_with_maps`` also returns its compact
attention maps (see base.py for the convention).

One vocabulary of constructor arguments, in timm's manner, so that a reader who knows one
module knows the others' (each module's docstring says which seed name each one replaces):

* ``channels``, always first: the input channel count (``create_attention`` relies on it).
* ``reduction`` (int): a channel bottleneck's inner width is ``max(channels // reduction, 1)``,
  the seeds' ``C // r`` (SE, CBAM, SAGAN/DANet, Non-local, CCNet). ``rd_channels`` sets that
  width explicitly and wins over ``reduction`` (Non-local's ``inter_channels``).
* ``num_heads``; ``key_dim``: the query/key width of one head (TopFormer's ``key_dim``, the
  augmented convolution's ``dk // Nh``, the cross-attention's ``D_emb``); ``value_dim``: one
  head's value width (the augmented convolution's ``dv // Nh``); ``attn_ratio``: ``value_dim =
  int(attn_ratio * key_dim)`` where the seed defines it so (TopFormer, after LeViT).
* ``act_layer`` and ``gate_layer``: ``nn.Module`` classes (``nn.ReLU``, ``nn.Sigmoid``), never
  strings or instances; a module builds its own instances.
* ``out_channels``, ``kernel_size``, ``stride``: as in ``nn.Conv2d``.
* kept from their papers where no shared name fits: ``dimension``, ``sub_sample`` and
  ``bn_layer`` (Non-local), ``recurrence`` (CCNet), ``relative`` and ``shape`` (augmented
  convolution), ``context_channels`` (cross-attention), ``dim_feedforward``, ``dropout``,
  ``num_layers`` and ``normalize_before`` (DETR), ``num_pos_feats`` (DETR's sine encoding),
  ``localisation_channels``, ``pooled_size`` and ``hidden_features`` (STN).
"""

from models.attention.augmented_conv import AugmentedConv2d
from models.attention.base import AttentionModule, Identity, name_attention_maps
from models.attention.cbam import CBAM, ChannelGate, SpatialGate
from models.attention.channel_attention import ChannelSelfAttention
from models.attention.criss_cross import CrissCrossAttention
from models.attention.cross_attention import Conv2dCrossAttention
from models.attention.factory import ATTENTION_MODULES, AttnLayer, create_attention, get_attention
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
    "AttnLayer",
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
    "get_attention",
    "name_attention_maps",
]
