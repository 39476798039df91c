"""eval: the native lm-eval adapter against lm-eval's own HF backend, offline local data in the
seven TinyLlama tasks' hub schemas, task aliases, the missing-data error, the checkpoint series.

Everything runs on a tiny random Llama with a tokenizer trained here, saved as a native run dir
(DCP checkpoints + state.json + tokenizer.model) exactly as pretrain writes it.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed.checkpoint as dcp

from tinyllama_cli.config import ModelConfig, dump_yaml
from tinyllama_cli.errors import UserError
from tinyllama_cli.model import Llama
from tinyllama_cli.tokenizer import train_tokenizer

WORDS = [
    "the", "a", "man", "woman", "dog", "cat", "cooks", "cuts", "onions", "flies", "away",
    "sings", "song", "runs", "fast", "question", "answer", "science", "water", "sun", "moon",
    "is", "are", "was", "what", "which", "because", "rain", "cloud", "plant", "grows", "light",
    "heat", "yes", "no", "true", "false", "ball", "kicks", "reads", "book", "opens", "door",
    "cold", "warm", "river", "stone", "tree",
]


def sentence(rng: random.Random, n: int = 6) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def task_rows(rng: random.Random, n: int = 3) -> dict[str, list[dict]]:
    """A few rows of each task in its hub dataset's own schema."""
    labels = ["A", "B", "C", "D"]
    def mc(stem_key: str, i: int) -> dict:
        return {"id": f"q{i}", stem_key: sentence(rng) + "?",
                "choices": {"text": [sentence(rng, 2) for _ in labels], "label": labels},
                "answerKey": labels[i % 4]}
    return {
        "hellaswag": [{"ind": i, "activity_label": "Cooking", "ctx_a": sentence(rng) + ".", "ctx_b": "the man",
                       "ctx": "", "endings": [sentence(rng, 3) + "." for _ in range(4)], "source_id": "s",
                       "split": "val", "split_type": "indomain", "label": str(i % 4)} for i in range(n)],
        "arc_easy": [mc("question", i) for i in range(n)],
        "arc_challenge": [mc("question", i) for i in range(n)],
        "openbookqa": [mc("question_stem", i) for i in range(n)],
        "piqa": [{"goal": sentence(rng), "sol1": sentence(rng, 4), "sol2": sentence(rng, 4), "label": i % 2} for i in range(n)],
        "boolq": [{"question": sentence(rng), "passage": sentence(rng, 12) + ".", "idx": i, "label": i % 2} for i in range(n)],
        "winogrande": [{"sentence": f"the {rng.choice(WORDS)} _ {sentence(rng, 3)}.", "option1": rng.choice(WORDS),
                        "option2": rng.choice(WORDS), "answer": str(1 + i % 2)} for i in range(n)],
    }


def write_checkpoint(run_dir, model, step, tokens_seen):
    path = run_dir / "checkpoints" / f"step-{step:08d}"
    path.mkdir(parents=True)
    dcp.save({"model": model.state_dict()}, checkpoint_id=str(path))
    (path / "state.json").write_text(json.dumps({"step": step, "tokens_seen": tokens_seen, "samples_seen": step,
                                                 "model_config": model.config.to_dict()}))


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    """A run dir with two checkpoints and local data files for all seven tasks."""
    root = tmp_path_factory.mktemp("eval")
    rng = random.Random(0)
    tokenizer = train_tokenizer([sentence(rng, 12) + rng.choice([".", "?", "\n"]) for _ in range(3000)],
                                320, root / "tok.model")
    config = ModelConfig(name="eval-tiny", vocab_size=tokenizer.vocab_size, n_layer=2, n_embd=48, n_head=4,
                         n_kv_head=2, intermediate_size=96, block_size=128)
    run = root / "run"
    run.mkdir()
    dump_yaml({"model": config.to_dict()}, run / "config.yaml")
    (run / "tokenizer.model").write_bytes(tokenizer.path.read_bytes())
    for step, seed in ((10, 1), (20, 2)):
        torch.manual_seed(seed)
        write_checkpoint(run, Llama(config), step, step * 4096)
    data = root / "data"
    data.mkdir()
    files = {}
    for task, rows in task_rows(random.Random(1)).items():
        if task == "piqa":  # one task as parquet
            import pyarrow as pa
            import pyarrow.parquet as pq

            files[task] = data / f"{task}.parquet"
            pq.write_table(pa.Table.from_pylist(rows), files[task])
        else:
            files[task] = data / f"{task}.jsonl"
            files[task].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"root": root, "run": run, "files": files, "tokenizer": tokenizer, "config": config}


