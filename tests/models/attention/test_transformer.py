import math

import pytest
import torch
from torch import Tensor, nn

from models.attention.base import name_attention_maps
from models.attention.transformer import TransformerDecoderLayer, TransformerEncoderLayer
from models.attention.transformer_stack import TransformerDecoder, TransformerEncoder
from tests.models.checks import (
    assert_close,
    assert_is_distribution,
    randomise_,
)

C, HEADS, FF = 16, 4, 24


def mha(attn: nn.MultiheadAttention, query: Tensor, key: Tensor, value: Tensor):
    """Multi-head attention with explicit matmuls: per head softmax(q k^T / sqrt(d)) v over the
    keys, heads concatenated, then out_proj. Returns (output, weights (B, h, Nq, Nk))."""
    b, nq, nk, d = query.shape[0], query.shape[1], key.shape[1], C // HEADS
    wq, wk, wv = attn.in_proj_weight.split(C)
    bq, bk, bv = attn.in_proj_bias.split(C)
    q = (query @ wq.t() + bq).reshape(b, nq, HEADS, d).transpose(1, 2)
    k = (key @ wk.t() + bk).reshape(b, nk, HEADS, d).transpose(1, 2)
    v = (value @ wv.t() + bv).reshape(b, nk, HEADS, d).transpose(1, 2)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(b, nq, C)
    return out @ attn.out_proj.weight.t() + attn.out_proj.bias, weights


def ffn(layer: nn.Module, x: Tensor, act=torch.relu) -> Tensor:
    return act(x @ layer.linear1.weight.t() + layer.linear1.bias) @ layer.linear2.weight.t() + (
        layer.linear2.bias
    )


def encoder_layer_formula(layer: TransformerEncoderLayer, src: Tensor, pos: Tensor, act):
    """Seed 004 forward_post / forward_pre (eval: dropout is the identity); pos on q, k only."""
    if layer.normalize_before:
        src2 = layer.norm1(src)
        attended, weights = mha(layer.self_attn, src2 + pos, src2 + pos, src2)
        src = src + attended
        return src + ffn(layer, layer.norm2(src), act), weights
    attended, weights = mha(layer.self_attn, src + pos, src + pos, src)
    src = layer.norm1(src + attended)
    return layer.norm2(src + ffn(layer, src, act)), weights


def decoder_layer_formula(layer: TransformerDecoderLayer, tgt, memory, pos, query_pos):
    """Seed 004 decoder forward_post / forward_pre in eval mode."""
    if layer.normalize_before:
        t2 = layer.norm1(tgt)
        attended, self_w = mha(layer.self_attn, t2 + query_pos, t2 + query_pos, t2)
        tgt = tgt + attended
        t2 = layer.norm2(tgt)
        attended, cross_w = mha(layer.multihead_attn, t2 + query_pos, memory + pos, memory)
        tgt = tgt + attended
        return tgt + ffn(layer, layer.norm3(tgt)), self_w, cross_w
    attended, self_w = mha(layer.self_attn, tgt + query_pos, tgt + query_pos, tgt)
    tgt = layer.norm1(tgt + attended)
    attended, cross_w = mha(layer.multihead_attn, tgt + query_pos, memory + pos, memory)
    tgt = layer.norm2(tgt + attended)
    return layer.norm3(tgt + ffn(layer, tgt)), self_w, cross_w


@pytest.mark.parametrize("pre", [False, True])
@pytest.mark.parametrize("act_layer", [nn.ReLU, nn.GELU])
def test_encoder_layer_matches_seed_formula(pre: bool, act_layer: type[nn.Module]) -> None:
    layer = TransformerEncoderLayer(C, HEADS, FF, act_layer=act_layer, normalize_before=pre)
    layer = randomise_(layer)
    src, pos = torch.randn(3, 7, C), torch.randn(3, 7, C)
    act = torch.relu if act_layer is nn.ReLU else nn.functional.gelu
    expected, weights = encoder_layer_formula(layer, src, pos, act)
    out, maps = layer.forward_with_maps(src, pos)
    assert_close(out, expected)
    assert_close(layer(src, pos), expected)
    assert maps["attention"].shape == (3, 7)
    assert_is_distribution(maps["attention"])
    assert_close(maps["attention"], weights.mean(dim=(1, 2)))
    # pos must reach q and k only: putting it into the values too gives another result.
    wrong, _ = mha(layer.self_attn, src + pos, src + pos, src + pos)
    assert not torch.allclose(wrong, mha(layer.self_attn, src + pos, src + pos, src)[0])


@pytest.mark.parametrize("pre", [False, True])
def test_decoder_layer_matches_seed_formula(pre: bool) -> None:
    layer = randomise_(TransformerDecoderLayer(C, HEADS, FF, normalize_before=pre))
    tgt, query_pos = torch.randn(2, 5, C), torch.randn(2, 5, C)
    memory, pos = torch.randn(2, 9, C), torch.randn(2, 9, C)
    expected, self_w, cross_w = decoder_layer_formula(layer, tgt, memory, pos, query_pos)
    out, maps = layer.forward_with_maps(tgt, memory, pos, query_pos)
    assert_close(out, expected)
    assert_close(layer(tgt, memory, pos, query_pos), expected)
    assert maps["self_attention"].shape == (2, 5)
    assert maps["cross_attention"].shape == (2, 9)
    assert_close(maps["self_attention"], self_w.mean(dim=(1, 2)))
    assert_close(maps["cross_attention"], cross_w.mean(dim=(1, 2)))
    for value in maps.values():
        assert_is_distribution(value)


