"""Resume exactness: after a checkpoint, after SIGTERM, after kill -9, and at another world size;
a 2-process FSDP run and a 2-node run match 1 process; NaN stops keep the last good checkpoint."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from tinyllama_cli import files
from tinyllama_cli.config import TrainConfig
from tinyllama_cli.errors import UserError
from tinyllama_cli.load import load_model
from tinyllama_cli.rundir import list_checkpoints
from tinyllama_cli.train import launch
from tinyllama_cli.train.setup import prepare_resume

STEPS = 24
COMMON = {
    "model": "cpu-tiny",
    "seq_len": 32,
    "micro_batch_size": 2,
    "global_batch_size": 8,
    "max_steps": STEPS,
    "warmup_steps": 4,
    "lr": 3e-3,
    "min_lr": 3e-4,
    "log_every": 1,
    "save_every": 6,
    "eval_every": 12,
    "eval_samples": 6,
    "num_threads": 1,
    "keep_last": 0,
    "tensorboard": False,
}


def flags(precision: str, **overrides) -> list[str]:
    out = []
    for key, value in {**COMMON, "precision": precision, **overrides}.items():
        flag = "--" + key.replace("_", "-")
        out += (
            [flag]
            if value is True
            else [f"--no-{flag[2:]}"]
            if value is False
            else [flag, str(value)]
        )
    return out


def cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tinyllama_cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def pretrain_cli(data, out, *args: str, **kwargs) -> subprocess.Popen:
    """`tinyllama pretrain --data DATA --out OUT ARGS...` in a subprocess."""
    return cli("pretrain", "--data", str(data), "--out", str(out), *args, **kwargs)


def cpu_workers(n: int) -> list[str]:
    return ["--devices", str(n), "--accelerator", "cpu"]


def records(run_dir) -> tuple[dict[int, float], dict[int, float]]:
    losses, vals = {}, {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "loss" in r:
            losses[r["step"]] = r["loss"]
        if "val_loss" in r:
            vals[r["step"]] = r["val_loss"]
    return losses, vals


def pretrain(data, out, precision: str, **overrides) -> None:
    launch.pretrain(
        TrainConfig.of(
            data=str(data), out=str(out), **{**COMMON, "precision": precision, **overrides}
        )
    )


@pytest.fixture(scope="module")
def references(token_data, tmp_path_factory):
    """One uninterrupted single-process run per precision, made when first asked for."""
    runs = {}

    def reference(precision: str):
        if precision not in runs:
            out = tmp_path_factory.mktemp(f"ref-{precision}") / "run"
            pretrain(token_data, out, precision)
            losses, vals = records(out)
            assert sorted(losses) == list(range(1, STEPS + 1)) and sorted(vals) == [12, 24]
            first, last = (
                sum(losses[s] for s in steps) / 6 for steps in (range(1, 7), range(19, 25))
            )
            assert (
                last < first - 0.05 and vals[24] < vals[12]
            )  # it learns (one step's loss is noisy)
            mfus = [
                json.loads(line).get("mfu")
                for line in (out / "metrics.jsonl").read_text().splitlines()
            ]
            assert all(0 < m <= 1 for m in mfus if m is not None) and any(mfus)  # a true fraction
            runs[precision] = out
        return runs[precision]

    return reference


@pytest.fixture
def reference(references, precision):
    """The reference run in the test run's precision (resume must be bit-exact in both)."""
    return references(precision)


def assert_same_weights(a, b) -> None:
    wa, wb = load_model(a).model.state_dict(), load_model(b).model.state_dict()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def test_resume_after_checkpoint_is_bit_exact(token_data, reference, precision, tmp_path):
    out = tmp_path / "run"
    pretrain(token_data, out, precision, stop_at_step=9)
    assert [p.name for p in list_checkpoints(out)] == ["step-00000006", "step-00000009"]
    launch.resume(out, {})
    assert records(out) == records(reference)  # every step's loss and val loss, exactly
    assert_same_weights(out, reference)
    state = json.loads((list_checkpoints(out)[-1] / "state.json").read_text())
    assert state["step"] == STEPS and state["samples_seen"] == STEPS * 8
    assert state["tokens_seen"] == STEPS * 8 * 32 and state["model_config"]["vocab_size"] == 320