def dataset_args(env, tasks):
    return [f"{t}={env['files'][t]}" for t in tasks]


def per_sample(result):
    """{task: [(doc_id, [loglikelihood per choice])]} from lm-eval's logged samples."""
    out = {}
    for task, samples in result.results["samples"].items():
        out[task] = sorted((s["doc_id"], [float(r[0][0]) for r in s["resps"]]) for s in samples)
    return out


SEVEN = ["hellaswag", "openbookqa", "winogrande", "arc_challenge", "arc_easy", "boolq", "piqa"]


@pytest.fixture(scope="session")
def both_backends(env):
    from tinyllama_cli.evaluate import evaluate

    # bootstrap_iters stays lm-eval's default: acc/acc_norm's standard error is closed-form (no
    # bootstrap runs), and with 0 lm-eval would write "N/A".
    kwargs = {"datasets": dataset_args(env, SEVEN), "log_samples": True, "batch_size": 4}
    native = evaluate(env["run"], "tinyllama", backend="native", **kwargs)
    hf = evaluate(env["run"], "tinyllama", backend="hf", **kwargs)
    return native, hf


def test_native_matches_hf_backend_on_all_seven_schemas(both_backends):
    native, hf = both_backends
    a, b = per_sample(native), per_sample(hf)
    assert sorted(a) == sorted(SEVEN)
    for task in SEVEN:
        assert [d for d, _ in a[task]] == [0, 1, 2], task  # every local row was scored
        for (_, lls_a), (_, lls_b) in zip(a[task], b[task]):
            assert len(lls_a) == len(lls_b) >= 2
            for x, y in zip(lls_a, lls_b):
                assert math.isfinite(x) and x < 0
                assert x == pytest.approx(y, abs=2e-4), task
        for metric in ("acc", "acc_norm"):
            key = f"{metric},none"
            if key in hf.results["results"][task]:
                assert native.results["results"][task][key] == hf.results["results"][task][key], (task, metric)


def test_table_scores_use_tinyllamas_metric_per_task(both_backends):
    native, _ = both_backends
    assert {t: m for t, (m, _) in native.scores.items()} == {
        "hellaswag": "acc_norm", "openbookqa": "acc_norm", "winogrande": "acc", "arc_challenge": "acc_norm",
        "arc_easy": "acc_norm", "boolq": "acc", "piqa": "acc_norm"}
    assert native.average == pytest.approx(sum(v for _, v in native.scores.values()) / 7)
    assert native.step == 20 and native.tokens_seen == 20 * 4096  # the run dir's newest checkpoint


def test_stderr_and_chance_of_the_seven_tasks(both_backends):
    """lm-eval's standard error of the mean of n = 3 per-document 0/1 scores, sqrt(p(1-p)/(n-1)),
    for every task; chance = 1/choices (4 for hellaswag, arc and obqa here, 2 for the others)."""
    native, hf = both_backends
    for task, (_, p) in native.scores.items():
        assert native.stderr[task] == pytest.approx(math.sqrt(p * (1 - p) / 2)), task
        assert hf.stderr[task] == pytest.approx(native.stderr[task])
    assert any(se > 0 for se in native.stderr.values())
    four = {"hellaswag", "openbookqa", "arc_challenge", "arc_easy"}
    assert native.chance == {t: pytest.approx(0.25 if t in four else 0.5) for t in SEVEN}
    assert native.reference_average(native.chance) == pytest.approx((4 * 0.25 + 3 * 0.5) / 7)
    assert native.baseline.note and not native.baseline.scores  # the fixture run names no data