def test_absent_positions_equal_zero_positions() -> None:
    enc = randomise_(TransformerEncoderLayer(C, HEADS, FF))
    src = torch.randn(8, 6, C)
    assert_close(enc(src), enc(src, torch.zeros_like(src)))


@pytest.mark.parametrize("pre", [False, True])
def test_encoder_stacks_layers_and_names_maps(pre: bool) -> None:
    enc = randomise_(
        TransformerEncoder(
            C, num_layers=3, num_heads=HEADS, dim_feedforward=FF, normalize_before=pre
        )
    )
    assert (enc.norm is not None) == pre
    src, pos = torch.randn(8, 5, C), torch.randn(8, 5, C)
    expected = src
    for layer in enc.layers:
        expected = layer(expected, pos)
    if pre:
        expected = enc.norm(expected)
    out, maps = enc.forward_with_maps(src, pos)
    assert_close(out, expected)
    assert (
        sorted(maps)
        == sorted(name_attention_maps(enc))
        == [f"layers.{i}.attention" for i in range(3)]
    )
    for value in maps.values():
        assert value.shape == (8, 5)
        assert_is_distribution(value)


def test_decoder_final_norm_and_intermediate_stack() -> None:
    kwargs = dict(num_layers=3, num_heads=HEADS, dim_feedforward=FF)
    dec = randomise_(TransformerDecoder(C, return_intermediate=True, **kwargs))
    plain = TransformerDecoder(C, **kwargs).eval()
    plain.load_state_dict(dec.state_dict())
    tgt, memory = torch.zeros(8, 4, C), torch.randn(8, 6, C)
    pos, query_pos = torch.randn(8, 6, C), torch.randn(8, 4, C)
    stack, maps = dec.forward_with_maps(tgt, memory, pos, query_pos)
    assert stack.shape == (3, 8, 4, C)
    expected, out = [], tgt
    for layer in dec.layers:
        out = layer(out, memory, pos, query_pos)
        expected.append(dec.norm(out))
    assert_close(stack, torch.stack(expected))
    assert_close(plain(tgt, memory, pos, query_pos), expected[-1])
    assert sorted(maps) == sorted(name_attention_maps(dec))
    assert len(maps) == 6 and "layers.2.cross_attention" in maps
    with torch.no_grad():  # the stack is (L, B, Q, C): the batch is its second axis
        alone, _ = dec.forward_with_maps(tgt[5:6], memory[5:6], pos[5:6], query_pos[5:6])
    assert_close(stack[:, 5:6].detach(), alone)


def test_enclosing_architecture_reprefixes_layer_maps() -> None:
    class Detector(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = TransformerEncoder(C, num_layers=2, num_heads=HEADS, dim_feedforward=FF)
            self.decoder = TransformerDecoder(C, num_layers=2, num_heads=HEADS, dim_feedforward=FF)

    model = Detector().eval()
    names = name_attention_maps(model)
    src, tgt = torch.randn(2, 5, C), torch.randn(2, 3, C)
    memory, enc_maps = model.encoder.forward_with_maps(src)
    _, dec_maps = torch.jit.script(model.decoder).forward_with_maps(tgt, memory)
    assert sorted(names) == sorted([*enc_maps, *dec_maps])
    assert "encoder.layers.1.attention" in enc_maps
    assert "decoder.layers.0.self_attention" in dec_maps


def test_invalid_arguments_and_inputs_raise() -> None:
    with pytest.raises(ValueError, match="multiple of num_heads"):
        TransformerEncoderLayer(10, num_heads=4)
    with pytest.raises(ValueError, match="GLU halves"):
        TransformerDecoderLayer(8, num_heads=2, act_layer=nn.GLU)
    with pytest.raises(ValueError, match=r"act_layer must be an nn\.Module class"):
        TransformerEncoder(8, num_heads=2, act_layer="gelu")  # the seed's string form
    with pytest.raises(ValueError, match="dropout"):
        TransformerEncoder(8, num_heads=2, dropout=1.0)
    with pytest.raises(ValueError, match="num_layers"):
        TransformerDecoder(8, num_layers=0, num_heads=2)
    layer = TransformerEncoderLayer(8, num_heads=2, dim_feedforward=8)
    with pytest.raises(ValueError, match="batch-first"):
        layer(torch.randn(2, 8, 3, 3))
    dec = TransformerDecoderLayer(8, num_heads=2, dim_feedforward=8)
    with pytest.raises(ValueError, match="memory"):
        dec(torch.randn(2, 3, 8), torch.randn(2, 3, 4))