def test_resume_lengthening_a_wsd_run_equals_the_longer_run_from_the_start(
    token_data, precision, tmp_path
):
    """WSD's flat part does not depend on --max-steps: a run planned for 16 steps, stopped at 8 and
    resumed to 24 trains exactly the 24-step run (every lr, loss and weight), and says nothing
    about a schedule change."""
    wsd = {"lr_schedule": "wsd", "decay_steps": 4, "eval_every": 8}
    longer = tmp_path / "longer"
    pretrain(token_data, longer, precision, **wsd)
    out = tmp_path / "run"
    pretrain(token_data, out, precision, **wsd, max_steps=16, stop_at_step=8)
    run = prepare_resume(out, {"max_steps": STEPS}, write=False)
    assert run.notes == [] and run.train.schedule.decay_steps == 4
    launch.resume(out, {"max_steps": STEPS})
    assert records(out) == records(longer)
    assert_same_weights(out, longer)
    lrs = {
        r["step"]: r["lr"]
        for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
        if "lr" in r
    }
    assert lrs[20] == 3e-3 and lrs[STEPS] == 3e-4  # flat to step 20, decayed over the last 4


def _wait_for_lines(path, n, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.01)
    raise AssertionError("training did not log in time")


@pytest.mark.slow
def test_sigterm_saves_and_resume_is_bit_exact(token_data, reference, precision, tmp_path):
    out = tmp_path / "run"
    proc = cli("pretrain", "--data", str(token_data), "--out", str(out), *flags(precision))
    _wait_for_lines(out / "metrics.jsonl", 3, proc)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    assert "stopped by SIGTERM" in output
    stopped = json.loads((list_checkpoints(out)[-1] / "state.json").read_text())["step"]
    assert 3 <= stopped < STEPS
    proc = cli("resume", str(out))
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    assert records(out) == records(reference)


@pytest.mark.slow
@pytest.mark.parametrize("async_save", [False, True])
def test_kill_9_at_a_random_moment_then_resume_is_bit_exact(
    token_data, reference, precision, tmp_path, async_save
):
    """With --async-save the kill may land while a background write is in flight."""
    out = tmp_path / "run"
    proc = pretrain_cli(
        token_data,
        out,
        *flags(precision, async_save=async_save),
    )
    # A random step past the first checkpoint, and a random moment within it (maybe mid-save).
    _wait_for_lines(out / "metrics.jsonl", random.randint(7, STEPS - 4), proc)
    time.sleep(random.uniform(0.0, 0.03))
    proc.kill()
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert list_checkpoints(out), "no checkpoint survived"
    proc = cli("resume", str(out))
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    assert records(out) == records(reference)
    assert_same_weights(out, reference)


@pytest.mark.slow
def test_two_process_fsdp_matches_one_process_and_resumes_at_world_one(
    token_data, references, tmp_path
):
    """fp32: FSDP's sharded reductions change only the summation order, so 1e-5 holds."""
    reference = references("fp32")
    out = tmp_path / "run"
    proc = pretrain_cli(
        token_data,
        out,
        *flags("fp32", stop_at_step=8, eval_every=4, eval_samples=1),
        *cpu_workers(2),
    )
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    ref_losses, ref_vals = records(reference)
    losses, vals = records(out)
    assert sorted(losses) == list(range(1, 9))
    # One val window for two workers: the second runs a padded batch instead of hanging.
    assert sorted(vals) == [4, 8] and all(3 < v < 7 for v in vals.values())
    for step, loss in losses.items():  # FSDP over 2 gloo workers == 1 process, same global batch
        assert loss == pytest.approx(ref_losses[step], rel=1e-5, abs=1e-6), step
    state = json.loads((list_checkpoints(out)[-1] / "state.json").read_text())
    assert state["world_size"] == 2 and state["step"] == 8
    launch.resume(
        out, {"devices": 1, "eval_every": 12, "eval_samples": 6}
    )  # DCP reshards 2 -> 1; the data order needs only samples seen
    losses, vals = records(out)
    assert sorted(losses) == list(range(1, STEPS + 1))
    for step in range(9, STEPS + 1):
        assert losses[step] == pytest.approx(ref_losses[step], rel=1e-4, abs=1e-5), step
    assert vals[STEPS] == pytest.approx(ref_vals[STEPS], rel=1e-4)


