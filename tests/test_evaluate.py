"""evaluate_model through lm-eval's hf backend on a tiny random Llama; the lm-eval task configs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rhocluster.evaluation.answers import extract_answer
from rhocluster.evaluation.benchmarks import BENCHMARKS, normalize_benchmark
from rhocluster.evaluation.grading import grade
from rhocluster.evaluation.lm_eval_tasks import SUITE_GROUP, TASKS_DIR, task_name
from rhocluster.evaluation.tiny import write_tiny_benchmarks


def _train_tokenizer(texts: list[str], out_dir: Path) -> object:
    """A byte-level BPE with <unk>=0, <s>=1, </s>=2 that prepends <s>, saved for AutoTokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    assert [wrapped.convert_tokens_to_ids(t) for t in ("<unk>", "<s>", "</s>")] == [0, 1, 2]
    wrapped.save_pretrained(out_dir)
    return wrapped


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("tiny_eval")
    write_tiny_benchmarks(root / "harness", 6, seed=0)
    normalized = root / "normalized"
    for benchmark in BENCHMARKS:
        normalize_benchmark(root / "harness", benchmark, normalized / f"{benchmark}.jsonl", limit=4)
    texts = [json.loads(line)["prompt"] for p in sorted(normalized.glob("*.jsonl")) for line in p.read_text().splitlines()]
    model_dir = root / "model"
    tokenizer = _train_tokenizer(texts, model_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=1, eos_token_id=2,
    )
    model = LlamaForCausalLM(config)
    assert 50_000 < sum(p.numel() for p in model.parameters()) < 150_000
    model.save_pretrained(model_dir)
    return {"root": root, "harness": root / "harness", "normalized": normalized, "model": model_dir}


def test_evaluate_model_writes_the_contract(tiny_setup: dict[str, Path]) -> None:
    from transformers import AutoTokenizer

    from rhocluster.evaluation.evaluate import evaluate_model

    out = tiny_setup["root"] / "out"
    normalized = tiny_setup["normalized"] / "gsm8k.jsonl"
    summary = evaluate_model(
        tiny_setup["model"], "gsm8k", normalized, out / "gsm8k.json", out / "gsm8k.predictions.jsonl",
        batch_size=4, max_gen_toks=16,
    )
    assert json.loads((out / "gsm8k.json").read_text()) == summary
    assert set(summary) == {
        "benchmark", "model", "accuracy", "n", "correct", "timeouts", "empty_predictions", "generation", "settings",
    }
    # every gsm8k prompt leaves room for 16 new tokens in the 512 positions
    assert summary["generation"] == {
        "positions": 512, "max_gen_toks": 16, "rule": summary["generation"]["rule"], "limits": {"16": 4},
        "shortened": 0, "overlong_prompts": 0,
    }
    assert summary["benchmark"] == "gsm8k" and summary["n"] == 4
    assert summary["accuracy"] == pytest.approx(100 * summary["correct"] / 4)
    settings = summary["settings"]
    assert settings["backend"] == "hf" and settings["max_gen_toks"] == 16 and settings["dtype"] == "float32"
    assert settings["do_sample"] is False and settings["stop_strings"] == ["</s>", "\n\nQuestion:", "\n\nProblem:"]
    assert settings["model_args"] == {"dtype": "float32"} and settings["batch_size"] == 4
    assert settings["grade_timeout_s"] == 3.0 and settings["lm_eval_task"] == "rho1_gsm8k"

    rows = [json.loads(line) for line in normalized.read_text().splitlines()]
    predictions = [json.loads(line) for line in (out / "gsm8k.predictions.jsonl").read_text().splitlines()]
    tokenizer = AutoTokenizer.from_pretrained(tiny_setup["model"])
    assert [p["id"] for p in predictions] == [r["id"] for r in rows]
    for prediction, row in zip(predictions, rows):
        assert set(prediction) == {
            "id", "prompt_sha256", "prompt_tokens", "max_new_tokens", "completion", "extracted_answer", "gold",
            "verdict", "timed_out",
        }
        assert prediction["prompt_sha256"] == hashlib.sha256(row["prompt"].encode()).hexdigest()
        assert prediction["prompt_tokens"] == len(tokenizer(row["prompt"])["input_ids"])
        assert prediction["max_new_tokens"] == 16
        assert prediction["gold"] == row["gold"]
        assert prediction["extracted_answer"] == extract_answer("gsm8k", prediction["completion"])
        assert prediction["verdict"] == grade("gsm8k", prediction["completion"], row["gold"])
        for stop in ("\n\nQuestion:", "\n\nProblem:"):
            assert stop not in prediction["completion"]
    assert summary["correct"] == sum(p["verdict"] for p in predictions)
    assert summary["empty_predictions"] == sum(p["extracted_answer"] == "" for p in predictions)
    assert sorted(p.name for p in out.iterdir()) == ["gsm8k.json", "gsm8k.predictions.jsonl"]


