"""Every constructor mode of every attention module compiles with ``torch.jit.script``.

The README promises that every module scripts; a mode that only the default exercises can
still fail (``NonLocalBlock(sub_sample=False)`` once did: an empty, untyped list attribute).
So each meaningful option combination is one case here, and each case checks that the
scripted module equals the eager one on ``forward`` and ``forward_with_maps``, that the fast
path equals the explicit one, and (batch-first outputs) that batch items are independent.
"""

import itertools
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, Tuple

import pytest
import torch
from torch import Tensor, nn

import models.attention as attention
from models.attention import (
    CBAM,
    AttentionModule,
    AugmentedConv2d,
    ChannelGate,
    ChannelSelfAttention,
    Conv2dCrossAttention,
    CrissCrossAttention,
    Identity,
    NonLocalBlock,
    SelfAttention2d,
    SpatialGate,
    SpatialTransformer,
    SqueezeExcitation,
    TopFormerAttention,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from tests.models.checks import (
    assert_batch_independent,
    assert_fast_equals_explicit,
    assert_scripted_matches_eager,
    near_identity_stn_,
    randomise_,
)

BATCH = 4
INPUT_SCALE = 0.5  # moderate logits, so no softmax saturates into a rounding-only comparison
C, HEADS, FF = 16, 4, 24  # transformer width, heads, feed-forward width


@dataclass(frozen=True)
class Mode:
    """One constructor mode: how to build it and the shapes of its inputs (batch first)."""

    build: Callable[[], nn.Module]
    inputs: Tuple[Tuple[int, ...], ...]
    batch_first_output: bool = True
    prepare: Callable[[nn.Module], nn.Module] = randomise_


def non_local_modes() -> Iterator[Tuple[str, Mode]]:
    shapes = {1: (8, 9), 2: (8, 5, 7), 3: (8, 3, 4, 5)}
    for dimension, sub_sample, bn_layer in itertools.product(
        (1, 2, 3), (True, False), (True, False)
    ):
        name = f"nonlocal-{dimension}d-sub_sample={sub_sample}-bn_layer={bn_layer}"
        yield (
            name,
            Mode(
                lambda d=dimension, s=sub_sample, b=bn_layer: NonLocalBlock(
                    8, dimension=d, sub_sample=s, bn_layer=b
                ),
                ((BATCH, *shapes[dimension]),),
            ),
        )
    yield (
        "nonlocal-rd_channels=3",
        Mode(lambda: NonLocalBlock(8, rd_channels=3), ((BATCH, 8, 5, 7),)),
    )
    yield "nonlocal-reduction=4", Mode(lambda: NonLocalBlock(8, reduction=4), ((BATCH, 8, 5, 7),))


def augmented_modes() -> Iterator[Tuple[str, Mode]]:
    for relative, stride, num_heads in itertools.product((True, False), (1, 2), (1, 2)):
        shape = (3, 5) if stride == 1 else (2, 3)
        yield (
            f"augmented-relative={relative}-stride={stride}-heads={num_heads}",
            Mode(
                lambda r=relative, s=stride, h=num_heads, shape=shape: AugmentedConv2d(
                    4, 12, 3, key_dim=4, value_dim=2, num_heads=h, relative=r, stride=s, shape=shape
                ),
                ((BATCH, 4, 3, 5),),
            ),
        )
    yield (
        "augmented-square-shape-kernel1",
        Mode(
            lambda: AugmentedConv2d(4, 10, 1, key_dim=2, value_dim=1, num_heads=2, shape=4),
            ((BATCH, 4, 4, 4),),
        ),
    )


def transformer_modes() -> Iterator[Tuple[str, Mode]]:
    src, tgt = (BATCH, 6, C), (BATCH, 3, C)
    # (name, class, inputs): with positional embeddings, and without (pos=None).
    layers = (
        ("encoder-layer", TransformerEncoderLayer, (src, src)),
        ("encoder-layer-no-pos", TransformerEncoderLayer, (src,)),
        ("decoder-layer", TransformerDecoderLayer, (tgt, src, src, tgt)),
        ("decoder-layer-no-pos", TransformerDecoderLayer, (tgt, src)),
    )
    for pre, act_layer in itertools.product((False, True), (nn.ReLU, nn.GELU)):
        tag = f"normalize_before={pre}-{act_layer.__name__}"
        for name, layer, inputs in layers:
            yield (
                f"{name}-{tag}",
                Mode(
                    lambda cls=layer, p=pre, a=act_layer: cls(
                        C, HEADS, FF, act_layer=a, normalize_before=p
                    ),
                    inputs,
                ),
            )
        yield (
            f"encoder-{tag}",
            Mode(
                lambda p=pre, a=act_layer: TransformerEncoder(
                    C, 2, HEADS, FF, act_layer=a, normalize_before=p
                ),
                (src, src),
            ),
        )
    for pre, intermediate in itertools.product((False, True), (False, True)):
        yield (
            f"decoder-normalize_before={pre}-return_intermediate={intermediate}",
            Mode(
                lambda p=pre, i=intermediate: TransformerDecoder(
                    C, 2, HEADS, FF, normalize_before=p, return_intermediate=i
                ),
                (tgt, src, src, tgt),
                batch_first_output=not intermediate,  # the stack is (L, B, Q, C)
            ),
        )


def other_modes() -> Iterator[Tuple[str, Mode]]:
    image = ((BATCH, 16, 5, 7),)
    yield "identity", Mode(Identity, image)
    yield "se", Mode(lambda: SqueezeExcitation(16), image)
    yield "se-reduction=4", Mode(lambda: SqueezeExcitation(16, reduction=4), image)
    yield "se-clamped", Mode(lambda: SqueezeExcitation(4), ((BATCH, 4, 3, 3),))
    yield (
        "se-rd_channels-gelu-hardsigmoid",
        Mode(
            lambda: SqueezeExcitation(
                16, rd_channels=3, act_layer=nn.GELU, gate_layer=nn.Hardsigmoid
            ),
            image,
        ),
    )
    yield "channel_gate", Mode(lambda: ChannelGate(16, reduction=4), image)
    yield (
        "channel_gate-rd_channels-gelu-hardsigmoid",
        Mode(
            lambda: ChannelGate(16, rd_channels=3, act_layer=nn.GELU, gate_layer=nn.Hardsigmoid),
            image,
        ),
    )
    yield (
        "spatial_gate-hardsigmoid",
        Mode(lambda: SpatialGate(16, gate_layer=nn.Hardsigmoid), image),
    )
    yield (
        "cbam-rd_channels-gelu-hardsigmoid",
        Mode(lambda: CBAM(16, rd_channels=3, act_layer=nn.GELU, gate_layer=nn.Hardsigmoid), image),
    )
    for kernel_size in (3, 7):
        yield (
            f"spatial_gate-kernel={kernel_size}",
            Mode(lambda k=kernel_size: SpatialGate(16, kernel_size=k), image),
        )
        yield (
            f"cbam-kernel={kernel_size}",
            Mode(lambda k=kernel_size: CBAM(16, reduction=4, kernel_size=k), image),
        )
    yield "self_attention", Mode(lambda: SelfAttention2d(16), image)
    yield "self_attention-reduction=2", Mode(lambda: SelfAttention2d(16, reduction=2), image)
    yield "self_attention-clamped", Mode(lambda: SelfAttention2d(4), ((BATCH, 4, 3, 5),))
    yield "self_attention-rd_channels=5", Mode(lambda: SelfAttention2d(16, rd_channels=5), image)
    yield "channel_self_attention", Mode(lambda: ChannelSelfAttention(16), image)
    for recurrence in (1, 2, 3):
        yield (
            f"criss_cross-recurrence={recurrence}",
            Mode(lambda r=recurrence: CrissCrossAttention(16, recurrence=r), image),
        )
    yield "criss_cross-reduction=2", Mode(lambda: CrissCrossAttention(16, reduction=2), image)
    yield "criss_cross-rd_channels=5", Mode(lambda: CrissCrossAttention(16, rd_channels=5), image)
    yield "cross_attention-self", Mode(lambda: Conv2dCrossAttention(4), ((BATCH, 4, 3, 5),))
    yield (
        "cross_attention-context",
        Mode(
            lambda: Conv2dCrossAttention(4, context_channels=6, key_dim=8, out_channels=3),
            ((BATCH, 4, 3, 5), (BATCH, 6, 4, 4)),
        ),
    )
    yield "topformer", Mode(lambda: TopFormerAttention(8), ((BATCH, 8, 3, 5),))
    yield (
        "topformer-hardswish-fractional-ratio",
        Mode(
            lambda: TopFormerAttention(
                8, key_dim=4, num_heads=2, attn_ratio=1.5, act_layer=nn.Hardswish
            ),
            ((BATCH, 8, 3, 5),),
        ),
    )
    for size in ((6, 6), (5, 11), (1, 3)):
        yield (
            f"spatial_transformer-{size[0]}x{size[1]}",
            Mode(
                lambda: SpatialTransformer(4, localisation_channels=4, pooled_size=2),
                ((BATCH, 4, *size),),
                prepare=near_identity_stn_,
            ),
        )
    yield (
        "spatial_transformer-default",
        Mode(lambda: SpatialTransformer(3), ((BATCH, 3, 9, 9),), prepare=near_identity_stn_),
    )
    yield (
        "spatial_transformer-gelu",
        Mode(
            lambda: SpatialTransformer(3, act_layer=nn.GELU),
            ((BATCH, 3, 9, 9),),
            prepare=near_identity_stn_,
        ),
    )


MODES: Dict[str, Mode] = dict(
    itertools.chain(non_local_modes(), augmented_modes(), transformer_modes(), other_modes())
)


def inputs_for(mode: Mode) -> Tuple[Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    return tuple(torch.randn(shape, generator=generator) * INPUT_SCALE for shape in mode.inputs)


@pytest.mark.parametrize("name", sorted(MODES))
def test_scripted_equals_eager_in_every_mode(name: str) -> None:
    mode = MODES[name]
    module = mode.prepare(mode.build())
    inputs = inputs_for(mode)
    assert_scripted_matches_eager(module, *inputs)
    assert_fast_equals_explicit(module, *inputs)
    if mode.batch_first_output:
        assert_batch_independent(module, *inputs)


def test_every_public_attention_module_has_a_mode() -> None:
    """A module added to models.attention without a case here fails this test."""
    public = {
        obj
        for obj in vars(attention).values()
        if isinstance(obj, type) and issubclass(obj, AttentionModule)
    } - {AttentionModule}
    covered = {type(mode.build()) for mode in MODES.values()}
    assert public - covered == set()
