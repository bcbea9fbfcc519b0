"""DETR's transformer encoder and decoder, batch-first, with positional embeddings on Q and K.

Paper: Carion et al., "End-to-End Object Detection with Transformers" (DETR), ECCV 2020, built
on Vaswani et al., "Attention Is All You Need", NeurIPS 2017. Seed: 004 (DETR's
``transformer.py``): ``TransformerEncoderLayer``, ``TransformerDecoderLayer``,
``TransformerEncoder``, ``TransformerDecoder``.

Math (as the seed), with ``attn(q, k, v)`` the multi-head scaled dot product (softmax over keys):

* encoder layer, post-norm: ``s = norm1(s + attn(s + pos, s + pos, s))``, then
  ``s = norm2(s + linear2(act(linear1(s))))``; pre-norm: ``t = norm1(s)``,
  ``s = s + attn(t + pos, t + pos, t)``, ``s = s + linear2(act(linear1(norm2(s))))``.
  The positional embedding goes into queries and keys only, never into values.
* decoder layer: self-attention on the queries ``tgt`` (``query_pos`` on its Q and K), then
  cross-attention with ``Q = tgt + query_pos``, ``K = memory + pos``, ``V = memory``, then the
  FFN; post-norm (``norm1..3`` after each residual) or pre-norm (before each sub-layer).
* encoder: the layers in turn, then a final LayerNorm only when ``normalize_before`` (the
  seed's ``Transformer`` builds ``encoder_norm`` only then). Decoder: the layers in turn and a
  final LayerNorm always (``decoder_norm``); ``return_intermediate`` stacks the normalised
  output of every layer.
* initialisation: every weight matrix is Xavier-uniform, as the seed's
  ``Transformer._reset_parameters``; each layer is built (and initialised) independently.

Deliberate differences from the seed:

* sequences are batch-first, ``(B, N, C)`` (the seed is sequence-first, ``(N, B, C)``): it
  matches the batch-first layout of the conv feature maps and the service's batching. The
  intermediate stack is ``(L, B, Q, C)``.
* no attention masks or key-padding masks: images here are never padded.
* the seed's ``activation`` string (``"relu"``, ``"gelu"``) is ``act_layer``, an ``nn.Module``
  class as in every module here (``nn.ReLU``, ``nn.GELU``; the attribute keeps DETR's name
  ``activation`` and holds no weights). The seed also accepts ``"glu"``, which halves the FFN
  width so that ``linear2`` cannot take it: ``nn.GLU`` raises ``ValueError`` here.
* the constructors take the hyper-parameters (``channels`` is DETR's ``d_model``) rather than a
  prototype layer to clone. Submodule names follow DETR's so its state dicts load.

Maps (mass each key token receives, averaged over heads and queries; each sums to 1 in eval
mode, since in training MHA returns the weights after attention dropout):

* ``TransformerEncoderLayer``: ``attention`` (B, N).
* ``TransformerDecoderLayer``: ``self_attention`` (B, Q) over the queries and
  ``cross_attention`` (B, N) over the memory tokens.
* the containers add no maps of their own: they merge their layers' maps, whose keys are the
  layers' qualified names, ``layers.{i}.attention`` for the encoder and
  ``layers.{i}.self_attention`` / ``layers.{i}.cross_attention`` for the decoder. Both call
  :func:`name_attention_maps` on themselves when built, so they work standalone; an enclosing
  architecture calling it again re-prefixes the layers with their full paths.
"""

from typing import Dict, Optional, Tuple, Type

import torch
from torch import Tensor, nn

from models.attention.base import AttentionModule, check_layer