def test_loglikelihood_is_the_sum_of_token_logprobs(env):
    """The adapter's numbers against a direct forward pass, including batching with padding."""
    from tinyllama_cli.eval_lm import NativeLM
    from tinyllama_cli.load import load_model

    loaded = load_model(env["run"])
    lm = NativeLM(loaded.model, loaded.tokenizer, batch_size=3)
    tok = env["tokenizer"]
    reqs = []
    long_ctx = sentence(random.Random(5), 80)  # longer than the 128-token context: left-truncated
    for ctx, cont in (("the man cooks", " onions"), ("a dog", " runs fast away"), ("rain", " is"),
                      ("the man cooks", " onions"), ("the sun is warm and", " light"), ("the man cooks", " a song"),
                      ("rain", " is cold"), (long_ctx, " the end"), ("a dog", " runs")):
        c, w = lm.tok_encode(ctx), lm.tok_encode(ctx + cont)
        reqs.append(((ctx, cont), c, w[len(c):]))
    assert len(reqs[7][1]) > 128
    got = lm._loglikelihood_tokens(reqs, disable_tqdm=True)
    for (_, ctx, cont), (ll, greedy) in zip(reqs, got):
        ids = torch.tensor([(ctx + cont)[-129:]])
        with torch.no_grad():
            logp = torch.log_softmax(loaded.model(ids[:, :-1]).float(), -1)[0]
        expected = logp[-len(cont):].gather(1, torch.tensor(cont)[:, None]).sum().item()
        assert ll == pytest.approx(expected, abs=1e-4)
        assert greedy == bool((logp[-len(cont):].argmax(-1) == torch.tensor(cont)).all())
    assert got[0] == got[3]
    assert lm.tok_encode("the man") == [tok.bos_id] + tok.encode("the man")


