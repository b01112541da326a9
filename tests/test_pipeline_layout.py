"""Full checkpoints <-> the parts held by pipeline stages (layer slices under local names)."""

from __future__ import annotations

import pytest
import torch

from rhocluster.model.mcore_format import mcore_tensor_shapes
from rhocluster.model.pipeline_layout import (
    check_pipeline_parallel,
    stage_layers,
    stage_state_dict,
    to_global_names,
)
from rhocluster.model.shape import LlamaShape

SHAPE = LlamaShape(
    vocab_size=64,
    hidden_size=32,
    ffn_hidden_size=64,
    num_layers=6,
    num_attention_heads=4,
    num_query_groups=2,
    max_position_embeddings=32,
)


def full_state() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {k: torch.randn(shape, generator=gen) for k, shape in mcore_tensor_shapes(SHAPE).items()}


@pytest.mark.parametrize("stages", [1, 2, 3, 6])
def test_stages_partition_the_model_and_join_back_exactly(stages):
    full = full_state()
    joined: dict[str, torch.Tensor] = {}
    for stage in range(stages):
        part = stage_state_dict(full, SHAPE.num_layers, stage, stages)
        layers = {int(k.split(".")[2]) for k in part if k.startswith("decoder.layers.")}
        assert layers == set(range(SHAPE.num_layers // stages))  # local numbering from 0 on every stage
        assert ("embedding.word_embeddings.weight" in part) == (stage == 0)
        assert ("output_layer.weight" in part) == ("decoder.final_layernorm.weight" in part) == (stage == stages - 1)
        back = to_global_names(part, SHAPE.num_layers, stage, stages)
        assert not joined.keys() & back.keys()  # no tensor on two stages
        joined.update(back)
    assert joined.keys() == full.keys()
    for key, value in full.items():
        assert joined[key] is value


def test_stage_takes_its_own_layers():
    full = full_state()
    part = stage_state_dict(full, SHAPE.num_layers, 1, 3)  # global layers 2 and 3
    assert stage_layers(SHAPE.num_layers, 1, 3) == range(2, 4)
    assert part["decoder.layers.0.mlp.linear_fc1.weight"] is full["decoder.layers.2.mlp.linear_fc1.weight"]
    assert part["decoder.layers.1.input_layernorm.weight"] is full["decoder.layers.3.input_layernorm.weight"]


def test_bad_layouts_are_refused_naming_the_problem():
    with pytest.raises(ValueError, match="pipeline_parallel=4 does not divide num_layers=6"):
        check_pipeline_parallel(SHAPE, 4)
    with pytest.raises(ValueError, match="pipeline_parallel=0 must be >= 1"):
        check_pipeline_parallel(SHAPE, 0)
    with pytest.raises(ValueError, match="pipeline stage 3 outside 0..2"):
        stage_layers(6, 3, 3)
    with pytest.raises(ValueError, match="stage 0 holds 2 layers"):
        to_global_names({"decoder.layers.2.input_layernorm.weight": torch.ones(1)}, 6, 0, 3)
