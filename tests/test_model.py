"""LlamaShape, the Megatron GPTModel wrapper and the mcore checkpoint format (CPU, tiny models)."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn.functional as F
from megatron.core.transformer.attention import SelfAttention
from megatron.core.transformer.dot_product_attention import DotProductAttention
from megatron.core.transformer.mlp import MLP

from rhocluster.model.mcore_format import (
    is_te_layout,
    load_into_model,
    load_mcore,
    mcore_tensor_shapes,
    save_mcore,
    to_layout,
)
from rhocluster.model.megatron import (
    HostMLP,
    HostRMSNorm,
    HostSelfAttention,
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
    """The host modules (SDPAttention, SwiGLU, HostSelfAttention, HostMLP, HostRMSNorm, the fused LM
    head + loss and the RoPE shortcut) give Megatron's unfused results and gradients end to end."""
    stock = build_gpt_model(TINY, sdpa=False)
    stock.load_state_dict(model.state_dict())
    layer = model.decoder.layers[0]
    assert isinstance(layer.self_attention.core_attention, SDPAttention)
    assert isinstance(layer.mlp.activation_func, SwiGLU)
    assert type(stock.decoder.layers[0].self_attention.core_attention) is not SDPAttention
    host_types = (HostSelfAttention, HostMLP, HostRMSNorm)
    assert not any(isinstance(m, host_types) for m in stock.modules())
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


# --- host modules, one by one against the stock Megatron module (fp32, tolerance 1e-6) ----------------

EXACT = dict(rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def pair(device):
    """(model with the host modules, stock Megatron model) holding the same weights, in training mode."""
    ours = build_gpt_model(TINY)
    stock = build_gpt_model(TINY, sdpa=False)
    stock.load_state_dict(ours.state_dict())
    # Non-trivial norm weights, so that their gradients and scaling are exercised too.
    with torch.no_grad():
        for a, b in zip(ours.parameters(), stock.parameters()):
            if a.ndim == 1:
                a.copy_(torch.linspace(0.5, 1.5, a.numel()))
                b.copy_(a)
    return ours, stock


def _outputs_and_grads(fn, inputs: list[torch.Tensor], params: list[torch.Tensor], seed: int):
    """fn(*inputs) (first element if it returns a tuple), and the gradients of a random projection of
    it with respect to ``inputs`` and ``params``."""
    out = fn(*inputs)
    out = out[0] if isinstance(out, tuple) else out
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    grads = torch.autograd.grad(out, inputs + params, upstream)
    return out.detach(), grads


def _assert_same(ours, stock, names):
    (out_a, grads_a), (out_b, grads_b) = ours, stock
    torch.testing.assert_close(out_a, out_b, **EXACT)
    for name, a, b in zip(names, grads_a, grads_b):
        torch.testing.assert_close(a, b, **EXACT, msg=lambda m: f"{name}: {m}")


def _hidden(seed: int, s: int = 12, b: int = 3) -> torch.Tensor:
    return torch.randn(s, b, TINY.hidden_size, generator=torch.Generator().manual_seed(seed)).requires_grad_()


def test_host_modules_replace_only_the_local_cpu_modules(pair):
    ours, stock = pair
    for layer in ours.decoder.layers:
        assert type(layer.self_attention) is HostSelfAttention and layer.self_attention._host_path
        assert type(layer.mlp) is HostMLP and layer.mlp._host_path
        assert type(layer.input_layernorm) is HostRMSNorm and type(layer.pre_mlp_layernorm) is HostRMSNorm
    assert type(ours.decoder.final_layernorm) is HostRMSNorm and ours._host_loss
    assert not stock._host_loss
    # Same parameters (the host modules only change the computation) and the same state dict.
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in stock.named_parameters()]
    assert list(ours.state_dict()) == list(stock.state_dict())


