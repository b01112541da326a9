"""Full (all-layer) GPTModel state dicts <-> the parts held by Megatron pipeline stages.

With ``pipeline_parallel = P`` Megatron's ``GPTModel`` on stage ``p`` builds ``num_layers / P``
transformer layers (global layers ``p * L/P ...``, numbered ``decoder.layers.0 ...`` in its state
dict), the embedding only on the first stage and the final norm and output layer only on the last
(untied embeddings, as Llama has). Our checkpoints hold every tensor under its global name, so a stage
takes its slice on load and the stages' slices are renamed back and joined on save.
"""

from __future__ import annotations

from collections.abc import Mapping

from rhocluster.model.shape import LlamaShape

_LAYER_PREFIX = "decoder.layers."


def check_pipeline_parallel(shape: LlamaShape, size: int) -> None:
    """Raise ValueError unless ``size`` stages split ``shape``'s layers evenly."""
    if size < 1:
        raise ValueError(f"pipeline_parallel={size} must be >= 1")
    if shape.num_layers % size:
        raise ValueError(f"pipeline_parallel={size} does not divide num_layers={shape.num_layers}")


def stage_layers(num_layers: int, stage: int, stages: int) -> range:
    """The global indices of the transformer layers on ``stage`` (of ``stages``)."""
    if not 0 <= stage < stages:
        raise ValueError(f"pipeline stage {stage} outside 0..{stages - 1}")
    per = num_layers // stages
    return range(stage * per, (stage + 1) * per)


def _layer_of(key: str) -> tuple[int, str] | None:
    if not key.startswith(_LAYER_PREFIX):
        return None
    index, rest = key[len(_LAYER_PREFIX) :].split(".", 1)
    return int(index), rest


def _on_stage(key: str, stage: int, stages: int) -> bool:
    if key.startswith("embedding."):
        return stage == 0
    if key.startswith("output_layer.") or key.startswith("decoder.final_layernorm."):
        return stage == stages - 1
    return True


def stage_state_dict(full: Mapping, num_layers: int, stage: int, stages: int) -> dict:
    """The tensors of ``full`` (global names) that ``stage`` holds, under the stage's local names."""
    layers = stage_layers(num_layers, stage, stages)
    out = {}
    for key, value in full.items():
        if not _on_stage(key, stage, stages):
            continue
        layer = _layer_of(key)
        if layer is None:
            out[key] = value
        elif layer[0] in layers:
            out[f"{_LAYER_PREFIX}{layer[0] - layers.start}.{layer[1]}"] = value
    return out


def to_global_names(local: Mapping, num_layers: int, stage: int, stages: int) -> dict:
    """Inverse of :func:`stage_state_dict` for one stage: local layer indices renumbered to global ones."""
    layers = stage_layers(num_layers, stage, stages)
    out = {}
    for key, value in local.items():
        layer = _layer_of(key)
        if layer is not None:
            if layer[0] >= len(layers):
                raise ValueError(f"stage {stage} holds {len(layers)} layers; got {key!r}")
            key = f"{_LAYER_PREFIX}{layers.start + layer[0]}.{layer[1]}"
        out[key] = value
    return out
