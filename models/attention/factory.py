"""``create_attention(name, channels, **kwargs)``: one small factory, one table of names.

Lets a block take ``attn="cbam"``. The table holds the drop-in modules: those that map
(B, C, H, W) to (B, C, H, W) and carry their own residual or gate, so a block can apply them
without knowing which one it holds. Modules with other contracts (AugmentedConv2d replaces a
convolution, TopFormerAttention and Conv2dCrossAttention have no residual, the transformer
works on token sequences) are built by the architectures that use them.
"""

from typing import Any, Dict, Optional, Type

from models.attention.base import AttentionModule, Identity
from models.attention.cbam import CBAM, ChannelGate, SpatialGate
from models.attention.channel_attention import ChannelSelfAttention
from models.attention.criss_cross import CrissCrossAttention
from models.attention.non_local import NonLocalBlock
from models.attention.self_attention import SelfAttention2d
from models.attention.squeeze_excite import SqueezeExcitation

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


def create_attention(name: Optional[str], channels: int, **kwargs: Any) -> AttentionModule:
    """Build the attention module registered as ``name``; ``None`` or ``"none"`` gives Identity."""
    if name is None or name == "none":
        return Identity()
    try:
        module_class = ATTENTION_MODULES[name]
    except KeyError:
        known = ", ".join(sorted(ATTENTION_MODULES))
        raise ValueError(f"unknown attention {name!r}; known: {known}") from None
    return module_class(channels, **kwargs)