@pytest.mark.slow
def test_fsdp_with_compile_and_activation_checkpointing_matches_one_process(
    token_data, references, tmp_path
):
    """The three wrappers train.distributed applies, all at once: FSDP2 over 2 gloo workers,
    torch.compile (inductor) per block and activation checkpointing (fp32: inductor's fused
    kernels round differently from eager, within 1e-4)."""
    reference = references("fp32")
    out = tmp_path / "run"
    proc = pretrain_cli(
        token_data,
        out,
        *flags("fp32", stop_at_step=6, eval_every=6),
        *cpu_workers(2),
        "--compile",
        "--activation-checkpointing",
    )
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    ref_losses, _ = records(reference)
    losses, _ = records(out)
    assert sorted(losses) == list(range(1, 7))
    for step, loss in losses.items():
        assert loss == pytest.approx(ref_losses[step], rel=1e-4, abs=1e-5), step
    # (that it learns is the reference's check: this run follows it step for step)


@pytest.mark.slow
@pytest.mark.parametrize("rendezvous", ["c10d", "static"])
def test_two_nodes_on_one_machine_match_one_process(token_data, references, tmp_path, rendezvous):
    """The multi-node path for real: two launchers (one per "node", one worker each) meet on
    localhost, at a c10d rendezvous or node 0's static address; node 0 creates the run dir and
    node 1 waits for it."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    meet = (
        ["--rdzv-endpoint", f"127.0.0.1:{port}"]
        if rendezvous == "c10d"
        else ["--master-addr", "127.0.0.1", "--master-port", str(port)]
    )
    reference = references("fp32")
    out = tmp_path / "run"
    nodes = [
        pretrain_cli(
            token_data,
            out,
            *flags("fp32", stop_at_step=6, eval_every=6),
            "--devices",
            "1",
            "--nodes",
            "2",
            "--node-rank",
            str(rank),
            *meet,
            "--accelerator",
            "cpu",
        )
        for rank in (1, 0)
    ]  # the waiting node first
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    assert "node_rank is only used for static" not in "".join(outputs)
    ref_losses, _ = records(reference)
    losses, vals = records(out)
    assert sorted(losses) == list(range(1, 7)) and sorted(vals) == [6]
    for step, loss in losses.items():  # 2 nodes x 1 worker == 1 process, same global batch
        assert loss == pytest.approx(ref_losses[step], rel=1e-5, abs=1e-6), step
    state = json.loads((list_checkpoints(out)[-1] / "state.json").read_text())
    assert state["world_size"] == 2 and state["step"] == 6


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(token_data, precision, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(UserError, match=r"non-finite loss or gradient") as info:
        pretrain(
            token_data,
            out,
            precision,
            lr=1e30,
            warmup_steps=1,
            save_every=1,
            max_steps=20,
            grad_clip=0.0,
        )
    last = list_checkpoints(out)[-1]
    step = int(str(info.value).split(" at step ")[1].split(";")[0])
    assert f"the last good checkpoint is {last}" in str(info.value)
    assert json.loads((last / "state.json").read_text())["step"] == step - 1  # nothing bad saved
    assert all(torch.isfinite(t).all() for t in load_model(out).model.state_dict().values())


def test_crash_during_save_leaves_the_previous_checkpoint_usable(
    token_data, precision, tmp_path, monkeypatch
):
    from tinyllama_cli import rundir

    out = tmp_path / "run"
    real = rundir.write_state
    calls = {"n": 0}

    def crash_on_second_save(checkpoint, state, fsync=False):
        calls["n"] += 1
        if calls["n"] == 2:  # shards of step 12 are written, state.json is not: a crash mid-save
            raise KeyboardInterrupt("simulated crash")
        real(checkpoint, state, fsync=fsync)

    monkeypatch.setattr(rundir, "write_state", crash_on_second_save)
    with pytest.raises(KeyboardInterrupt):
        pretrain(token_data, out, precision, max_steps=18)
    monkeypatch.setattr(rundir, "write_state", real)
    assert [p.name for p in list_checkpoints(out)] == ["step-00000006"]
    assert (out / "checkpoints" / "step-00000012.tmp").is_dir()  # the partial save, ignored
    assert load_model(out).source.name == "step-00000006"
    launch.resume(out, {})
    assert [p.name for p in list_checkpoints(out)] == [
        "step-00000006",
        "step-00000012",
        "step-00000018",
    ]
    assert not (out / "checkpoints" / "step-00000012.tmp").exists()


@pytest.mark.slow
def test_bf16_two_process_fsdp_tracks_one_process_and_fp32(token_data, references, tmp_path):
    """bf16 autocast, forced (emulated where the CPU has no bf16): 2 FSDP workers round their
    partial sums differently from 1 process, so the losses agree to a bf16 tolerance, not 1e-5;
    and bf16 training follows the fp32 run closely."""
    bf16, fp32 = records(references("bf16"))[0], records(references("fp32"))[0]
    out = tmp_path / "run"
    proc = pretrain_cli(
        token_data,
        out,
        *flags("bf16", stop_at_step=8, eval_every=4, eval_samples=1),
        *cpu_workers(2),
    )
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert "bf16" in output
    losses, _ = records(out)
    assert sorted(losses) == list(range(1, 9))
    # Seen (cpu-tiny, 8 steps): at most 8e-5 apart with AMX, with AVX512-BF16 alone and emulated.
    for step, loss in losses.items():
        assert loss == pytest.approx(bf16[step], rel=1e-3), step
    # Seen: bf16 within 2.4e-4 of fp32 over all 24 steps on the same three kinds of CPU.
    for step in range(1, STEPS + 1):
        assert bf16[step] == pytest.approx(fp32[step], rel=2e-3), step
    assert (
        sum(bf16[s] for s in range(19, 25)) < sum(bf16[s] for s in range(1, 7)) - 0.3
    )  # it learns


def test_logged_loss_is_the_interval_mean_and_survives_a_resume_mid_interval(
    token_data, references, tmp_path
):
    """--log-every 4: each record's loss is the mean of its four steps; a job that ends at step 6
    (logging there) and a resumed one log the same records at 4, 8, ... as one uninterrupted run."""
    every_step, _ = records(references("fp32"))
    whole, out = tmp_path / "whole", tmp_path / "split"
    pretrain(token_data, whole, "fp32", log_every=4)
    pretrain(token_data, out, "fp32", log_every=4, stop_at_step=6)
    launch.resume(out, {})
    losses, _ = records(whole)
    assert sorted(losses) == list(range(4, STEPS + 1, 4))
    for step, loss in losses.items():
        assert loss == sum(every_step[s] for s in range(step - 3, step + 1)) / 4, step
    resumed, _ = records(out)
    assert sorted(resumed) == sorted([*losses, 6])
    assert {s: v for s, v in resumed.items() if s % 4 == 0} == losses


def test_throughput_leaves_out_saves_and_validation(token_data, tmp_path, monkeypatch):
    """A save that takes 2 s between two records is not training time."""
    from tinyllama_cli.train import checkpoint

    real_save = checkpoint.save

    def slow_save(*args, **kwargs):
        time.sleep(2.0)
        return real_save(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "save", slow_save)
    out = tmp_path / "run"
    pretrain(token_data, out, "fp32", max_steps=6, log_every=2, save_every=1, eval_every=0)
    for line in (out / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "tokens_per_sec" in r:
            assert 2 * 8 * 32 / r["tokens_per_sec"] < 2.0, r  # two steps' tokens at the logged rate


def test_validation_logs_each_source_and_their_mix_weighted_mean(token_data, references):
    from tinyllama_cli.data.dataset import PretrainData

    weights = PretrainData(token_data, 32, 1337).weights
    rows = [
        json.loads(line) for line in (references("fp32") / "metrics.jsonl").read_text().splitlines()
    ]
    vals = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in vals] == [12, 24]
    for r in vals:
        per_source = {k.split("/")[1]: v for k, v in r.items() if k.startswith("val_loss/")}
        assert set(per_source) == {"web", "code"}
        assert r["val_loss"] == pytest.approx(
            sum(weights[s] * v for s, v in per_source.items()), rel=1e-12
        )


@pytest.mark.slow
def test_sigterm_to_the_whole_process_group_saves_exits_0_and_resumes_exactly(
    token_data, references, tmp_path
):
    """What SLURM does at a time limit: SIGTERM to every process of the job step at once (the
    launcher, torchrun and both workers). They finish the step, save, exit 0; the resumed run
    is the uninterrupted one."""
    import os

    out = tmp_path / "run"
    proc = pretrain_cli(
        token_data,
        out,
        *flags("fp32"),
        *cpu_workers(2),
        start_new_session=True,
    )
    _wait_for_lines(out / "metrics.jsonl", 3, proc)
    os.killpg(proc.pid, signal.SIGTERM)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert "stopped by SIGTERM" in output
    stopped = json.loads((list_checkpoints(out)[-1] / "state.json").read_text())["step"]
    assert 3 <= stopped < STEPS
    launch.resume(out, {"devices": 1})
    ref_losses, ref_vals = records(references("fp32"))
    losses, vals = records(out)
    assert sorted(losses) == list(range(1, STEPS + 1))
    for step, loss in losses.items():  # 2 workers, then 1: fp32 equal to 1e-5
        assert loss == pytest.approx(ref_losses[step], rel=1e-5, abs=1e-6), step
    assert vals == pytest.approx(ref_vals, rel=1e-5)


@pytest.mark.slow
def test_hsdp_on_four_workers_matches_one_process_and_resumes_at_world_one(
    token_data, references, tmp_path
):
    """--dp-shard 2 over 4 gloo workers: a 2 x 2 mesh (2 replicas, each sharded over 2 workers).
    fp32: HSDP's reduce-scatter then all-reduce changes only the summation order."""
    reference = references("fp32")
    out = tmp_path / "run"
    proc = pretrain_cli(
        token_data,
        out,
        *flags("fp32", stop_at_step=6, eval_every=6, eval_samples=1),
        "--devices",
        "4",
        "--dp-shard",
        "2",
        "--accelerator",
        "cpu",
    )
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    assert "4 cpu worker(s) (HSDP: 2 replicas x 2 shards)" in output
    ref_losses, _ = records(reference)
    losses, _ = records(out)
    assert sorted(losses) == list(range(1, 7))
    for step, loss in losses.items():
        assert loss == pytest.approx(ref_losses[step], rel=1e-5, abs=1e-6), step
    state = json.loads((list_checkpoints(out)[-1] / "state.json").read_text())
    assert state["world_size"] == 4 and state["step"] == 6
    launch.resume(out, {"devices": 1, "stop_at_step": 9})  # the 2 x 2 checkpoint read by 1 worker
    losses, _ = records(out)
    for step in range(7, 10):
        assert losses[step] == pytest.approx(ref_losses[step], rel=1e-4, abs=1e-5), step


