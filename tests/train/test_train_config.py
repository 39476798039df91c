"""TrainConfig: YAML + flags, the resolved config.yaml, and every config error -> one line, exit
2."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import yaml
from typer.testing import CliRunner

from tests.tiny_runs import SHAPE_FLAGS, TINY_FLAGS, tiny_run
from tinyllama_cli.cli import app
from tinyllama_cli.config import TrainConfig, load_train_config, train_fields
from tinyllama_cli.errors import UserError
from tinyllama_cli.rundir import list_checkpoints
from tinyllama_cli.train import launch
from tinyllama_cli.train.setup import prepare_resume, resolve

FAST = [*TINY_FLAGS, "--no-tensorboard", "--eval-samples", "2"]


def test_yaml_with_flag_overrides_is_written_fully_resolved(token_data, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "model: {name: cpu-tiny, n_layer: 1}\nlr: 1.0e-3\nwarmup_steps: 1\nmax_steps: 2\n"
        "mix: {web: 3, code: 1}\nsave_every: 1\n"
    )
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "pretrain",
            "--config",
            str(recipe),
            "--data",
            str(token_data),
            "--out",
            str(out),
            "--lr",
            "2e-3",
            *SHAPE_FLAGS,
            "--num-threads",
            "1",
            "--no-tensorboard",
        ],
    )
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert (
        saved["train"]["lr"] == 2e-3 and saved["train"]["warmup_steps"] == 1
    )  # flag wins, YAML kept
    assert saved["train"]["mix"] == "web=3,code=1" and saved["data"]["weights"] == {
        "code": 0.25,
        "web": 0.75,
    }
    assert (
        saved["model"]["n_layer"] == 1 and saved["model"]["vocab_size"] == 320
    )  # vocab from the data
    assert saved["train"]["seq_len"] == 16
    assert set(saved["train"]) == set(train_fields())  # every field, flat
    assert (out / "tokenizer.model").read_bytes() == (token_data / "tokenizer.model").read_bytes()
    # The resolved file is itself a valid --config, giving the same run.
    cfg, model = load_train_config(out / "config.yaml", {})
    assert cfg.schedule.lr == 2e-3 and model.n_layer == 1


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("lr: fast\n", "lr has value 'fast'"),
        ("learning_rate: 1e-3\n", "unknown train config field 'learning_rate'"),
        ("model: {name: cpu-tiny, layers: 3}\n", "unknown model config field"),
        ("- a\n- b\n", "must hold a mapping"),
    ],
)
def test_bad_yaml_is_a_user_error(tmp_path, yaml_text, message):
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(UserError, match=message):
        load_train_config(path, {})


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"global_batch_size": 6, "micro_batch_size": 4},
            "not a multiple of --micro-batch-size 4 x 1",
        ),
        ({"global_batch_size": 8, "micro_batch_size": 4, "devices": 3}, "4 x 3 worker"),
        ({"max_steps": None}, "--max-steps N or --max-tokens N"),
        ({"vocab_size": 100}, "tokenizer has 320 tokens"),
        ({"seq_len": 4096}, "must be between 1 and the model's context 128"),
        ({"mix": "books=1"}, "does not have"),
        ({"precision": "fp8"}, "--precision"),
        ({"data": "/nonexistent"}, "not a token data dir"),
    ],
)
def test_config_errors(token_data, tmp_path, overrides, message):
    base = {
        "data": str(token_data),
        "out": str(tmp_path / "run"),
        "model": "cpu-tiny",
        "max_steps": 2,
    }
    with pytest.raises(UserError, match=message):
        resolve(TrainConfig.of(**{**base, **overrides}), None)


def test_global_batch_in_tokens(token_data, tmp_path):
    base = {
        "data": str(token_data),
        "out": str(tmp_path),
        "model": "cpu-tiny",
        "seq_len": 16,
        "micro_batch_size": 2,
        "max_steps": 1,
    }
    run = resolve(TrainConfig.of(**base, global_batch_tokens=128), None)
    assert run.train.data_order.global_batch_size == 8
    with pytest.raises(UserError, match="not a positive multiple of seq_len 16"):
        resolve(TrainConfig.of(**base, global_batch_tokens=100), None)


def test_max_tokens_sets_the_schedule(token_data, tmp_path):
    run = resolve(
        tiny_run(
            token_data,
            tmp_path,
            max_tokens=1000,
        ),
        None,
    )
    assert run.train.training.max_steps == 16  # ceil(1000 / (4 x 16))


def test_existing_run_dir_is_not_overwritten_and_resume_refuses_changes(
    token_data, other_token_data, tmp_path
):
    out = tmp_path / "run"
    args = ["pretrain", "--data", str(token_data), "--out", str(out), "--max-steps", "2", *FAST]
    assert CliRunner().invoke(app, args).exit_code == 0
    with pytest.raises(UserError, match="already exists.*tinyllama resume"):
        launch.pretrain(
            load_train_config(None, {"data": str(token_data), "out": str(out), "max_steps": 2})[0]
        )
    with pytest.raises(
        UserError, match=r"different model config \(.*n_embd 64 -> 256.*n_layer 2 -> 4"
    ):
        prepare_resume(out, {"model": "cpu-small", "vocab_size": 320, "max_steps": 4})
    with pytest.raises(UserError, match="not the data it was trained on"):
        prepare_resume(out, {"data": str(other_token_data), "max_steps": 4})
    with pytest.raises(UserError, match="different seed .* data order"):
        prepare_resume(out, {"seed": 1, "max_steps": 4})
    with pytest.raises(UserError, match="already at step 2"):
        prepare_resume(out, {})
    with pytest.raises(UserError, match="continues .* in place; drop --out"):
        prepare_resume(out, {"out": str(tmp_path / "elsewhere"), "max_steps": 4})
    assert prepare_resume(out, {"out": str(out), "max_steps": 4}).train.training.max_steps == 4
    assert prepare_resume(out, {"max_steps": 4}).train.training.max_steps == 4
    with pytest.raises(UserError, match=r"different init_from \(None -> '/w'\).*--init-from"):
        prepare_resume(out, {"init_from": "/w", "max_steps": 4})
    kept = prepare_resume(out, {"overwrite": True, "seed": 1337, "max_steps": 4}, write=False)
    assert kept.train.run.overwrite is False  # overwrite is pretrain's; equal order fields pass


def test_every_section_resume_keeps_has_its_check():
    from tinyllama_cli.config import Resume, sections
    from tinyllama_cli.train.setup import KEEP_CHECKS

    assert sorted(KEEP_CHECKS) == sorted(sections(Resume.KEEP))


# The field order of config.yaml's `train:` before TrainConfig had sections (the keys are the
# same: the file format did not change).
FLAT_ORDER = (
    "data",
    "out",
    "model",
    "vocab_size",
    "init_from",
    "mix",
    "seed",
    "seq_len",
    "micro_batch_size",
    "global_batch_size",
    "global_batch_tokens",
    "max_steps",
    "max_tokens",
    "stop_at_step",
    "lr",
    "min_lr",
    "warmup_steps",
    "weight_decay",
    "beta1",
    "beta2",
    "eps",
    "grad_clip",
    "log_every",
    "eval_every",
    "eval_samples",
    "save_every",
    "keep_last",
    "precision",
    "compile",
    "activation_checkpointing",
    "num_threads",
    "accelerator",
    "devices",
    "nodes",
    "node_rank",
    "rdzv_endpoint",
    "master_addr",
    "master_port",
    "peak_flops",
    "tensorboard",
    "wandb",
    "wandb_project",
    "overwrite",
)
# Fields added after the sections, with the values an older config.yaml (without them) gets.
ADDED_SINCE = {
    "lr_schedule": "cosine",
    "decay_steps": None,
    "decay_fraction": None,
    "decay_shape": None,
    "decay_start_lr": None,
    "eval_tasks": None,
    "eval_dataset": None,
    "eval_tasks_every": None,
    "eval_limit": None,
    "eval_fewshot": None,
    "async_save": False,
    "attention": "auto",
    "dp_shard": None,
}


def test_a_config_yaml_written_before_the_sections_loads_and_resumes(token_data, tmp_path):
    out = tmp_path / "run"
    launch.pretrain(
        tiny_run(
            token_data,
            out,
            max_steps=2,
        )
    )
    path = out / "config.yaml"
    saved = yaml.safe_load(path.read_text())
    assert set(saved["train"]) == set(FLAT_ORDER) | set(ADDED_SINCE)
    saved["train"] = {name: saved["train"][name] for name in FLAT_ORDER}  # as written before them
    path.write_text(yaml.safe_dump(saved, sort_keys=False))
    cfg = load_train_config(path, {})[0]
    assert cfg.to_dict() == {**saved["train"], **ADDED_SINCE} and cfg.data_order.seq_len == 16
    assert launch.resume(out, {"max_steps": 3, "lr": 1e-3}) == 0
    resumed = yaml.safe_load(path.read_text())["train"]
    assert (resumed["max_steps"], resumed["lr"], resumed["seq_len"]) == (3, 1e-3, 16)
    assert list_checkpoints(out)[-1].name == "step-00000003"


def test_cli_error_is_one_line_and_exit_2(token_data, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tinyllama_cli",
            "pretrain",
            "--data",
            str(token_data),
            "--out",
            str(tmp_path / "r"),
            "--max-steps",
            "1",
            "--global-batch-size",
            "5",
            "--micro-batch-size",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not a multiple" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_warmup_as_long_as_the_run_warns(token_data, tmp_path):
    base = {
        "data": str(token_data),
        "out": str(tmp_path / "r"),
        "model": "cpu-tiny",
        "seq_len": 16,
        "global_batch_size": 4,
        "micro_batch_size": 2,
    }
    assert resolve(TrainConfig.of(**base, max_steps=10, warmup_steps=2), None).notes == []
    notes = resolve(TrainConfig.of(**base, max_steps=10), None).notes  # default warmup: 2000
    assert len(notes) == 1 and "--warmup-steps 2000 >= --max-steps 10" in notes[0]
    assert "2.00e-06" in notes[0]  # lr reaches 10/2000 of 4e-4 at the last step
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tinyllama_cli",
            "pretrain",
            "--data",
            str(token_data),
            "--out",
            str(tmp_path / "cli"),
            "--max-steps",
            "1",
            *FAST,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0 and "warning: --warmup-steps" in proc.stdout


def test_resume_that_re_stretches_the_cosine_says_how_the_lr_changes(token_data, tmp_path):
    out = tmp_path / "run"
    launch.pretrain(
        tiny_run(
            token_data,
            out,
            max_steps=4,
        )
    )
    from tinyllama_cli.train.schedule import lr_at

    run = prepare_resume(out, {"max_steps": 8}, write=False)
    old = load_train_config(out / "config.yaml", {})[0]
    before, after = lr_at(4, old.schedule, 4), lr_at(4, run.train.schedule, 8)
    assert before != after
    assert run.notes == [
        (
            f"the schedule changes at step 4: lr {before:.3e} -> {after:.3e} (--max-steps 4 -> 8 "
            "re-stretches the cosine from here; steps up to 4 are unchanged)"
        )
    ]
    assert prepare_resume(out, {"max_steps": 8, "devices": 1}, write=False).notes  # still said
    assert prepare_resume(out, {"max_steps": 8, "log_every": 2, "lr": 4e-4}, write=False).notes


def test_resume_has_no_flags_for_what_it_cannot_change(token_data, tmp_path):
    import re

    text = CliRunner().invoke(app, ["resume", "--help"], env={"COLUMNS": "200"}).output
    shown = set(re.findall(r"--[a-z][a-z0-9-]*", text))
    for fixed in (
        "--config",
        "--out",
        "--seed",
        "--mix",
        "--model",
        "--vocab-size",
        "--init-from",
        "--seq-len",
        "--global-batch-size",
        "--overwrite",
    ):
        assert fixed not in shown, fixed
    assert {"--max-steps", "--devices", "--save-every", "--data"} <= shown
    result = CliRunner().invoke(app, ["resume", str(tmp_path), "--seed", "3"])
    assert result.exit_code == 2 and "No such option" in result.output


def test_pretrain_help_shows_the_defaults():
    text = CliRunner().invoke(app, ["pretrain", "--help"], env={"COLUMNS": "200"}).output
    assert "Linear warmup steps. [default: 2000]" in text
    assert "[default: tensorboard]" in text and "[default: auto]" in text


def test_data_without_validation_windows_warns(tmp_path):
    from tests.train.tokendata import make_tokenizer, write_token_data

    tok = make_tokenizer(tmp_path / "tok.model")
    data = write_token_data(
        tmp_path / "d", tok, {"web": {"train": 4000, "val": 400}, "code": {"train": 4000}}
    )
    base = {
        "data": str(data),
        "out": str(tmp_path / "r"),
        "model": "cpu-tiny",
        "seq_len": 16,
        "global_batch_size": 4,
        "micro_batch_size": 2,
        "max_steps": 4,
        "warmup_steps": 1,
    }
    assert resolve(TrainConfig.of(**base), None).notes == [
        (
            "source(s) code have no validation window of 17 tokens: val_loss covers web only; "
            "re-run "
            "prepare-data with a larger --val-fraction"
        )
    ]
    none = write_token_data(tmp_path / "n", tok, {"web": {"train": 4000}})
    notes = resolve(TrainConfig.of(**{**base, "data": str(none)}), None).notes
    assert len(notes) == 1 and "has no validation data" in notes[0]
    quiet = TrainConfig.of(**{**base, "data": str(none), "eval_samples": 0})
    assert resolve(quiet, None).notes == []


@pytest.mark.parametrize(
    "spelling, stored",
    [
        ("auto", "auto"),
        ("fp32", "fp32"),
        ("float32", "fp32"),
        ("bf16", "bf16"),
        ("bfloat16", "bf16"),
    ],
)
def test_precision_spellings_are_stored_canonically(token_data, tmp_path, spelling, stored):
    from tinyllama_cli.train.distributed import resolve_precision

    base = {
        "data": str(token_data),
        "out": str(tmp_path / "run"),
        "model": "cpu-tiny",
        "max_steps": 2,
    }
    assert resolve(TrainConfig.of(**base, precision=spelling), None).train.speed.precision == stored
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"precision: {spelling}\n")
    assert load_train_config(recipe, {})[0].speed.precision == stored
    if stored != "auto":
        assert resolve_precision(spelling, torch.device("cpu")) == stored


def test_pretrain_precision_bfloat16_is_stored_as_bf16_and_resume_keeps_it(token_data, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "pretrain",
            "--data",
            str(token_data),
            "--out",
            str(out),
            "--max-steps",
            "1",
            "--precision",
            "bfloat16",
            *FAST,
        ],
    )
    assert result.exit_code == 0, result.output
    assert ", bf16, " in result.output  # the trainer ran in bf16

    def saved() -> str:
        return yaml.safe_load((out / "config.yaml").read_text())["train"]["precision"]

    assert saved() == "bf16"
    resumed = prepare_resume(out, {"precision": "bfloat16", "max_steps": 2})
    assert resumed.train.speed.precision == "bf16"
    assert saved() == "bf16"
    resumed = prepare_resume(out, {"precision": "float32", "max_steps": 2})
    assert resumed.train.speed.precision == "fp32"
    assert saved() == "fp32"
    with pytest.raises(
        UserError,
        match="--precision fp16 is not supported: training in fp16 needs a gradient scaler",
    ):
        prepare_resume(out, {"precision": "fp16", "max_steps": 2})
    assert saved() == "fp32"  # the refused resume wrote nothing


@pytest.mark.parametrize(
    "given, device, precision, micro_batches, compiler, on, why",
    [
        (None, "cpu", "bf16", 2000, True, True, "auto: bf16 on CPU, 2,000 micro batches"),
        (None, "cpu", "bf16", 1999, True, False, "auto: 1,999 micro batches, under 2,000"),
        (None, "cpu", "fp32", 10**6, True, False, "auto: fp32 on CPU"),
        (None, "cuda", "bf16", 10**6, True, False, "auto: not measured on this device"),
        (None, "cpu", "bf16", 10**6, False, False, "no C++ compiler for inductor (install g++)"),
        (True, "cpu", "fp32", 1, False, True, "--compile"),
        (False, "cpu", "bf16", 10**6, True, False, "--no-compile"),
    ],
)
def test_compile_auto_compiles_only_long_cpu_bf16_jobs_and_a_flag_always_wins(
    monkeypatch, given, device, precision, micro_batches, compiler, on, why
):
    """Auto compiles where bench_compile.py measured it to pay (CPU bf16, long enough to earn a
    cold compile back, a C++ compiler for inductor); an explicit flag is obeyed either way."""
    import shutil

    from tinyllama_cli.train.distributed import resolve_compile

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}" if compiler else None)
    decided = resolve_compile(given, torch.device(device), precision, micro_batches)
    assert decided[0] is on
    assert why in decided[1]


def test_compile_auto_counts_this_jobs_micro_batches_from_the_latest_checkpoint(
    token_data, tmp_path
):
    """The decision is the job's: (end - the checkpoint's step) x accumulation micro batches,
    printed in the start line; `--compile` left out stays unset in config.yaml (auto again on
    resume, deciding for that job)."""
    out = tmp_path / "run"
    args = ["pretrain", "--data", str(token_data), "--out", str(out), "--max-steps", "3"]
    args += ["--precision", "bf16", "--stop-at-step", "1", *FAST]  # accumulation 4 / 2 = 2
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "compile off (auto: 2 micro batches, under 2,000)" in first.output
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["compile"] is None
    resumed = CliRunner().invoke(app, ["resume", str(out), "--max-steps", "5"])
    assert resumed.exit_code == 0, resumed.output
    assert "compile off (auto: 8 micro batches, under 2,000)" in resumed.output  # steps 1 -> 5


def test_default_threads_follow_the_governor_and_the_mfu_peak_follows_the_threads(
    token_data, tmp_path, monkeypatch
):
    """At the default thread count the trainer asks `ThreadGovernor` at each logged step; a
    change is printed and the MFU after it is against the new thread count's peak. With
    --num-threads the governor is never asked."""
    import json

    from tinyllama_cli import hardware

    answers = iter([(1, 2, 0.0)])
    asked = []

    def update(self):
        asked.append(self)
        return next(answers, None)

    monkeypatch.setattr(hardware.ThreadGovernor, "update", update)
    monkeypatch.setattr(hardware, "default_cpu_threads", lambda: (1, "1.0 of 2 CPUs idle"))
    out = tmp_path / "run"
    fast = [a for a in FAST if a not in ("--num-threads", "1")]
    args = ["pretrain", "--data", str(token_data), "--out", str(out), "--max-steps", "2"]
    result = CliRunner().invoke(app, [*args, "--log-every", "1", "--precision", "fp32", *fast])
    assert result.exit_code == 0, result.output
    assert "CPU threads 1 -> 2: other processes used 0.0 CPUs" in result.output
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "mfu" in r]
    per_token = [r["mfu"] / r["tokens_per_sec"] for r in rows]
    assert per_token[1] == pytest.approx(per_token[0] / 2)  # twice the threads, twice the peak
    asked.clear()
    pinned = CliRunner().invoke(app, [*args, "--overwrite", "--log-every", "1", *FAST])
    assert pinned.exit_code == 0, pinned.output
    assert asked == []


def test_config_records_the_hardware_and_plan_from_reports_it(token_data, tmp_path):
    """A real CPU run: config.yaml says what `--accelerator auto` became, and `plan --from`
    reports 1 x cpu at the median MFU the trainer logged (not 1 x a100-40g at 0.0%)."""
    import json
    import statistics

    out = tmp_path / "run"
    args = [
        "pretrain",
        "--data",
        str(token_data),
        "--out",
        str(out),
        "--max-steps",
        "3",
        "--log-every",
        "1",
        *FAST,
    ]
    assert CliRunner().invoke(app, args).exit_code == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["hardware"] == {"accelerator": "cpu", "world_size": 1}
    assert saved["train"]["accelerator"] == "auto"  # the user's choice is kept for resume
    logged = [
        json.loads(line)["mfu"]
        for line in (out / "metrics.jsonl").read_text().splitlines()
        if "mfu" in line
    ]
    result = CliRunner().invoke(app, ["plan", "--from", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["gpu"], data["gpus"], data["hardware"]) == ("cpu", 1, "run")
    assert data["compute"]["mfu"] == pytest.approx(statistics.median(logged)) and len(logged) == 3
    assert data["memory"] is None
    table = CliRunner().invoke(app, ["plan", "--from", str(out)]).output
    assert "1 x cpu (the run's own" in table and "a100" not in table