def test_host_rmsnorm_matches_torch_rmsnorm(pair):
    ours, stock = pair
    for a, b in ((ours.decoder.layers[0].input_layernorm, stock.decoder.layers[0].input_layernorm),
                 (ours.decoder.final_layernorm, stock.decoder.final_layernorm)):
        assert type(b) is torch.nn.RMSNorm  # what Megatron's local spec builds without apex
        x = _hidden(10)
        _assert_same(
            _outputs_and_grads(a, [x], [a.weight], seed=11),
            _outputs_and_grads(b, [x], [b.weight], seed=11),
            ["input", "weight"],
        )


def test_host_rmsnorm_defers_to_torch_for_other_dtypes(pair):
    norm = pair[0].decoder.final_layernorm
    x = torch.randn(4, 2, TINY.hidden_size, dtype=torch.float64)
    expected = torch.nn.functional.rms_norm(x, (TINY.hidden_size,), norm.weight.double(), norm.eps)
    torch.testing.assert_close(torch.nn.RMSNorm.forward(norm, x), norm(x))
    torch.testing.assert_close(norm.double()(x), expected)
    norm.float()


def test_host_mlp_matches_megatron_mlp(pair):
    ours, stock = pair
    a, b = ours.decoder.layers[1].mlp, stock.decoder.layers[1].mlp
    assert type(b) is MLP
    x = _hidden(20)
    _assert_same(
        _outputs_and_grads(a, [x], [a.linear_fc1.weight, a.linear_fc2.weight], seed=21),
        _outputs_and_grads(b, [x], [b.linear_fc1.weight, b.linear_fc2.weight], seed=21),
        ["input", "linear_fc1.weight", "linear_fc2.weight"],
    )


def test_host_modules_defer_to_megatron_outside_float32(device, monkeypatch):
    import rhocluster.model.kernels as kernels

    for name in ("SwiGLUMLPFunction", "QKVRopeFunction", "RMSNormFunction"):
        monkeypatch.setattr(getattr(kernels, name), "apply", None)  # calling it would raise
    ours, stock = build_gpt_model(TINY), build_gpt_model(TINY, sdpa=False)
    stock.load_state_dict(ours.state_dict())
    x = _hidden(70).detach().double()
    s = x.shape[0]
    mask = causal_attention_mask(s, "cpu")
    a, b = (m.decoder.layers[0].double() for m in (ours, stock))
    torch.testing.assert_close(a.mlp(x)[0], b.mlp(x)[0])
    torch.testing.assert_close(a.pre_mlp_layernorm(x), b.pre_mlp_layernorm(x))
    rope = _rope(ours, s).double()
    torch.testing.assert_close(a.self_attention(x, None, rotary_pos_emb=rope)[0],
                               b.self_attention(x, mask, rotary_pos_emb=rope)[0])


def _rope(model, s: int):
    return model.rotary_pos_emb(s)


def test_host_self_attention_matches_megatron_self_attention(pair):
    """Projection, QKV split, RoPE and causal attention against Megatron's SelfAttention with its own
    unfused DotProductAttention and an explicit causal mask."""
    ours, stock = pair
    a, b = ours.decoder.layers[1].self_attention, stock.decoder.layers[1].self_attention
    assert type(b) is SelfAttention and type(b.core_attention) is DotProductAttention
    x = _hidden(30)
    s = x.shape[0]
    mask = causal_attention_mask(s, "cpu")
    params_a = [a.linear_qkv.weight, a.linear_proj.weight]
    params_b = [b.linear_qkv.weight, b.linear_proj.weight]
    names = ["input", "linear_qkv.weight", "linear_proj.weight"]
    want = _outputs_and_grads(lambda h: b(h, mask, rotary_pos_emb=_rope(stock, s)), [x], params_b, seed=31)
    got = _outputs_and_grads(lambda h: a(h, None, rotary_pos_emb=_rope(ours, s)), [x], params_a, seed=31)
    _assert_same(got, want, names)
    # With an explicit mask it is Megatron's forward (SDPAttention then defers to DotProductAttention).
    masked = _outputs_and_grads(lambda h: a(h, mask, rotary_pos_emb=_rope(ours, s)), [x], params_a, seed=31)
    _assert_same(masked, want, names)