def test_dp_shard_must_divide_the_workers(token_data, tmp_path):
    with pytest.raises(UserError, match=r"--dp-shard 3 does not divide the 4 worker\(s\)"):
        launch.pretrain(
            TrainConfig.of(
                data=str(token_data),
                out=str(tmp_path / "run"),
                **{**COMMON, "precision": "fp32"},
                devices=4,
                dp_shard=3,
                accelerator="cpu",
            )
        )
    assert not (tmp_path / "run").exists()


def test_async_save_writes_what_a_synchronous_save_writes(
    token_data, reference, precision, tmp_path
):
    """Training goes on while DCP writes from its staged copy: every checkpoint still holds the
    weights of its own step, and a resume from a background-written one is exact."""
    out = tmp_path / "run"
    pretrain(token_data, out, precision, async_save=True, stop_at_step=15)
    saved = [p.name for p in list_checkpoints(out)]
    assert saved == ["step-00000006", "step-00000012", "step-00000015"]
    assert not list((out / "checkpoints").glob("*.tmp"))
    for name in saved[:2]:
        assert_same_weights(out / "checkpoints" / name, reference / "checkpoints" / name)
        # (not "rng": the process's global generator, which other tests in this process move)
        state, ref = (
            json.loads((run / "checkpoints" / name / "state.json").read_text())
            for run in (out, reference)
        )
        assert state.pop("rng").keys() == ref.pop("rng").keys() and state == ref
    files.remove(out / "checkpoints" / "step-00000015")  # resume from the one written behind
    launch.resume(out, {})
    assert records(out) == records(reference)
    assert_same_weights(out, reference)