def test_evaluate_model_limit_and_errors(tiny_setup: dict[str, Path]) -> None:
    from rhocluster.evaluation.evaluate import evaluate_model

    out = tiny_setup["root"] / "out_limit"
    summary = evaluate_model(
        tiny_setup["model"], "sat_math", tiny_setup["normalized"] / "sat_math.jsonl", out / "s.json", out / "s.jsonl",
        batch_size=2, max_gen_toks=4, limit=2,
    )
    assert summary["n"] == 2 and summary["settings"]["limit"] == 2
    with pytest.raises(ValueError, match="valid names"):
        evaluate_model(tiny_setup["model"], "gsm9k", tiny_setup["normalized"] / "gsm8k.jsonl", out / "x", out / "y")
    with pytest.raises(ValueError, match="backend"):
        evaluate_model(tiny_setup["model"], "gsm8k", tiny_setup["normalized"] / "gsm8k.jsonl", out / "x", out / "y",
                       backend="tgi")
    with pytest.raises(ValueError, match="max_gen_toks"):
        evaluate_model(tiny_setup["model"], "gsm8k", tiny_setup["normalized"] / "gsm8k.jsonl", out / "x", out / "y",
                       max_gen_toks=0)


def test_item_limit_is_the_harness_rule() -> None:
    from rhocluster.evaluation.evaluate import item_limit

    # min(max_gen_toks, positions - prompt tokens), 0 when the prompt leaves no room
    cases = [(10, 1024, 2048, 1024), (1024, 1024, 2048, 1024), (1025, 1024, 2048, 1023), (1500, 1024, 2048, 548),
             (2047, 1024, 2048, 1), (2048, 1024, 2048, 0), (3000, 1024, 2048, 0), (0, 64, 128, 64)]
    for prompt_tokens, max_gen_toks, positions, expected in cases:
        assert item_limit(prompt_tokens, max_gen_toks, positions) == expected, (prompt_tokens, max_gen_toks, positions)
    with pytest.raises(ValueError, match="max_gen_toks"):
        item_limit(5, 0, 2048)


def _prompt_of_length(tokenizer: object, target: int, seed: int) -> str:
    """A "Question: ... Answer:" prompt of about ``target`` tokens (with BOS) for ``tokenizer``."""
    import random

    rng = random.Random(seed)
    words = "the sum of two numbers is what we find when the answer equals a prime root".split()
    body: list[str] = []
    while len(tokenizer(f"Question: {' '.join(body)}\nAnswer:")["input_ids"]) < target:
        body.append(rng.choice(words))
    return f"Question: {' '.join(body)}\nAnswer:"


