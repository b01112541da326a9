"""LlamaShape, the Megatron GPTModel wrapper and the mcore checkpoint format (CPU, tiny models)."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn.functional as F

from rhocluster.model.checkpoint import (
    is_te_layout,
    load_into_model,
    load_mcore,
    mcore_tensor_shapes,
    save_mcore,
    to_layout,
)
from rhocluster.model.megatron import (
    SDPAttention,
    SwiGLU,
    build_gpt_model,
    causal_attention_mask,
    init_distributed,
    lm_forward,
    transformer_config,
)
from rhocluster.model.shape import TINYLLAMA, LlamaShape

SEED = 1234
TINY = LlamaShape(
    vocab_size=97,
    hidden_size=64,
    ffn_hidden_size=160,
    num_layers=2,
    num_attention_heads=4,
    num_query_groups=2,
    max_position_embeddings=64,
)


@pytest.fixture(scope="module")
def device() -> torch.device:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # megatron warns about missing apex/TE on import
        return init_distributed(SEED)


@pytest.fixture(scope="module")
def model(device):
    return build_gpt_model(TINY).eval()


def test_tinyllama_parameter_count():
    from transformers import LlamaConfig, LlamaForCausalLM

    assert TINYLLAMA.num_parameters() == 1_100_048_384
    assert TINYLLAMA.head_dim == 64
    with torch.device("meta"):
        hf = LlamaForCausalLM(LlamaConfig(**TINYLLAMA.to_hf_config()))
    assert sum(p.numel() for p in hf.parameters()) == 1_100_048_384


def test_tiny_parameter_count_matches_megatron(model):
    assert sum(p.numel() for p in model.parameters()) == TINY.num_parameters()


def test_shape_dict_round_trip_and_errors():
    assert LlamaShape.from_dict(json.loads(json.dumps(TINY.to_dict()))) == TINY
    with pytest.raises(ValueError, match="bogus"):
        LlamaShape.from_dict({**TINY.to_dict(), "bogus": 1})
    incomplete = TINY.to_dict()
    del incomplete["num_query_groups"]
    with pytest.raises(ValueError, match="num_query_groups"):
        LlamaShape.from_dict(incomplete)
    with pytest.raises(ValueError, match="num_query_groups"):
        LlamaShape(97, 64, 160, 2, 4, 3, 64)


def test_hf_config_round_trip():
    from transformers import LlamaConfig

    cfg = LlamaConfig(**TINY.to_hf_config(), bos_token_id=1, eos_token_id=2).to_dict()
    assert LlamaShape.from_hf_config(cfg) == TINY
    # Pre-v5 configs (like TinyLlama's) keep rope_theta at the top level.
    legacy = {k: v for k, v in cfg.items() if k != "rope_parameters"} | {"rope_theta": 5e5}
    assert LlamaShape.from_hf_config(legacy).rope_theta == 5e5
    with pytest.raises(ValueError, match="tie_word_embeddings"):
        LlamaShape.from_hf_config(cfg | {"tie_word_embeddings": True})


def test_init_distributed_is_idempotent(device):
    assert device == torch.device("cpu")
    assert init_distributed(SEED) == device
    with pytest.raises(ValueError, match="already initialised"):
        init_distributed(SEED, tensor_parallel=2)


def test_build_is_deterministic(model):
    other = build_gpt_model(TINY)
    for (name, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), name


def test_causal_mask():
    mask = causal_attention_mask(3, "cpu")
    assert mask.shape == (1, 1, 3, 3) and mask.dtype == torch.bool
    assert mask[0, 0].tolist() == [[False, True, True], [False, False, True], [False, False, False]]


def test_loss_equals_cross_entropy_of_logits(model):
    tokens = torch.randint(0, TINY.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    labels = torch.roll(tokens, -1, dims=1)
    with torch.no_grad():
        logits = lm_forward(model, tokens)
        loss = lm_forward(model, tokens, labels)
    assert logits.shape == (2, 12, TINY.vocab_size) and logits.dtype == torch.float32
    assert loss.shape == (2, 12) and loss.dtype == torch.float32
    expected = F.cross_entropy(logits.reshape(-1, TINY.vocab_size), labels.reshape(-1), reduction="none")
    torch.testing.assert_close(loss, expected.view(2, 12), rtol=1e-5, atol=1e-5)


def test_causality(model):
    tokens = torch.randint(0, TINY.vocab_size, (1, 16), generator=torch.Generator().manual_seed(1))
    changed = tokens.clone()
    changed[0, 10] = (changed[0, 10] + 1) % TINY.vocab_size
    with torch.no_grad():
        a, b = lm_forward(model, tokens), lm_forward(model, changed)
    assert torch.equal(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_backward_reaches_every_parameter(device):
    model = build_gpt_model(TINY)
    tokens = torch.randint(0, TINY.vocab_size, (2, 8), generator=torch.Generator().manual_seed(2))
    lm_forward(model, tokens, torch.roll(tokens, -1, 1)).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_fused_local_modules_match_megatron_stock_modules(model):
    """SDPAttention + SwiGLU (+ our loss and RoPE shortcut) give Megatron's unfused results and gradients."""
    stock = build_gpt_model(TINY, sdpa=False)
    stock.load_state_dict(model.state_dict())
    layer = model.decoder.layers[0]
    assert isinstance(layer.self_attention.core_attention, SDPAttention)
    assert isinstance(layer.mlp.activation_func, SwiGLU)
    assert type(stock.decoder.layers[0].self_attention.core_attention) is not SDPAttention
    tokens = torch.randint(0, TINY.vocab_size, (3, 20), generator=torch.Generator().manual_seed(5))
    labels = torch.roll(tokens, -1, dims=1)
    results = []
    for m in (model, stock):
        m.zero_grad()
        loss = lm_forward(m, tokens, labels)
        loss.mean().backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}))
        m.zero_grad()
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert loss_a.shape == (3, 20) and loss_a.mean() > 3  # ~log(97) at init
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-5, atol=1e-5)
    for name, grad in grads_a.items():
        torch.testing.assert_close(grad, grads_b[name], rtol=1e-4, atol=1e-6, msg=name)