@pytest.mark.slow
def test_async_save_on_two_workers_resumes_at_world_one(token_data, references, tmp_path):
    """The background writes' collectives run on their own gloo group beside training's."""
    reference = references("fp32")
    out = tmp_path / "run"
    proc = pretrain_cli(
        token_data,
        out,
        *flags("fp32", stop_at_step=9, save_every=2, keep_last=2, eval_every=12),
        "--async-save",
        *cpu_workers(2),
    )
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert "written in the background" in output
    assert [p.name for p in list_checkpoints(out)] == ["step-00000008", "step-00000009"]
    files.remove(out / "checkpoints" / "step-00000009")
    launch.resume(out, {"devices": 1})
    ref_losses, _ = records(reference)
    losses, _ = records(out)
    for step in range(9, STEPS + 1):
        assert losses[step] == pytest.approx(ref_losses[step], rel=1e-4, abs=1e-5), step


def test_async_save_on_a_torch_without_the_stager_api_is_one_line(
    token_data, tmp_path, monkeypatch
):
    from torch.distributed.checkpoint import staging

    monkeypatch.delattr(staging, "DefaultStager")
    with pytest.raises(UserError, match=r"--async-save needs .*DefaultStager, which this torch"):
        pretrain(token_data, tmp_path / "run", "fp32", async_save=True)
    assert not (tmp_path / "run").exists()
