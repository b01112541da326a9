"""HF <-> mcore conversion on a tiny random GQA Llama (CPU)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rhocluster.model.convert import export_hf, hf_to_mcore, load_hf, main, mcore_to_hf
from rhocluster.model.mcore_format import is_te_layout, load_into_model, load_mcore
from rhocluster.model.megatron import build_gpt_model, init_distributed, lm_forward
from rhocluster.model.shape import LlamaShape

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
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def device() -> torch.device:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return init_distributed(SEED)


@pytest.fixture(scope="module")
def hf_model():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**TINY.to_hf_config(), bos_token_id=1, eos_token_id=2)).eval()
    # HF initialises norms to 1 and weights with std 0.02; perturb so that a swapped norm or a wrong
    # q/k/v interleave cannot hide behind near-constant logits.
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1 + 0.2 * torch.randn_like(p) if "norm" in name else 0.08 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(0, TINY.vocab_size, (2, 24), generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def hf_logits(hf_model, tokens) -> torch.Tensor:
    with torch.no_grad():
        return hf_model(tokens).logits.float()


@pytest.fixture(scope="module")
def hf_dir(hf_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hf")
    hf_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2} | {f"w{i}": i for i in range(3, TINY.vocab_size)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    out = tmp_path_factory.mktemp("tok")
    tok.save_pretrained(out)
    return out


def test_megatron_logits_match_hf(device, hf_model, tokens, hf_logits):
    model = build_gpt_model(TINY).eval()
    load_into_model(model, hf_to_mcore(hf_model.state_dict(), TINY), TINY, TINY)
    with torch.no_grad():
        logits = lm_forward(model, tokens)
    assert hf_logits.abs().max() > 1  # the comparison is not between near-zero numbers
    assert (logits - hf_logits).abs().max() < 1e-5


def test_round_trip_is_exact(hf_model):
    hf_sd = hf_model.state_dict()
    for te in (False, True):
        mc = hf_to_mcore(hf_sd, TINY, transformer_engine=te)
        assert is_te_layout(mc) == te
        back = mcore_to_hf(mc, TINY)
        assert back.keys() == hf_sd.keys()
        for key, value in hf_sd.items():
            assert torch.equal(back[key], value), key


def test_qkv_interleave_layout(hf_model):
    """Rows of linear_qkv are [q heads of group g, k_g, v_g] for each KV group g."""
    hf_sd = hf_model.state_dict()
    qkv = hf_to_mcore(hf_sd, TINY)["decoder.layers.0.self_attention.linear_qkv.weight"]
    hd = TINY.head_dim
    q, k, v = (hf_sd[f"model.layers.0.self_attn.{n}_proj.weight"] for n in "qkv")
    group1 = qkv[4 * hd : 8 * hd]  # group 0 has 2 q heads + k + v = 4 head blocks
    assert torch.equal(group1[: 2 * hd], q[2 * hd : 4 * hd])
    assert torch.equal(group1[2 * hd : 3 * hd], k[hd : 2 * hd])
    assert torch.equal(group1[3 * hd :], v[hd : 2 * hd])


def test_conversion_rejects_wrong_shape(hf_model):
    other = LlamaShape(**{**TINY.to_dict(), "ffn_hidden_size": 128})
    with pytest.raises(ValueError, match="gate_proj"):
        hf_to_mcore(hf_model.state_dict(), other)


def test_export_hf_loads_with_transformers(hf_model, hf_logits, tokens, tokenizer_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "export"
    export_hf(hf_to_mcore(hf_model.state_dict(), TINY), TINY, out, tokenizer_dir)
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json"} <= {
        p.name for p in out.iterdir()
    }
    reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    assert reloaded.config.bos_token_id == 1 and reloaded.config.eos_token_id == 2
    with torch.no_grad():
        assert torch.equal(reloaded(tokens).logits, hf_logits)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok("w5 w7")["input_ids"] == [5, 7]


def test_export_hf_bfloat16(hf_model, tmp_path):
    out = tmp_path / "bf16"
    export_hf(hf_to_mcore(hf_model.state_dict(), TINY), TINY, out, torch_dtype="bfloat16", eos_token_id=5)
    weights = load_file(out / "model.safetensors")
    assert weights["lm_head.weight"].dtype == torch.bfloat16
    assert '"eos_token_id": 5' in (out / "config.json").read_text()


def test_load_hf_formats(hf_model, hf_dir, tmp_path):
    expected = hf_model.state_dict()

    def check(src: Path) -> None:
        sd, shape = load_hf(src)
        assert shape == TINY
        assert sd.keys() == expected.keys()
        assert all(torch.equal(sd[k], v) for k, v in expected.items())

    check(hf_dir)
    sharded = tmp_path / "sharded"
    hf_model.save_pretrained(sharded, max_shard_size="40KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    check(sharded)
    binary = tmp_path / "bin"
    binary.mkdir()
    (binary / "config.json").write_text((hf_dir / "config.json").read_text())
    torch.save(expected, binary / "pytorch_model.bin")
    check(binary)
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_hf(tmp_path / "nowhere")


def test_cli_round_trip(hf_model, hf_dir, tokenizer_dir, tmp_path, capsys):
    mc_dir, out_dir = tmp_path / "mcore", tmp_path / "hf_out"
    proc = subprocess.run(
        [sys.executable, "-m", "rhocluster.model.convert", "hf-to-mcore", str(hf_dir), str(mc_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    _, shape = load_mcore(mc_dir)
    assert shape == TINY
    assert main(["mcore-to-hf", str(mc_dir), str(out_dir), "--tokenizer", str(tokenizer_dir)]) == 0
    exported = load_file(out_dir / "model.safetensors")
    for key, value in hf_model.state_dict().items():
        assert torch.equal(exported[key], value), key
    assert (out_dir / "tokenizer_config.json").is_file()

    assert main(["mcore-to-hf", str(tmp_path / "missing"), str(tmp_path / "x")]) == 1
    assert "missing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["hf-to-mcore"])
