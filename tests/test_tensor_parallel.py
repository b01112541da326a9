"""Full state dicts <-> tensor-parallel shards (rhocluster.model.tensor_parallel)."""

from __future__ import annotations

import pytest
import torch

from rhocluster.model.mcore_format import mcore_tensor_shapes
from rhocluster.model.shape import TINYLLAMA, LlamaShape
from rhocluster.model.tensor_parallel import (
    check_tensor_parallel,
    merge_shards,
    shard_state_dict,
    split_rule,
)

SHAPE = LlamaShape(
    vocab_size=64,
    hidden_size=32,
    ffn_hidden_size=48,
    num_layers=2,
    num_attention_heads=4,
    num_query_groups=2,
    max_position_embeddings=32,
)


def full_state(transformer_engine: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        k: torch.randn(s, generator=g) for k, s in mcore_tensor_shapes(SHAPE, transformer_engine=transformer_engine).items()
    }


@pytest.mark.parametrize("size", [1, 2])
@pytest.mark.parametrize("transformer_engine", [False, True])
def test_shards_merge_back_exactly(size, transformer_engine):
    full = full_state(transformer_engine)
    shards = [shard_state_dict(full, r, size) for r in range(size)]
    for key, tensor in full.items():
        assert torch.equal(merge_shards(key, [s[key] for s in shards]), tensor), key


def test_shards_follow_megatron_parallel_layers():
    full = full_state()
    r0, r1 = (shard_state_dict(full, r, 2) for r in range(2))
    h, ffn, dim = SHAPE.hidden_size, SHAPE.ffn_hidden_size, SHAPE.head_dim
    p = "decoder.layers.1."
    # Column-parallel / vocab-parallel: rows; linear_qkv rows come in whole query groups.
    assert torch.equal(r1["embedding.word_embeddings.weight"], full["embedding.word_embeddings.weight"][32:])
    assert torch.equal(r1["output_layer.weight"], full["output_layer.weight"][32:])
    group_rows = (SHAPE.num_attention_heads // SHAPE.num_query_groups + 2) * dim
    assert torch.equal(r1[p + "self_attention.linear_qkv.weight"], full[p + "self_attention.linear_qkv.weight"][group_rows:])
    # Row-parallel: columns.
    assert torch.equal(r0[p + "self_attention.linear_proj.weight"], full[p + "self_attention.linear_proj.weight"][:, : h // 2])
    assert torch.equal(r1[p + "mlp.linear_fc2.weight"], full[p + "mlp.linear_fc2.weight"][:, ffn // 2 :])
    # Gated fc1 = [gate; up]: each rank holds [gate_r; up_r].
    fc1 = full[p + "mlp.linear_fc1.weight"]
    expected = torch.cat([fc1[ffn // 2 : ffn], fc1[ffn + ffn // 2 :]])
    assert torch.equal(r1[p + "mlp.linear_fc1.weight"], expected)
    # Norms are replicated.
    assert torch.equal(r1[p + "input_layernorm.weight"], full[p + "input_layernorm.weight"])
    assert torch.equal(r0["decoder.final_layernorm.weight"], r1["decoder.final_layernorm.weight"])
    for key in full:
        assert r0[key].is_contiguous() and r1[key].is_contiguous()


def test_split_rules_and_bad_input():
    assert split_rule("decoder.layers.0.self_attention.linear_qkv.layer_norm_weight") is None
    assert split_rule("decoder.layers.3.mlp.linear_fc1.weight") == "gated"
    with pytest.raises(KeyError, match="no tensor-parallel rule for 'decoder.layers.0.mlp.router.weight'"):
        split_rule("decoder.layers.0.mlp.router.weight")
    with pytest.raises(ValueError, match="rank 2 outside 0..1"):
        shard_state_dict(full_state(), 2, 2)
    with pytest.raises(ValueError, match="output_layer.weight of shape \\(5, 3\\): dim 0 does not split into 2"):
        shard_state_dict({"output_layer.weight": torch.zeros(5, 3)}, 0, 2)


def test_check_tensor_parallel_names_every_dimension():
    check_tensor_parallel(SHAPE, 2)
    with pytest.raises(ValueError, match=r"tensor_parallel=4 does not divide num_query_groups=2$"):
        check_tensor_parallel(SHAPE, 4)
    with pytest.raises(ValueError, match="does not divide vocab_size=64, num_attention_heads=4, num_query_groups=2, ffn"):
        check_tensor_parallel(SHAPE, 5)
    check_tensor_parallel(TINYLLAMA, 4)  # TinyLlama's 4 query groups allow up to 4 ranks
    with pytest.raises(ValueError, match=r"does not divide num_query_groups=4$"):
        check_tensor_parallel(TINYLLAMA, 8)
