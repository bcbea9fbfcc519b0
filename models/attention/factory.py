"""``create_attention(attn_layer, channels, **kwargs)``: one small factory, one table of names.

Lets a block take ``attn_layer="cbam"`` or ``attn_layer=CBAM`` (as timm's ``get_attn`` /
``create_attn``): a name is looked up in the table, a class is used as it is, and the keyword
arguments reach the module's constructor unchanged. The table holds the drop-in modules: those
that map (B, C, H, W) to (B, C, H, W) and carry their own residual or gate, so a block can
apply them without knowing which one it holds. Modules with other contracts (AugmentedConv2d
replaces a convolution, TopFormerAttention and Conv2dCrossAttention have no residual, the
transformer works on token sequences) are built by the architectures that use them.
"""

from typing import Any, Dict, Optional, Type, Union

from models.attention.base import AttentionModule, Identity
from models.attention.cbam import CBAM, ChannelGate, SpatialGate
from models.attention.channel_attention import ChannelSelfAttention
from models.attention.criss_cross import CrissCrossAttention
from models.attention.non_local import NonLocalBlock
from models.attention.self_attention import SelfAttention2d
from models.attention.squeeze_excite import SqueezeExcitation

#: What a block's ``attn_layer`` may be: a table name, an AttentionModule class, or None.
AttnLayer = Union[str, Type[AttentionModule], None]

ATTENTION_MODULES: Dict[str, Type[AttentionModule]] = {
    "se": SqueezeExcitation,
    "cbam": CBAM,
    "channel_gate": ChannelGate,
    "spatial_gate": SpatialGate,
    "self_attention": SelfAttention2d,
    "channel_self_attention": ChannelSelfAttention,
    "nonlocal": NonLocalBlock,
    "criss_cross": CrissCrossAttention,
}


def get_attention(attn_layer: AttnLayer) -> Optional[Type[AttentionModule]]:
    """The class ``attn_layer`` names (``None`` or ``"none"``: no attention)."""
    if attn_layer is None or attn_layer == "none":
        return None
    if isinstance(attn_layer, str):
        try:
            return ATTENTION_MODULES[attn_layer]
        except KeyError:
            known = ", ".join(sorted(ATTENTION_MODULES))
            raise ValueError(f"unknown attention {attn_layer!r}; known: {known}") from None
    if isinstance(attn_layer, type) and issubclass(attn_layer, AttentionModule):
        return attn_layer
    raise TypeError(
        "attn_layer must be an attention name, an AttentionModule class or None, "
        f"got {attn_layer!r}"
    )


def create_attention(attn_layer: AttnLayer, channels: int, **kwargs: Any) -> AttentionModule:
    """Build ``attn_layer`` for ``channels`` input channels, passing ``kwargs`` through;
    no attention gives :class:`Identity`, so a block can always call ``forward_with_maps``."""
    module_class = get_attention(attn_layer)
    if module_class is None:
        return Identity()
    return module_class(channels, **kwargs)