def test_generate_until_and_rolling_match_hf(env, tmp_path):
    """Greedy generation with the KV cache (left-padded batch, stop strings) and rolling
    log-likelihoods agree with lm-eval's HFLM on the same weights."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from tinyllama_cli.eval_lm import NativeLM
    from tinyllama_cli.formats.hf import save_hf
    from tinyllama_cli.load import load_model

    loaded = load_model(env["run"])
    native = NativeLM(loaded.model, loaded.tokenizer, batch_size=3)
    hf_dir = save_hf(loaded.model, tmp_path / "hf", loaded.tokenizer)
    hf = HFLM(pretrained=str(hf_dir), dtype="float32", batch_size=3, device="cpu")
    gen = [Instance("generate_until", {}, (p, {"until": [" cat", "\n"], "max_gen_toks": 12, "do_sample": False}), 0)
           for p in ("the man", "a dog runs fast and the", "rain", "question what is the sun")]
    got, want = native.generate_until(gen, disable_tqdm=True), hf.generate_until(gen, disable_tqdm=True)
    assert got == want
    assert any(got)  # something was generated
    text = " ".join(sentence(random.Random(3), 60) for _ in range(3))  # longer than the 128-token context
    rolling = [Instance("loglikelihood_rolling", {}, (t,), 0) for t in (text, "the man cooks onions")]
    for x, y in zip(native.loglikelihood_rolling(rolling, disable_tqdm=True), hf.loglikelihood_rolling(rolling, disable_tqdm=True)):
        assert x == pytest.approx(y, abs=1e-3)


def test_tokenization_follows_hf_llama_tokenizer(env, tmp_path):
    from transformers import AutoTokenizer

    from tinyllama_cli.eval_lm import NativeLM
    from tinyllama_cli.formats.hf import save_hf
    from tinyllama_cli.load import load_model

    loaded = load_model(env["run"])
    lm = NativeLM(loaded.model, loaded.tokenizer)
    hf = AutoTokenizer.from_pretrained(str(save_hf(loaded.model, tmp_path / "hf", loaded.tokenizer)))
    for text in ("the man", " leading space", "  two spaces", "a\nb c", "trailing ", "x 123 y", " "):
        assert lm.tok_encode(text) == hf.encode(text), text
        assert lm.tok_encode(text, add_special_tokens=False) == hf.encode(text, add_special_tokens=False), text


def test_aliases_and_group_expand():
    from tinyllama_cli.evaluate import expand_tasks

    assert expand_tasks("arc_e,arc_c,obqa") == ["arc_easy", "arc_challenge", "openbookqa"]
    assert expand_tasks("tinyllama") == SEVEN
    assert expand_tasks("piqa,tinyllama,arc_e") == ["piqa"] + [t for t in SEVEN if t != "piqa"]
    with pytest.raises(UserError, match="no tasks"):
        expand_tasks(" , ")


def test_aliases_run_through_the_cli_with_local_data(env, tmp_path):
    out = tmp_path / "results.json"
    cmd = [sys.executable, "-m", "tinyllama_cli", "eval", str(env["run"]), "--tasks", "arc_e,obqa",
           "--dataset", f"arc_e={env['files']['arc_easy']}", "--dataset", f"obqa={env['files']['openbookqa']}",
           "--limit", "2", "--batch-size", "2", "--output", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "ARC_e" in proc.stdout and "Obqa" in proc.stdout and "avg" in proc.stdout
    results = json.loads(out.read_text())
    assert set(results["results"]) == {"arc_easy", "openbookqa"}
    assert results["n-samples"]["arc_easy"]["effective"] == 2
    assert "acc_norm,none" in results["results"]["openbookqa"]


@pytest.mark.parametrize("spelling, dtype", [
    ("fp32", "torch.float32"), ("float32", "torch.float32"), ("bf16", "torch.bfloat16"),
    ("bfloat16", "torch.bfloat16"), ("fp16", "torch.float16"), ("float16", "torch.float16")])
def test_cli_dtype_takes_every_spelling(env, tmp_path, spelling, dtype):
    from typer.testing import CliRunner

    from tinyllama_cli.cli import app

    out = tmp_path / "results.json"
    result = CliRunner().invoke(app, [
        "eval", str(env["run"]), "--tasks", "arc_e", "--dataset", f"arc_e={env['files']['arc_easy']}",
        "--limit", "1", "--batch-size", "2", "--device", "cpu", "--dtype", spelling,
        "--output", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert "arc_easy" in json.loads(result.stdout)["scores"]
    assert json.loads(out.read_text())["config"]["model_dtype"] == dtype  # the weights as held


def test_missing_data_is_one_line_naming_dataset(env, tmp_path):
    cmd = [sys.executable, "-m", "tinyllama_cli", "eval", str(env["run"]), "--tasks", "piqa,boolq",
           "--dataset", f"piqa={env['files']['piqa']}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False,
                          env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--dataset boolq=" in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def test_bad_dataset_arguments_are_user_errors(env, tmp_path):
    from tinyllama_cli.evaluate import evaluate, parse_datasets

    with pytest.raises(UserError, match="does not exist"):
        parse_datasets([f"piqa={tmp_path / 'nope.jsonl'}"])
    with pytest.raises(UserError, match="TASK=PATH"):
        parse_datasets(["piqa"])
    bad = tmp_path / "piqa.jsonl"
    bad.write_text(json.dumps({"question": "x"}) + "\n")
    with pytest.raises(UserError, match="piqa"):
        evaluate(env["run"], "piqa", datasets=[f"piqa={bad}"], bootstrap_iters=0)
    with pytest.raises(UserError, match="not in --tasks"):
        evaluate(env["run"], "piqa", datasets=[f"boolq={env['files']['boolq']}"], bootstrap_iters=0)


def test_tasks_dir_adds_a_custom_task(env, tmp_path):
    from tinyllama_cli.evaluate import evaluate

    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps({"q": sentence(random.Random(i)), "a": i % 2}) + "\n" for i in range(4)))
    (tasks_dir / "mine.yaml").write_text(
        f"task: my_yesno\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: \"{{q}}?\"\ndoc_to_target: a\n"
        "doc_to_choice: [\"no\", \"yes\"]\nmetric_list:\n  - metric: acc\n")
    result = evaluate(env["run"], "my_yesno", tasks_dir=tasks_dir, bootstrap_iters=0)
    assert result.scores["my_yesno"][0] == "acc" and result.results["n-samples"]["my_yesno"]["effective"] == 4


def test_checkpoint_series_table(env, tmp_path):
    from tinyllama_cli.evaluate import evaluate_series

    out = tmp_path / "series"
    series = evaluate_series(env["run"], "arc_e,piqa", out_dir=out, datasets=dataset_args(env, ["arc_easy", "piqa"]),
                             bootstrap_iters=0, batch_size=4)
    assert [r.step for r in series.rows] == [10, 20]
    assert [r.tokens_seen for r in series.rows] == [40960, 81920]
    records = json.loads((out / "series.json").read_text())
    assert [r["tokens_seen"] for r in records] == [40960, 81920]
    assert json.loads(json.dumps(series.to_records())) == records  # what --json prints
    per_task = [f"{t}/{c}" for t in ("arc_easy", "piqa") for c in ("acc_norm", "acc_norm_stderr", "chance", "unigram")]
    assert list(records[0]) == ["checkpoint", "step", "tokens_seen", *per_task, "avg", "avg/chance", "avg/unigram"]
    assert records[0]["arc_easy/chance"] == 0.25 and records[0]["piqa/chance"] == 0.5
    assert records[0]["arc_easy/unigram"] is None  # the fixture run names no training data
    for rec, row in zip(records, series.rows):
        assert rec["avg"] == pytest.approx((rec["arc_easy/acc_norm"] + rec["piqa/acc_norm"]) / 2)
        assert rec["piqa/acc_norm"] == row.results["results"]["piqa"]["acc_norm,none"]
    csv_lines = (out / "series.csv").read_text().splitlines()
    assert csv_lines[0].startswith("checkpoint,step,tokens_seen") and len(csv_lines) == 3
    for name in ("arc_easy_acc_norm.png", "piqa_acc_norm.png", "avg.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(UserError, match="--overwrite"):
        evaluate_series(env["run"], "piqa", out_dir=out, datasets=dataset_args(env, ["piqa"]))


# --- chance level, standard error, unigram baseline ----------------------------------------------

# Three multiple-choice documents with 2, 3 and 4 choices: chance = (1/2 + 1/3 + 1/4) / 3 = 13/36.
MC_DOCS = [{"q": "the man cooks", "choices": ["no", "yes no"], "label": 0},
           {"q": "a dog runs", "choices": ["yes", "cat", "no"], "label": 0},
           {"q": "rain", "choices": ["cold", "warm", "no", "stone"], "label": 0}]


def write_data_dir(out, tokenizer, sources: dict[str, list[list[int]]]):
    """A token data dir in prepare-data's format: {source: [train shard token lists]}."""
    import hashlib

    out.mkdir(parents=True)
    entries = {}
    for name, shards in sources.items():
        (out / name).mkdir()
        listed = []
        for i, tokens in enumerate(shards):
            rel = f"{name}/train-{i:05d}.bin"
            np.asarray(tokens, dtype=np.uint16).tofile(out / rel)
            listed.append({"file": rel, "tokens": len(tokens)})
        entries[name] = {"documents": {"train": 1, "val": 0}, "skipped": {},
                         "tokens": {"train": sum(len(t) for t in shards), "val": 0},
                         "shards": {"train": listed, "val": []}}
    manifest = {"format_version": 1, "dtype": "uint16", "sources": entries,
                "tokenizer": {"file": "tokenizer.model", "vocab_size": tokenizer.vocab_size,
                              "sha256": hashlib.sha256(tokenizer.path.read_bytes()).hexdigest()}}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture(scope="session")