def _check_arguments(
    channels: int,
    num_heads: int,
    dim_feedforward: int,
    dropout: float,
    act_layer: Type[nn.Module],
) -> None:
    if channels < 1 or num_heads < 1 or channels % num_heads != 0:
        raise ValueError(
            f"channels ({channels}) must be a positive multiple of num_heads ({num_heads})"
        )
    if dim_feedforward < 1:
        raise ValueError(f"dim_feedforward must be positive, got {dim_feedforward}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if issubclass(check_layer("act_layer", act_layer), nn.GLU):
        raise ValueError(
            "act_layer nn.GLU halves the feed-forward width, which linear2 cannot take"
        )


def _xavier_(module: nn.Module) -> None:
    """The seed's ``_reset_parameters``: Xavier-uniform for every weight matrix."""
    for param in module.parameters():
        if param.dim() > 1:
            nn.init.xavier_uniform_(param)


def _with_pos(x: Tensor, pos: Optional[Tensor]) -> Tensor:
    return x if pos is None else x + pos


def _check_sequence(x: Tensor, channels: int, name: str) -> None:
    if x.dim() != 3 or x.shape[2] != channels:
        raise ValueError(f"{name} must be batch-first (B, N, {channels}), got {list(x.shape)}")


def _received(
    weights: Optional[Tensor], out: Tensor, need_weights: bool
) -> Tuple[Tensor, Optional[Tensor]]:
    """Turn MHA's head-averaged weights (B, Nq, Nk) into the received mass (B, Nk)."""
    if need_weights and weights is not None:
        return out, weights.mean(dim=1)
    return out, None


class _DetrLayer(AttentionModule):
    """What encoder and decoder layers share: self-attention, the FFN and its activation."""

    def __init__(
        self,
        channels: int,
        num_heads: int,
        dim_feedforward: int,
        dropout: float,
        act_layer: Type[nn.Module],
    ) -> None:
        super().__init__()
        _check_arguments(channels, num_heads, dim_feedforward, dropout, act_layer)
        self.channels = channels
        self.self_attn = nn.MultiheadAttention(
            channels, num_heads, dropout=dropout, batch_first=True
        )
        self.linear1 = nn.Linear(channels, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, channels)
        self.activation = act_layer()

    def feed_forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))

    def _self_attend(
        self, x: Tensor, pos: Optional[Tensor], need_weights: bool
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Self-attention with pos added to queries and keys only; the map if asked."""
        qk = _with_pos(x, pos)
        out, weights = self.self_attn(
            qk, qk, x, need_weights=need_weights, average_attn_weights=True
        )
        return _received(weights, out, need_weights)


class TransformerEncoderLayer(_DetrLayer):
    def __init__(
        self,
        channels: int,
        num_heads: int = 8,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        act_layer: Type[nn.Module] = nn.ReLU,
        normalize_before: bool = False,
    ) -> None:
        super().__init__(channels, num_heads, dim_feedforward, dropout, act_layer)
        self.norm1 = nn.LayerNorm(channels)
        self.norm2 = nn.LayerNorm(channels)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.normalize_before = normalize_before
        _xavier_(self)
        self.map_names = ["attention"]

    def _layer(
        self, src: Tensor, pos: Optional[Tensor], need_weights: bool
    ) -> Tuple[Tensor, Optional[Tensor]]:
        _check_sequence(src, self.channels, "src")
        if self.normalize_before:
            attended, received = self._self_attend(self.norm1(src), pos, need_weights)
            src = src + self.dropout1(attended)
            return src + self.dropout2(self.feed_forward(self.norm2(src))), received
        attended, received = self._self_attend(src, pos, need_weights)
        src = self.norm1(src + self.dropout1(attended))
        return self.norm2(src + self.dropout2(self.feed_forward(src))), received

    def forward(self, src: Tensor, pos: Optional[Tensor] = None) -> Tensor:
        return self._layer(src, pos, False)[0]

    @torch.jit.export
    def forward_with_maps(
        self, src: Tensor, pos: Optional[Tensor] = None
    ) -> Tuple[Tensor, Dict[str, Tensor]]:
        out, received = self._layer(src, pos, True)
        if received is None:
            raise RuntimeError("MultiheadAttention returned no weights")
        return out, {self.map_key("attention"): received}


class TransformerDecoderLayer(_DetrLayer):
    def __init__(
        self,
        channels: int,
        num_heads: int = 8,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        act_layer: Type[nn.Module] = nn.ReLU,
        normalize_before: bool = False,
    ) -> None:
        super().__init__(channels, num_heads, dim_feedforward, dropout, act_layer)
        self.multihead_attn = nn.MultiheadAttention(
            channels, num_heads, dropout=dropout, batch_first=True
        )
        self.norm1 = nn.LayerNorm(channels)
        self.norm2 = nn.LayerNorm(channels)
        self.norm3 = nn.LayerNorm(channels)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.normalize_before = normalize_before
        _xavier_(self)
        self.map_names = ["self_attention", "cross_attention"]

    def _cross_attend(
        self,
        x: Tensor,
        memory: Tensor,
        pos: Optional[Tensor],
        query_pos: Optional[Tensor],
        need_weights: bool,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        out, weights = self.multihead_attn(
            _with_pos(x, query_pos),
            _with_pos(memory, pos),
            memory,
            need_weights=need_weights,
            average_attn_weights=True,
        )
        return _received(weights, out, need_weights)

    def _layer(
        self,
        tgt: Tensor,
        memory: Tensor,
        pos: Optional[Tensor],
        query_pos: Optional[Tensor],
        need_weights: bool,
    ) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        _check_sequence(tgt, self.channels, "tgt")
        _check_sequence(memory, self.channels, "memory")
        if self.normalize_before:
            attended, self_map = self._self_attend(self.norm1(tgt), query_pos, need_weights)
            tgt = tgt + self.dropout1(attended)
            attended, cross_map = self._cross_attend(
                self.norm2(tgt), memory, pos, query_pos, need_weights
            )
            tgt = tgt + self.dropout2(attended)
            tgt = tgt + self.dropout3(self.feed_forward(self.norm3(tgt)))
            return tgt, self_map, cross_map
        attended, self_map = self._self_attend(tgt, query_pos, need_weights)
        tgt = self.norm1(tgt + self.dropout1(attended))
        attended, cross_map = self._cross_attend(tgt, memory, pos, query_pos, need_weights)
        tgt = self.norm2(tgt + self.dropout2(attended))
        tgt = self.norm3(tgt + self.dropout3(self.feed_forward(tgt)))
        return tgt, self_map, cross_map

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        pos: Optional[Tensor] = None,
        query_pos: Optional[Tensor] = None,
    ) -> Tensor:
        return self._layer(tgt, memory, pos, query_pos, False)[0]

    @torch.jit.export
    def forward_with_maps(
        self,
        tgt: Tensor,
        memory: Tensor,
        pos: Optional[Tensor] = None,
        query_pos: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Dict[str, Tensor]]:
        out, self_map, cross_map = self._layer(tgt, memory, pos, query_pos, True)
        if self_map is None or cross_map is None:
            raise RuntimeError("MultiheadAttention returned no weights")
        maps = {
            self.map_key("self_attention"): self_map,
            self.map_key("cross_attention"): cross_map,
        }
        return out, maps