def test_each_item_gets_its_own_new_token_limit_and_keeps_its_prompt_whole(
    tiny_setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prompts of different lengths get min(max_gen_toks, positions - own length) new tokens each, as
    recorded; what reaches the model is every prompt whole, with exactly that budget; a prompt that
    fills the context alone is not generated."""
    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer

    from rhocluster.evaluation.evaluate import evaluate_model

    tokenizer = AutoTokenizer.from_pretrained(tiny_setup["model"])
    positions, max_gen_toks = 512, 100
    prompts = [_prompt_of_length(tokenizer, target, seed) for seed, target in
               enumerate([30, 60, 420, 450, 480, 505, 530])]
    lengths = [len(tokenizer(p)["input_ids"]) for p in prompts]
    expected = [min(max_gen_toks, positions - n) if n < positions else 0 for n in lengths]
    # short prompts keep the full limit; longer ones get less, each its own; the last has no room
    assert expected[:2] == [100, 100] and 0 < expected[5] < expected[4] < expected[3] < expected[2] < 100
    assert expected[-1] == 0, expected
    data = tiny_setup["root"] / "lengths.jsonl"
    data.write_text("".join(json.dumps({"id": i, "prompt": p, "question": "q", "gold": "1"}) + "\n"
                            for i, p in enumerate(prompts)))

    calls: list[tuple[list[list[int]], int, int]] = []
    model_generate = HFLM._model_generate

    def spy(self: HFLM, context: torch.Tensor, max_length: int, stop: list[str], **kwargs: object) -> torch.Tensor:
        out = model_generate(self, context, max_length, stop, **kwargs)
        mask = kwargs["attention_mask"]
        rows = [ids[m.bool()].tolist() for ids, m in zip(context, mask)]  # left padding dropped
        calls.append((rows, max_length - context.shape[1], out.shape[1] - context.shape[1]))
        return out

    monkeypatch.setattr(HFLM, "_model_generate", spy)
    out = tiny_setup["root"] / "lengths"
    summary = evaluate_model(tiny_setup["model"], "gsm8k", data, out / "l.json", out / "l.jsonl",
                             batch_size=8, max_gen_toks=max_gen_toks)
    predictions = [json.loads(line) for line in (out / "l.jsonl").read_text().splitlines()]

    assert [p["prompt_tokens"] for p in predictions] == lengths
    assert [p["max_new_tokens"] for p in predictions] == expected
    assert predictions[-1]["completion"] == "" and predictions[-1]["verdict"] is False
    # what the model was handed: each generated prompt exactly once, whole, with its own budget
    sent = {tuple(row): (budget, decoded) for rows, budget, decoded in calls for row in rows}
    assert len(sent) == sum(len(rows) for rows, _, _ in calls) == len(prompts) - 1
    for prompt, n, limit in zip(prompts[:-1], lengths, expected):
        budget, decoded = sent[tuple(tokenizer(prompt)["input_ids"])]
        assert budget == limit and decoded <= limit
    for rows, budget, _ in calls:  # a batch never runs past the positions, padding included
        assert max(map(len, rows)) + budget <= positions
    # the two short prompts share the full limit and one batch; each shorter limit is its own batch
    assert sorted((len(rows), budget) for rows, budget, _ in calls) == sorted([(2, 100)] + [(1, e) for e in expected[2:6]])
    generation = summary["generation"]
    assert generation["positions"] == positions and generation["max_gen_toks"] == max_gen_toks
    assert generation["limits"] == {str(e): expected.count(e) for e in sorted(set(expected), reverse=True)}
    assert generation["shortened"] == 4 and generation["overlong_prompts"] == 1


def test_item_limits_on_a_vllm_style_backend() -> None:
    """The mixin over a backend that counts tokens with ``tok_encode`` (vLLM's way): each request
    gets its own limit in its generation kwargs, a prompt without room is answered "" unsent."""
    from lm_eval.api.instance import Instance

    from rhocluster.evaluation.evaluate import ItemLimits, _vllm_prompt_lengths

    class Backend:  # stands in for lm_eval's VLLM: one token per word, 10 positions
        max_length, max_gen_toks = 10, 256

        def tok_encode(self, strings: list[str]) -> list[list[int]]:
            return [list(range(len(s.split()))) for s in strings]

        def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
            self.sent = [(r.args[0], r.args[1]["max_gen_toks"]) for r in requests]
            return [f"out:{r.args[0]}" for r in requests]

    lm = type("Limited", (ItemLimits, Backend), {"_prompt_lengths": _vllm_prompt_lengths})()
    prompts = ["a b", "a b c d e f g", "a b c d e f g h i", "a b c d e f g h i j k"]
    requests = [Instance("generate_until", {}, (p, {"until": ["\n"], "max_gen_toks": 4}), i) for i, p in enumerate(prompts)]
    assert lm.generate_until(requests) == ["out:a b", "out:a b c d e f g", "out:a b c d e f g h i", ""]
    assert [r.args[1]["max_gen_toks"] for r in requests] == [4, 3, 1, 0]  # min(4, 10 - words)
    assert all(r.args[1]["until"] == ["\n"] for r in requests)
    assert lm.sent == [("a b", 4), ("a b c d e f g", 3), ("a b c d e f g h i", 1)]
    assert lm.prompt_tokens == {p: len(p.split()) for p in prompts}


def test_item_limits_backend_must_count_prompt_tokens() -> None:
    """A backend class without ``_prompt_lengths`` fails when built, not on its first request;
    both real backends supply it."""
    from rhocluster.evaluation.evaluate import ItemLimits, item_limited_class

    class Backend:
        max_length, max_gen_toks = 10, 256

    with pytest.raises(TypeError, match="_prompt_lengths"):
        type("Forgetful", (ItemLimits, Backend), {})()
    assert not item_limited_class("hf").__abstractmethods__


def test_evaluate_benchmarks_loads_the_model_once(tiny_setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Several benchmarks in one call: one model load, and the same files as one call per benchmark."""
    from lm_eval.models.huggingface import HFLM

    from rhocluster.evaluation.evaluate import benchmark_files, evaluate_benchmarks, evaluate_model

    init = HFLM.__init__
    loads: list[str] = []

    def counted(self: HFLM, *args: object, **kwargs: object) -> None:
        loads.append(str(kwargs.get("pretrained")))
        init(self, *args, **kwargs)

    monkeypatch.setattr(HFLM, "__init__", counted)
    names = ["svamp", "mathqa", "math"]
    together = tiny_setup["root"] / "together"
    files = benchmark_files(names, tiny_setup["normalized"], together)
    summaries = evaluate_benchmarks(tiny_setup["model"], files, batch_size=4, max_gen_toks=8)
    assert loads == [str(tiny_setup["model"])]
    assert [s["benchmark"] for s in summaries] == names
    assert sorted(p.name for p in together.iterdir()) == sorted(
        f"{b}{suffix}" for b in names for suffix in (".json", ".predictions.jsonl"))
    for name in names:
        alone = tiny_setup["root"] / "alone"
        evaluate_model(tiny_setup["model"], name, tiny_setup["normalized"] / f"{name}.jsonl", alone / f"{name}.json",
                       alone / f"{name}.predictions.jsonl", batch_size=4, max_gen_toks=8)
        assert (alone / f"{name}.predictions.jsonl").read_bytes() == (together / f"{name}.predictions.jsonl").read_bytes()
        assert json.loads((alone / f"{name}.json").read_text()) == json.loads((together / f"{name}.json").read_text())
    assert len(loads) == 1 + len(names)


def test_evaluate_benchmarks_checks_every_file_before_loading(tiny_setup: dict[str, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from lm_eval.models.huggingface import HFLM

    from rhocluster.evaluation.evaluate import BenchmarkFiles, evaluate_benchmarks

    def never(self: HFLM, *args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(HFLM, "__init__", never)
    bad = tmp_path / "math.jsonl"
    bad.write_text('{"id": 0, "prompt": "p"}\n')
    files = [BenchmarkFiles("gsm8k", tiny_setup["normalized"] / "gsm8k.jsonl", tmp_path / "g.json", tmp_path / "g.jsonl"),
             BenchmarkFiles("math", bad, tmp_path / "m.json", tmp_path / "m.jsonl")]
    with pytest.raises(ValueError, match=r"math.jsonl:1: malformed normalized row: missing question, gold"):
        evaluate_benchmarks(tiny_setup["model"], files)
    with pytest.raises(ValueError, match="listed twice"):
        evaluate_benchmarks(tiny_setup["model"], [files[0], files[0]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["math.jsonl"]


def test_task_configs_are_indexed() -> None:
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    for benchmark in BENCHMARKS:
        assert task_name(benchmark) in manager.all_subtasks
    assert SUITE_GROUP in manager.all_groups


def test_dataset_sources(tiny_setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from rhocluster.evaluation.lm_eval_tasks import utils

    normalized = tiny_setup["normalized"]
    monkeypatch.delenv(utils.DATA_DIR_ENV, raising=False)
    monkeypatch.delenv(utils.HARNESS_DIR_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=utils.DATA_DIR_ENV):
        utils.load_rho1_dataset("math", version=1.0)
    explicit = utils.load_rho1_dataset("math", data_files={"test": str(normalized / "math.jsonl")}, version=1.0)
    assert explicit["test"].num_rows == 4 and explicit["test"][0]["benchmark"] == "math"
    monkeypatch.setenv(utils.HARNESS_DIR_ENV, str(tiny_setup["harness"]))
    from_harness = utils.load_rho1_dataset("math")["test"]
    assert from_harness.num_rows == 6 and from_harness[0]["prompt"] == explicit["test"][0]["prompt"]
    monkeypatch.setenv(utils.DATA_DIR_ENV, str(normalized))
    assert utils.load_rho1_dataset("math", pretrained="ignored")["test"].num_rows == 4
    scores = utils.process_results({"benchmark": "math", "gold": "3"}, ["So $x = \\boxed{3}$."])
    assert scores == {"exact_match": 1.0, "timeout": 0.0, "empty_prediction": 0.0}


@pytest.mark.slow
def test_lm_eval_cli_standalone(tiny_setup: dict[str, Path], tmp_path: Path) -> None:
    env = dict(os.environ, RHO1_EVAL_DATA_DIR=str(tiny_setup["normalized"]))
    command = [
        sys.executable, "-m", "lm_eval", "--model", "hf",
        "--model_args", f"pretrained={tiny_setup['model']},dtype=float32",
        "--include_path", str(TASKS_DIR), "--tasks", SUITE_GROUP,
        "--gen_kwargs", "max_gen_toks=4", "--batch_size", "4", "--output_path", str(tmp_path),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert SUITE_GROUP in result.stdout and "rho1_math" in result.stdout
    # lm-eval's own results file: every benchmark scored on every item of its file.
    (results_file,) = tmp_path.rglob("results_*.json")
    results = json.loads(results_file.read_text())
    for benchmark in BENCHMARKS:
        task = task_name(benchmark)
        n_items = len((tiny_setup["normalized"] / f"{benchmark}.jsonl").read_text().splitlines())
        assert results["n-samples"][task]["effective"] == n_items, task
        assert 0.0 <= results["results"][task]["exact_match,none"] <= 1.0, task


# --------------------------------------------------------------------------------------
# Grading time limit inside a run
# --------------------------------------------------------------------------------------


def test_hanging_completion_times_out_and_the_run_continues(
    tiny_setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A completion whose answer makes sympy spin counts as wrong, is logged and counted; the rest is graded."""
    from lm_eval.models.huggingface import HFLM

    from rhocluster.evaluation.grading import TIMEOUT_ENV
    from rhocluster.evaluation.evaluate import evaluate_model

    normalized = tiny_setup["normalized"] / "math.jsonl"
    rows = [json.loads(line) for line in normalized.read_text().splitlines()]
    hanging_id = rows[1]["id"]
    completions = {
        row["prompt"]: "$\\boxed{10^{10^{10}}}$" if row["id"] == hanging_id else f"So $x = \\boxed{{{row['gold']}}}$."
        for row in rows
    }
    # the model's decoding is replaced; the task, grading and output writing are the real ones
    monkeypatch.setattr(HFLM, "generate_until", lambda self, requests, disable_tqdm=False: [
        completions[request.args[0]] for request in requests
    ])
    monkeypatch.setenv(TIMEOUT_ENV, "0.5")
    out = tiny_setup["root"] / "out_timeout"
    with caplog.at_level("WARNING"):
        summary = evaluate_model(tiny_setup["model"], "math", normalized, out / "math.json", out / "math.jsonl", batch_size=4)
    assert summary["n"] == 4 and summary["timeouts"] == 1 and summary["correct"] == 3
    assert summary["settings"]["grade_timeout_s"] == 0.5
    predictions = {p["id"]: p for p in map(json.loads, (out / "math.jsonl").read_text().splitlines())}
    assert predictions[hanging_id]["timed_out"] is True and predictions[hanging_id]["verdict"] is False
    assert predictions[hanging_id]["extracted_answer"] == "10^{10^{10}}"
    assert all(p["verdict"] and not p["timed_out"] for i, p in predictions.items() if i != hanging_id)
    assert "timed out after 0.5 s" in caplog.text
    assert f"hit the grading time limit and count as wrong: ids {hanging_id}" in caplog.text


def test_grade_timeout_env_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from rhocluster.evaluation.grading import DEFAULT_TIMEOUT_S, TIMEOUT_ENV, configured_timeout_s

    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert configured_timeout_s() == DEFAULT_TIMEOUT_S == 3.0
    monkeypatch.setenv(TIMEOUT_ENV, "10")
    assert configured_timeout_s() == 10.0
    for bad in ("soon", "0", "-1"):
        monkeypatch.setenv(TIMEOUT_ENV, bad)
        with pytest.raises(ValueError, match=TIMEOUT_ENV):
            configured_timeout_s()


# --------------------------------------------------------------------------------------
# Backends: model_args and clear failures (vllm is not installed here)
# --------------------------------------------------------------------------------------


def _lm_eval_vllm_init_params() -> set[str]:
    """Parameter names of lm-eval's VLLM.__init__, read from its source (importing it needs vllm)."""
    import ast
    import importlib.util

    origin = importlib.util.find_spec("lm_eval.models").submodule_search_locations[0]
    tree = ast.parse((Path(origin) / "vllm_causallms.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "VLLM":
            init = next(n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
            return {a.arg for a in init.args.args + init.args.kwonlyargs}
    raise AssertionError("lm-eval has no VLLM class")


def test_vllm_model_args() -> None:
    from rhocluster.evaluation.evaluate import VLLMSettings, model_args, vllm_model_args

    settings = VLLMSettings(tensor_parallel_size=2, dtype="bfloat16", gpu_memory_utilization=0.9, max_model_len=4096)
    args = vllm_model_args(Path("/models/rho1"), settings, seed=1234)
    assert args == {
        "pretrained": "/models/rho1", "dtype": "bfloat16", "tensor_parallel_size": 2,
        "gpu_memory_utilization": 0.9, "max_model_len": 4096, "seed": 1234,
    }
    # defaults: the checkpoint's dtype and the engine's own context length, as the harness ran vLLM
    default = model_args("vllm", Path("/m"), "cpu", None, seed=7)
    assert default == {"pretrained": "/m", "dtype": "auto", "tensor_parallel_size": 1, "gpu_memory_utilization": 0.85, "seed": 7}
    # every key is an lm-eval VLLM argument, except gpu_memory_utilization, which lm-eval forwards
    # to vllm.LLM through **kwargs
    assert set(args) - _lm_eval_vllm_init_params() == {"gpu_memory_utilization"}
    assert model_args("hf", Path("/m"), "cpu") == {"pretrained": "/m", "dtype": "float32"}
    assert model_args("hf", Path("/m"), "cuda:0") == {"pretrained": "/m", "dtype": "auto"}
    assert VLLMSettings.from_config({"tensor_parallel_size": 4, "max_model_len": None}) == VLLMSettings(4, "auto", 0.85, None)
    with pytest.raises(ValueError, match="unknown vllm setting.*swap_space"):
        VLLMSettings.from_config({"swap_space": 4})
    with pytest.raises(ValueError, match="tensor_parallel_size"):
        vllm_model_args(Path("/m"), VLLMSettings(tensor_parallel_size=0), 0)
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        vllm_model_args(Path("/m"), VLLMSettings(gpu_memory_utilization=1.5), 0)
    with pytest.raises(ValueError, match="valid: hf, vllm"):
        model_args("tgi", Path("/m"), "cpu")


def test_backend_checks_fail_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    import torch

    from rhocluster.evaluation import evaluate as run
    from rhocluster.evaluation.evaluate import VLLMSettings, check_backend

    real_find_spec = importlib.util.find_spec
    installed = {"vllm": False}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
        (object() if installed["vllm"] else None) if name == "vllm" else real_find_spec(name, *a)
    ))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="vllm package is not installed.*evaluation.backend: hf"):
        check_backend("vllm", "cpu")
    installed["vllm"] = True
    with pytest.raises(RuntimeError, match="no CUDA GPU is visible"):
        check_backend("vllm", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    check_backend("vllm", "cpu", VLLMSettings(tensor_parallel_size=1))
    with pytest.raises(RuntimeError, match="tensor_parallel_size is 2 but only 1 GPU"):
        check_backend("vllm", "cpu", VLLMSettings(tensor_parallel_size=2))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        check_backend("hf", "cuda")
    check_backend("hf", "cpu")

    # evaluate_model fails before lm-eval runs and writes nothing
    installed["vllm"] = False
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": 0, "prompt": "p", "question": "q", "gold": "1"}) + "\n")
    with pytest.raises(RuntimeError, match="vllm package is not installed"):
        run.evaluate_model(tmp_path, "gsm8k", data, tmp_path / "o.json", tmp_path / "o.jsonl", backend="vllm")
    with pytest.raises(ValueError, match="batch_size"):
        run.evaluate_model(tmp_path, "gsm8k", data, tmp_path / "o.json", tmp_path / "o.jsonl", batch_size=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl"]


def test_command_line_batch_size_and_vllm_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from rhocluster.evaluation import evaluate as run

    seen: dict[str, object] = {}

    def fake(model_dir: Path, files: list[object], **kwargs: object) -> list[dict[str, object]]:
        seen.update(kwargs, files=files)
        return [{"benchmark": f.benchmark, "accuracy": 0.0, "n": 1, "correct": 0} for f in files]

    monkeypatch.setattr(run, "evaluate_benchmarks", fake)
    run.main([str(tmp_path), "data", "out", "gsm8k", "math", "--backend", "vllm", "--batch-size", "auto",
              "--tensor-parallel-size", "2", "--max-model-len", "3072", "--seed", "5"])
    assert seen["batch_size"] == "auto" and seen["seed"] == 5 and seen["backend"] == "vllm"
    assert seen["vllm"] == run.VLLMSettings(2, "auto", 0.85, 3072)
    assert seen["files"] == [
        run.BenchmarkFiles("gsm8k", Path("data/gsm8k.jsonl"), Path("out/gsm8k.json"), Path("out/gsm8k.predictions.jsonl")),
        run.BenchmarkFiles("math", Path("data/math.jsonl"), Path("out/math.json"), Path("out/math.predictions.jsonl")),
    ]