def unigram_env(env, tmp_path_factory):
    """A run whose training data is " yes" (source a, mix 0.75) and " no" (source b, 0.25), 3000
    tokens each, two random checkpoints, and a local task of MC_DOCS."""
    root = tmp_path_factory.mktemp("unigram")
    tok = env["tokenizer"]
    yes, no = tok.encode("yes"), tok.encode("no")
    assert len(yes) == len(no) == 3 and yes[0] == no[0]  # "▁" + two pieces each, "▁" shared
    data = write_data_dir(root / "data", tok, {"a": [yes * 500, yes * 500], "b": [no * 1000]})
    run = root / "run"
    run.mkdir()
    dump_yaml({"model": env["config"].to_dict(),
               "data": {"dir": str(data), "weights": {"a": 0.75, "b": 0.25}}}, run / "config.yaml")
    (run / "tokenizer.model").write_bytes(tok.path.read_bytes())
    for step, seed in ((10, 3), (20, 4)):
        torch.manual_seed(seed)
        write_checkpoint(run, Llama(env["config"]), step, step * 4096)
    tasks = root / "tasks"
    tasks.mkdir()
    (root / "mc.jsonl").write_text("".join(json.dumps(d) + "\n" for d in MC_DOCS))
    (tasks / "tiny_mc.yaml").write_text(
        f"task: tiny_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {root / 'mc.jsonl'}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: q\ndoc_to_target: label\n"
        "doc_to_choice: choices\nmetric_list:\n  - metric: acc\n  - metric: acc_norm\n")
    return {"root": root, "run": run, "data": data, "tasks": tasks, "yes": yes, "no": no}