def test_qkv_rope_gradient_layout(pair):
    """The split + RoPE of the fused projection has Megatron's shapes and its exact gradient."""
    from rhocluster.model.kernels import QKVRopeFunction

    groups, q_per_group = TINY.num_query_groups, TINY.num_attention_heads // TINY.num_query_groups
    dim = TINY.head_dim
    mixed = torch.randn(7, 2, groups, (q_per_group + 2) * dim, dtype=torch.float64, requires_grad=True)
    freqs = _rope(pair[0], 7).double()
    q, k, v = QKVRopeFunction.apply(mixed, torch.cos(freqs), torch.sin(freqs), q_per_group)
    assert q.shape == (7, 2, TINY.num_attention_heads, dim) and k.shape == v.shape == (7, 2, groups, dim)
    torch.autograd.gradcheck(
        lambda m: QKVRopeFunction.apply(m, torch.cos(freqs), torch.sin(freqs), q_per_group), (mixed,)
    )


def test_rope_shortcut_matches_megatron_rope():
    from megatron.core.models.common.embeddings import rope_utils

    patched = rope_utils._apply_rotary_pos_emb_bshd
    t = torch.randn(9, 2, 4, TINY.head_dim, generator=torch.Generator().manual_seed(40), requires_grad=True)
    freqs = torch.randn(9, 1, 1, TINY.head_dim, generator=torch.Generator().manual_seed(41))
    _assert_same(
        _outputs_and_grads(lambda u: patched(u, freqs), [t], [], seed=42),
        _outputs_and_grads(lambda u: patched.megatron_original(u, freqs), [t], [], seed=42),
        ["input"],
    )


def _postprocess(model, hidden, labels):
    """GPTModel._postprocess as GPTModel.forward calls it after the decoder (keywords, no MTP)."""
    return model._postprocess(
        hidden_states=hidden, input_ids=None, position_ids=None, labels=labels, rotary_pos_emb=None,
        rotary_pos_cos=None, rotary_pos_sin=None, mtp_in_postprocess=None, inference_context=None,
    )


def test_fused_lm_head_loss_matches_megatron_output_layer_and_cross_entropy(pair):
    """Our output layer + per-token loss against Megatron's ColumnParallelLinear and its vocab-parallel
    cross-entropy (GPTModel.compute_language_model_loss)."""
    from megatron.core.models.gpt import GPTModel

    ours, stock = pair
    x = _hidden(50)
    s, b = x.shape[:2]
    labels = torch.randint(0, TINY.vocab_size, (b, s), generator=torch.Generator().manual_seed(51))

    def megatron(h):
        logits, _ = stock.output_layer(h)
        return GPTModel.compute_language_model_loss(stock, labels, logits)

    got = _outputs_and_grads(lambda h: _postprocess(ours, h, labels), [x], [ours.output_layer.weight], seed=52)
    want = _outputs_and_grads(megatron, [x], [stock.output_layer.weight], seed=52)
    assert got[0].shape == (b, s)
    _assert_same(got, want, ["hidden", "output_layer.weight"])
    # Without labels it is Megatron's path: [b, s, vocab] logits.
    with torch.no_grad():
        logits = _postprocess(ours, x, None)
    torch.testing.assert_close(logits, stock.output_layer(x)[0].transpose(0, 1), **EXACT)


def test_fused_lm_head_loss_refuses_a_second_backward(pair):
    ours = pair[0]
    x = _hidden(60, s=4, b=2)
    labels = torch.zeros(2, 4, dtype=torch.long)
    loss = _postprocess(ours, x, labels).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward"):
        loss.backward()
    ours.zero_grad()
