"""Fixtures of the eval tests: a tiny random Llama with a tokenizer trained here, saved as a
native run dir (DCP checkpoints + state.json + tokenizer.model) exactly as pretrain writes it,
local data for the seven TinyLlama tasks, and a run whose training data the unigram baseline
counts."""

from __future__ import annotations

import json
import random

import pytest
import torch

from tests.eval.files import (
    MC_DOCS,
    SEVEN,
    dataset_args,
    sentence,
    task_rows,
    write_checkpoint,
    write_data_dir,
)
from tinyllama_cli.config import ModelConfig, dump_yaml
from tinyllama_cli.model import Llama
from tinyllama_cli.tokenizer import train_tokenizer


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    """A run dir with two checkpoints and local data files for all seven tasks."""
    root = tmp_path_factory.mktemp("eval")
    rng = random.Random(0)
    tokenizer = train_tokenizer(
        [sentence(rng, 12) + rng.choice([".", "?", "\n"]) for _ in range(3000)],
        320,
        root / "tok.model",
    )
    config = ModelConfig(
        name="eval-tiny",
        vocab_size=tokenizer.vocab_size,
        n_layer=2,
        n_embd=48,
        n_head=4,
        n_kv_head=2,
        intermediate_size=96,
        block_size=128,
    )
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


@pytest.fixture(scope="session")
def both_backends(env):
    from tinyllama_cli.eval import evaluate

    # bootstrap_iters stays lm-eval's default: acc/acc_norm's standard error is closed-form (no
    # bootstrap runs), and with 0 lm-eval would write "N/A".
    kwargs = {"datasets": dataset_args(env, SEVEN), "log_samples": True, "batch_size": 4}
    native = evaluate(env["run"], "tinyllama", backend="native", **kwargs)
    hf = evaluate(env["run"], "tinyllama", backend="hf", **kwargs)
    return native, hf


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
    dump_yaml(
        {
            "model": env["config"].to_dict(),
            "data": {"dir": str(data), "weights": {"a": 0.75, "b": 0.25}},
        },
        run / "config.yaml",
    )
    (run / "tokenizer.model").write_bytes(tok.path.read_bytes())
    for step, seed in ((10, 3), (20, 4)):
        torch.manual_seed(seed)
        write_checkpoint(run, Llama(env["config"]), step, step * 4096)
    tasks = root / "tasks"
    tasks.mkdir()
    (root / "mc.jsonl").write_text("".join(json.dumps(d) + "\n" for d in MC_DOCS))
    (tasks / "tiny_mc.yaml").write_text(
        "task: tiny_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: "
        f"{root / 'mc.jsonl'}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: q\ndoc_to_target: label\n"
        "doc_to_choice: choices\nmetric_list:\n  - metric: acc\n  - metric: acc_norm\n"
    )
    return {"root": root, "run": run, "data": data, "tasks": tasks, "yes": yes, "no": no}