def test_recompute_reaches_transformer_config():
    cfg = transformer_config(TINY, recompute=True)
    assert (cfg.recompute_granularity, cfg.recompute_method, cfg.recompute_num_layers) == ("full", "uniform", 1)
    assert transformer_config(TINY).recompute_granularity is None
    bf16 = transformer_config(TINY, params_dtype=torch.bfloat16, host=False, local_modules=False)
    assert bf16.bf16 and bf16.params_dtype == torch.bfloat16 and not bf16.use_cpu_initialization


def test_recompute_without_cuda_warns(device):
    with pytest.warns(UserWarning, match="recompute"):
        build_gpt_model(TINY, recompute=True)


def test_save_load_mcore_round_trip(model, tmp_path):
    out = tmp_path / "ckpt"
    save_mcore(model.state_dict(), TINY, out)
    save_mcore(model.state_dict(), TINY, out)  # overwriting is allowed
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors", "shape.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left behind
    state_dict, shape = load_mcore(out)
    assert shape == TINY
    assert set(state_dict) == set(mcore_tensor_shapes(TINY))
    for key, value in model.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(state_dict[key], value), key
    fresh = build_gpt_model(TINY)
    with torch.no_grad():
        fresh.output_layer.weight.zero_()
    load_into_model(fresh, state_dict, shape, TINY)
    assert torch.equal(fresh.output_layer.weight, model.output_layer.weight)


def test_load_mcore_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_mcore(tmp_path)


def test_te_layout_loads_into_local_model(model):
    state_dict = {k: v for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    te = to_layout(state_dict, transformer_engine=True)
    assert is_te_layout(te) and not is_te_layout(state_dict)
    assert "decoder.layers.1.mlp.linear_fc1.layer_norm_weight" in te
    assert to_layout(te, transformer_engine=False).keys() == state_dict.keys()
    fresh = build_gpt_model(TINY)
    load_into_model(fresh, te, TINY, TINY)
    assert torch.equal(
        fresh.decoder.layers[1].pre_mlp_layernorm.weight, model.decoder.layers[1].pre_mlp_layernorm.weight
    )


def test_load_into_model_rejects_mismatches(model):
    state_dict = model.state_dict()
    bigger = LlamaShape(**{**TINY.to_dict(), "vocab_size": 98})
    with pytest.raises(ValueError, match="vocab_size 98 vs 97") as err:
        load_into_model(model, state_dict, bigger, TINY)
    assert "LlamaShape(" in str(err.value)
    bad = dict(state_dict)
    bad["decoder.layers.0.mlp.linear_fc2.weight"] = torch.zeros(64, 161)
    with pytest.raises(ValueError, match=r"decoder\.layers\.0\.mlp\.linear_fc2\.weight"):
        load_into_model(model, bad, TINY, TINY)
    missing = {k: v for k, v in state_dict.items() if k != "output_layer.weight"}
    with pytest.raises(ValueError, match="output_layer.weight"):
        load_into_model(model, missing, TINY, TINY)


class _Wrapper(torch.nn.Module):
    """Stands in for Megatron's DistributedDataParallel, which exposes the GPTModel as ``.module``."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


def test_lm_forward_through_wrapper(model):
    tokens = torch.randint(0, TINY.vocab_size, (1, 8), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(lm_forward(_Wrapper(model), tokens), lm_forward(model, tokens))
    too_long = torch.zeros(1, TINY.max_position_embeddings + 1, dtype=torch.long)
    with pytest.raises(ValueError, match="exceeds"):
        lm_forward(_Wrapper(model), too_long)