def test_chance_stderr_and_unigram_baseline_by_hand(unigram_env):
    """Unigram p(t) = (c(t) + 1) / (N + V), N = 6000 tokens counted, V = 320, effective counts
    mixed 0.75/0.25: c(▁) = 2000, c(y) = c(es) = 1500, c(n) = c(o) = 500, others 0. So
    ll(yes) = -4.03, ll(no) = -6.22, ll(yes no) = -10.25, any choice with an unseen piece < -8.7:
    acc picks no, yes, no -> 2 of 3 right; acc_norm (ll / characters) picks "yes no" (-1.71 vs
    -3.11), yes, no -> 1 of 3. Both standard errors: sqrt(p (1 - p) / (n - 1)) = 1/3."""
    from tinyllama_cli.evaluate import evaluate, summary

    result = evaluate(unigram_env["run"], "tiny_mc", tasks_dir=unigram_env["tasks"])
    assert result.chance == {"tiny_mc": pytest.approx(13 / 36)}
    metric, p = result.scores["tiny_mc"]
    assert metric == "acc_norm"
    assert result.stderr["tiny_mc"] == pytest.approx(math.sqrt(p * (1 - p) / 2))  # lm-eval's, not N/A

    base = result.baseline
    assert base is not None and base.note == "" and base.tokens_counted == 6000
    assert base.scores == {"tiny_mc": ("acc_norm", pytest.approx(1 / 3))}
    assert base.results["results"]["tiny_mc"]["acc,none"] == pytest.approx(2 / 3)
    assert base.stderr["tiny_mc"] == pytest.approx(1 / 3) and base.stderr["tiny_mc"] > 0
    assert base.results["results"]["tiny_mc"]["acc_stderr,none"] == pytest.approx(1 / 3)

    out = summary(result)
    assert out["scores"]["tiny_mc"] == {"metric": "acc_norm", "value": p, "stderr": result.stderr["tiny_mc"],
                                        "chance": pytest.approx(13 / 36), "unigram": pytest.approx(1 / 3)}
    assert out["chance_avg"] == pytest.approx(13 / 36)
    assert out["unigram"]["avg"] == pytest.approx(1 / 3) and out["unigram"]["tokens_counted"] == 6000
    json.dumps(out)  # --json prints it
    assert result.to_dict() == out


def test_unigram_lm_log_likelihoods_by_hand(unigram_env, env):
    """The baseline LM's numbers: sum of smoothed log-frequencies, whatever the context, on the
    same continuation tokens as NativeLM's; rolling = every token of the text."""
    from lm_eval.api.instance import Instance

    from tinyllama_cli.eval_baseline import UnigramLM, count_unigrams, find_training_data
    from tinyllama_cli.eval_lm import NativeLM
    from tinyllama_cli.load import load_model

    loaded = load_model(unigram_env["run"])
    training, note = find_training_data(loaded.source, loaded.kind, loaded.tokenizer)
    assert note == "" and training.weights == {"a": 0.75, "b": 0.25}
    lm = UnigramLM(count_unigrams(training, 320), loaded.tokenizer, 128)
    space, no = math.log(2001 / 6320), math.log(501 / 6320)
    reqs = [Instance("loglikelihood", {}, (ctx, " no"), 0) for ctx in ("the man cooks", "rain?", "a dog")]
    assert [ll for ll, _ in lm.loglikelihood(reqs)] == pytest.approx([space + 2 * no] * 3)
    native = NativeLM(loaded.model, loaded.tokenizer)
    assert [native._encode_pair(*r.args) for r in reqs] == [lm._encode_pair(*r.args) for r in reqs]
    assert lm.loglikelihood([Instance("loglikelihood", {}, ("x", " no"), 0)])[0][1] is False
    rolled = lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, ("no no",), 0)])
    bos = math.log(1 / 6320)  # the rolling windows score the BOS of tok_encode too, as NativeLM's do
    assert rolled == pytest.approx([bos + 2 * (space + 2 * no)])


def test_unigram_counts_spread_over_shards_and_follow_the_mix(env, tmp_path):
    from tinyllama_cli.data.dataset import Manifest
    from tinyllama_cli.eval_baseline import TrainingData, count_unigrams, spread_blocks

    data = write_data_dir(tmp_path / "data", env["tokenizer"],
                          {"a": [[10] * 1000, [11] * 1000, [12] * 1000], "b": [[20] * 3000]})
    training = TrainingData(Manifest.load(data), {"a": 0.5, "b": 0.5})
    # 300 tokens of each source in 3 blocks of 100, spread: one block from each of a's shards.
    assert spread_blocks(3000, 300, 100) == [(0, 100), (1450, 100), (2900, 100)]
    small = count_unigrams(training, 320, budget=600, block=100)
    assert small.tokens_counted == 600
    expected = {10: 100, 11: 100, 12: 100, 20: 300}
    for token, count in expected.items():
        assert small.logprobs[token] == pytest.approx(math.log((count + 1) / (600 + 320)))
    assert small.logprobs[30] == pytest.approx(math.log(1 / 920))
    # Everything counted when it fits; the mix (not the token counts) weighs the sources.
    full = count_unigrams(TrainingData(Manifest.load(data), {"a": 0.9, "b": 0.1}), 320, budget=10**9)
    assert full.tokens_counted == 6000
    assert full.logprobs[10] == pytest.approx(math.log((0.3 * 6000 + 1) / 6320))
    assert full.logprobs[20] == pytest.approx(math.log((0.1 * 6000 + 1) / 6320))
    assert float(np.exp(full.logprobs).sum()) == pytest.approx(1.0)
    wrong = write_data_dir(tmp_path / "wrong", env["tokenizer"], {"a": [[5, 400, 7]]})
    with pytest.raises(UserError, match="token id 400, outside the model's vocabulary of 320"):
        count_unigrams(TrainingData(Manifest.load(wrong), None), 320)


def test_no_training_data_means_a_note_not_a_baseline(env, unigram_env, tmp_path):
    from tinyllama_cli.eval_baseline import find_training_data
    from tinyllama_cli.evaluate import evaluate
    from tinyllama_cli.load import load_model

    result = evaluate(env["run"], "tiny_mc", tasks_dir=unigram_env["tasks"], bootstrap_iters=0)
    assert result.baseline.scores == {} and "names no training data" in result.baseline.note
    assert result.stderr == {"tiny_mc": None}  # bootstrap_iters=0: lm-eval computes none
    loaded = load_model(unigram_env["run"])
    moved = tmp_path / "run"
    (moved / "checkpoints").mkdir(parents=True)
    dump_yaml({"data": {"dir": str(tmp_path / "gone")}}, moved / "config.yaml")
    _, note = find_training_data(moved / "checkpoints" / "step-1", "native", loaded.tokenizer)
    assert "gone" in note and str(tmp_path / "gone") in note
    _, note = find_training_data(tmp_path, "hf", loaded.tokenizer)
    assert "Hugging Face" in note
    manifest = json.loads((unigram_env["data"] / "manifest.json").read_text())
    manifest["tokenizer"]["sha256"] = "0" * 64  # data written with another tokenizer
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "manifest.json").write_text(json.dumps(manifest))
    dump_yaml({"data": {"dir": str(tmp_path / "other")}}, moved / "config.yaml")
    _, note = find_training_data(moved / "checkpoints" / "step-1", "native", loaded.tokenizer)
    assert "another tokenizer" in note


def test_eval_outside_a_git_checkout_prints_no_git_error(env, tmp_path):
    """lm-eval records `git describe` of the working directory; run from a directory that is not
    a git checkout, git's "fatal: not a git repository" must not reach the user's stderr."""
    assert subprocess.run(["git", "rev-parse"], cwd=tmp_path, capture_output=True, check=False).returncode != 0
    cmd = [sys.executable, "-m", "tinyllama_cli", "eval", str(env["run"]), "--tasks", "arc_e",
           "--dataset", f"arc_e={env['files']['arc_easy']}", "--limit", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ARC_e" in proc.stdout
    assert "not a git repository" not in proc.stderr and "fatal" not in proc.stderr


def test_eval_cli_table_has_reference_rows(unigram_env, tmp_path):
    """The table: the score with ± lm-eval's standard error, then chance and unigram rows."""
    cmd = [sys.executable, "-m", "tinyllama_cli", "eval", str(unigram_env["run"]), "--tasks", "tiny_mc",
           "--tasks-dir", str(unigram_env["tasks"])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line.strip()}
    assert rows["chance"][1:] == ["36.11", "36.11"]  # the task, then avg
    assert rows["unigram"][1:] == ["33.33", "33.33"]
    p = float(rows["20"][2]) / 100  # the model's acc_norm, then lm-eval's standard error (not N/A)
    assert rows["20"][3] == f"±{100 * math.sqrt(p * (1 - p) / 2):.2f}"
    assert "6k training tokens" in proc.stdout

    proc = subprocess.run(cmd + ["--json", "--no-baseline"], capture_output=True, text=True, timeout=300,
                          check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["unigram"] is None and out["scores"]["tiny_mc"]["unigram"] is None
    score = out["scores"]["tiny_mc"]
    assert score["chance"] == pytest.approx(13 / 36)
    assert score["stderr"] == pytest.approx(math.sqrt(score["value"] * (1 - score["value"]) / 2))


def test_checkpoint_series_computes_the_baseline_once(unigram_env, tmp_path):
    from tinyllama_cli.evaluate import evaluate_series

    series = evaluate_series(unigram_env["run"], "tiny_mc", out_dir=tmp_path, tasks_dir=unigram_env["tasks"])
    assert series.rows[0].baseline is not None and series.rows[1].baseline is None
    assert series.baseline is series.rows[0].baseline
    records = json.loads((tmp_path / "series.json").read_text())
    for rec in records:
        assert rec["tiny_mc/chance"] == pytest.approx(13 / 36) and rec["avg/chance"] == pytest.approx(13 / 36)
        assert rec["tiny_mc/unigram"] == pytest.approx(1 / 3) and rec["avg/unigram"] == pytest.approx(1 / 3)
        assert rec["tiny_mc/acc_norm_stderr"] > 0 or rec["tiny_mc/acc_norm"] in (0, 1)
    assert (tmp_path / "series.csv").read_text().splitlines()[0].split(",")[3:] == [
        "tiny_mc/acc_norm", "tiny_mc/acc_norm_stderr", "tiny_mc/chance", "tiny_mc/unigram",
        "avg", "avg/chance", "avg/unigram"]
