"""A time-to-loss race on 2 CPU cores: tinyllama vs litgpt pretrain vs transformers' Trainer.

    PYTHONPATH=. python benchmarks/race.py --json out.json \\
        [--litgpt-python .venv-litgpt/bin/python] [--target 6.0] [--repeats 1]

All three train the cpu-small shape (vocab 8192, 4 layers, d 256, 8 heads / 2 KV heads, SwiGLU
704, seq 256) from their own random init on the same tokens: the built-in corpus
(`tinyllama sample-corpus`) tokenized once by `tinyllama prepare-data` with a BPE tokenizer
trained on it, as examples/quickstart.sh does. tinyllama reads the data dir itself; litgpt (a
`litgpt.data.DataModule` defined here, given to the `litgpt pretrain` CLI, with the same
tokenizer.model as its tokenizer_dir) and the Trainer (a torch Dataset) read the very same shard
files, cut into the same seq_len + 1 windows (one every seq_len tokens), in a seeded shuffle.
The hyperparameters are examples/cpu-race.yaml's for all three (batch, lr schedule, AdamW, clip);
each tool keeps its own defaults for the rest: litgpt always torch.compiles and trains in
bf16-mixed, the Trainer takes bf16 autocast (its documented CPU mixed precision) where the CPU
has native bf16, tinyllama's precision is auto. Every tool saves a checkpoint every
`save_every` steps; each tool runs in its own subprocess, one after the other (order rotated per
repeat), and its clock starts when the process is launched, so imports, set-up and compilation
are in the time.

Validation: after a tool has finished (outside its clock), every checkpoint's weights are loaded
into one model (tinyllama_cli.model.Llama, fp32) and scored by one function, `val_loss`, on the
same held-out sequences: `--val-samples` windows of the data dir's val split, chosen as
tinyllama's trainer chooses its own. A cross-check scores the last checkpoint of litgpt and of
the Trainer with their own model classes (litgpt's GPT in its venv, LlamaForCausalLM) on the
first sequences and reports the difference. A checkpoint's time is the newest mtime of its files
minus the launch time; the time to the target is that of the first checkpoint at or below it.
Needs litgpt in a separate venv (`--litgpt-python`; its CLI and tokenizer also need requests
and sentencepiece, which litgpt 0.5.13 does not install):
    python3 -m venv .venv-litgpt && .venv-litgpt/bin/pip install torch==2.13.0 && \\
        echo torch==2.13.0 > /tmp/c.txt && \\
        .venv-litgpt/bin/pip install -c /tmp/c.txt litgpt==0.5.13 requests sentencepiece
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RECIPE = ROOT / "examples" / "cpu-race.yaml"
# A tinyllama entry may carry pretrain flags after a colon: "tinyllama:--compile --num-threads 2".
TOOLS = ("tinyllama", "litgpt", "transformers")
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


# --- the shared token stream (imported by the litgpt and Trainer sides: numpy and torch only) ---


class Windows:
    """A data dir's train (or val) tokens as seq_len + 1 windows, one every seq_len tokens within
    each source (the windows tinyllama's trainer cuts), in a seeded shuffle over all sources."""

    def __init__(self, data_dir: str, seq_len: int, seed: int, split: str = "train"):
        manifest = json.loads((Path(data_dir) / "manifest.json").read_text())
        dtype = np.dtype(manifest["dtype"])
        self.streams, index = [], []
        for s, name in enumerate(sorted(manifest["sources"])):
            shards = manifest["sources"][name]["shards"][split]
            tokens = np.concatenate(
                [np.fromfile(Path(data_dir) / sh["file"], dtype=dtype) for sh in shards]
            )
            self.streams.append(tokens)
            n = (len(tokens) - 1) // seq_len
            index.append(np.stack([np.full(n, s), np.arange(n) * seq_len], axis=1))
        self.index = np.concatenate(index)[
            np.random.default_rng(seed).permutation(sum(map(len, index)))
        ]
        self.seq_len = seq_len

    def __len__(self) -> int:
        return len(self.index)

    def window(self, i: int):
        import torch

        s, start = self.index[i]
        return torch.from_numpy(self.streams[s][start : start + self.seq_len + 1].astype(np.int64))


def _torch_dataset(windows: Windows, item):
    import torch

    class _Data(torch.utils.data.Dataset):
        def __len__(self):
            return len(windows)

        def __getitem__(self, i):
            return item(windows.window(i))

    return _Data()


try:  # the litgpt side: only where litgpt is installed (its own venv)
    from litgpt.data import DataModule as _LitgptDataModule
except ImportError:
    _LitgptDataModule = None

if _LitgptDataModule is not None:
    import torch.utils.data

    class _Loader(torch.utils.data.DataLoader):
        """A plain DataLoader with an (empty) state_dict, so Fabric's checkpoint stores that
        instead of pickling the loader; litgpt's own LitData path has a stateful loader too."""

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    @dataclass
    class RaceTokens(_LitgptDataModule):
        """litgpt DataModule: a tinyllama data dir's shards as `Windows` (same tokens, same cut)."""

        data_dir: str = "data"
        seed: int = 1337
        val_samples: int = 16
        batch_size: int = field(init=False, repr=False, default=1)
        seq_length: int = field(init=False, repr=False, default=256)

        def __post_init__(self) -> None:
            super().__init__()

        def connect(self, tokenizer=None, batch_size: int = 1, max_seq_length=None) -> None:
            if tokenizer is not None:
                assert tokenizer.vocab_size == 8192, tokenizer.vocab_size
            self.batch_size, self.seq_length = batch_size, max_seq_length

        def _loader(self, split: str) -> _Loader:
            windows = Windows(self.data_dir, self.seq_length, self.seed, split)
            data = _torch_dataset(windows, lambda w: w)
            if split == "val":
                data = torch.utils.data.Subset(data, range(min(self.val_samples, len(data))))
            return _Loader(data, batch_size=self.batch_size, shuffle=False, drop_last=True)

        def train_dataloader(self) -> _Loader:
            return self._loader("train")

        def val_dataloader(self) -> _Loader:
            return self._loader("val")


# --- settings --------------------------------------------------------------------------------


def load_recipe(path: Path, overrides: dict) -> dict:
    import yaml

    recipe = yaml.safe_load(path.read_text())
    recipe.update({k: v for k, v in overrides.items() if v is not None})
    return recipe


def native_bf16() -> bool:
    from tinyllama_cli.hardware import cpu_bf16_kind

    return cpu_bf16_kind() is not None


def cpu_line() -> str:
    from tinyllama_cli.hardware import cpu_flags

    model = "unknown CPU"
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    flags = " ".join(f for f in wanted if f in cpu_flags()) or "none of " + " ".join(wanted)
    return f"cpu: {model}, {os.cpu_count()} CPUs; flags: {flags}"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- data --------------------------------------------------------------------------------------


def prepare(work: Path) -> Path:
    """The built-in corpus and its token data dir, as examples/quickstart.sh makes them (kept)."""
    data = work / "data"
    if (data / "manifest.json").is_file():
        return data
    tl = [sys.executable, "-m", "tinyllama_cli"]
    subprocess.run([*tl, "sample-corpus", "--out", str(work / "corpus")], check=True)
    subprocess.run(
        [
            *tl,
            "prepare-data",
            f"slimpajama={work / 'corpus' / 'slimpajama'}",
            f"starcoder={work / 'corpus' / 'starcoder'}",
            "--out",
            str(data),
            "--train-tokenizer",
            "--vocab-size",
            "8192",
            "--exclude-meta",
            "redpajama_set_name=RedPajamaGithub",
            "--val-fraction",
            "0.02",
            "--workers",
            "2",
        ],
        check=True,
    )
    return data


def val_set(data: Path, seq_len: int, seed: int, samples: int):
    """The held-out sequences: tinyllama's trainer's choice of `samples` val windows."""
    import torch

    from tinyllama_cli.data.dataset import PretrainData

    pd = PretrainData(data, seq_len, seed)
    xs, ys = [], []
    for source, windows in pd.validation_windows(samples).items():
        x, y = pd.validation_batch(source, windows, len(windows))
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


# --- the three tools ---------------------------------------------------------------------------


def tinyllama_cmd(r: dict, data: Path, out: Path, recipe_path: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tinyllama_cli",
        "pretrain",
        "--config",
        str(recipe_path),
        "--data",
        str(data),
        "--out",
        str(out),
        "--max-steps",
        str(r["max_steps"]),
        "--save-every",
        str(r["save_every"]),
    ]


def litgpt_cmd(r: dict, data: Path, out: Path, litgpt_python: str, bf16: bool) -> list[str]:
    import yaml

    tok_dir = out.parent / "litgpt-tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(data / "tokenizer.model", tok_dir / "tokenizer.model")
    seq, batch = r["seq_len"], r["global_batch_size"]
    config = {
        "model_name": "cpu-small",
        "model_config": {
            "name": "cpu-small",
            "block_size": seq,
            "vocab_size": 8192,
            "padded_vocab_size": 8192,
            "n_layer": 4,
            "n_embd": 256,
            "n_head": 8,
            "n_query_groups": 2,
            "head_size": 32,
            "intermediate_size": 704,
            "bias": False,
            "norm_class_name": "RMSNorm",
            "norm_eps": 1e-5,
            "mlp_class_name": "LLaMAMLP",
            "rotary_percentage": 1.0,
            "parallel_residual": False,
            "rope_base": 10000,
        },
        "out_dir": str(out),
        # litgpt's own default on a CPU is bf16-mixed; where bf16 is emulated that is slower than
        # fp32, so there it gets 32-true.
        "precision": "bf16-mixed" if bf16 else "32-true",
        "data": {
            "class_path": "race.RaceTokens",
            "init_args": {"data_dir": str(data), "seed": r.get("seed", 1337)},
        },
        "tokenizer_dir": str(tok_dir),
        "train": {
            "save_interval": r["save_every"],
            "log_interval": r["log_every"],
            "global_batch_size": batch,
            "micro_batch_size": r["micro_batch_size"],
            "max_tokens": r["max_steps"] * batch * seq,
            "max_seq_length": seq,
            "lr_warmup_steps": r["warmup_steps"],
            "max_norm": r["grad_clip"],
            "min_lr": r["min_lr"],
            "tie_embeddings": False,
        },
        "eval": {
            "interval": 10**9,
            "max_iters": 2,
            "initial_validation": False,
            "final_validation": False,
        },
        "optimizer": {
            "class_path": "torch.optim.AdamW",
            "init_args": {
                "lr": r["lr"],
                "weight_decay": r["weight_decay"],
                "betas": [0.9, 0.95],
            },
        },
        "devices": 1,
        "num_nodes": 1,
        "logger_name": "csv",
        "seed": r.get("seed", 1337),
    }
    path = out.parent / "litgpt-pretrain.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    litgpt = Path(litgpt_python).parent / "litgpt"
    return [str(litgpt), "pretrain", "--config", str(path)]


def transformers_cmd(r: dict, data: Path, out: Path, recipe_path: Path, bf16: bool) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "--trainer-worker",
        str(out),
        "--data",
        str(data),
        "--recipe",
        str(recipe_path),
        "--max-steps",
        str(r["max_steps"]),
        "--save-every",
        str(r["save_every"]),
    ] + (["--trainer-bf16"] if bf16 else [])


def trainer_worker(out: Path, data: Path, r: dict, bf16: bool) -> None:
    """transformers' Trainer on LlamaForCausalLM of the cpu-small shape (the Trainer's loop, its
    AdamW (adamw_torch_fused), its cosine_with_min_lr schedule)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    from tinyllama_cli.config import get_preset
    from tinyllama_cli.formats.hf import hf_config_dict

    cfg = get_preset(r["model"]).replace(vocab_size=8192, block_size=r["seq_len"])
    torch.manual_seed(r.get("seed", 1337))
    model = LlamaForCausalLM(LlamaConfig(**hf_config_dict(cfg)))
    windows = Windows(str(data), r["seq_len"], r.get("seed", 1337))
    # shift_labels: the loss predicts window[1:] from window[:-1], all seq_len positions (the
    # Trainer's default shift would drop the last target of every window).
    dataset = _torch_dataset(
        windows, lambda w: {"input_ids": w[:-1], "labels": w[1:], "shift_labels": w[1:]}
    )
    accumulation = r["global_batch_size"] // r["micro_batch_size"]
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=r["micro_batch_size"],
        gradient_accumulation_steps=accumulation,
        max_steps=r["max_steps"],
        learning_rate=r["lr"],
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr": r["min_lr"]},
        warmup_steps=r["warmup_steps"],
        weight_decay=r["weight_decay"],
        adam_beta1=0.9,
        adam_beta2=0.95,
        max_grad_norm=r["grad_clip"],
        bf16=bf16,
        use_cpu=True,
        save_strategy="steps",
        save_steps=r["save_every"],
        logging_steps=r["log_every"],
        eval_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        seed=r.get("seed", 1337),
        disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=dataset).train()


# --- running, checkpoints, evaluation --------------------------------------------------------


def run_tool(name: str, cmd: list[str], env: dict, log: Path, timeout: float) -> dict:
    start = time.time()
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
    end = time.time()
    if rc:
        print(f"  {name} exited {rc}; the end of {log}:\n" + "".join(log.open().readlines()[-25:]))
    return {"start": start, "end": end, "returncode": rc}


def checkpoints(tool: str, out: Path) -> list[tuple[int, Path]]:
    if tool.startswith("tinyllama"):
        from tinyllama_cli import rundir

        return [(rundir.checkpoint_step(p), p) for p in rundir.list_checkpoints(out)]
    if tool == "litgpt":
        found = [(int(p.parent.name.split("-")[1]), p) for p in out.glob("step-*/lit_model.pth")]
    else:
        found = [(int(p.name.split("-")[1]), p) for p in out.glob("checkpoint-*")]
    return sorted(found)


def written_at(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return max(p.stat().st_mtime for p in files)


def litgpt_to_native(state: dict, n_layer: int, n_head: int, n_kv: int, head_dim: int) -> dict:
    """litgpt GPT tensor names -> tinyllama's; litgpt's fused qkv is [q; k; v] along its rows."""
    out = {
        "tok_embeddings.weight": state["transformer.wte.weight"],
        "norm.weight": state["transformer.ln_f.weight"],
        "output.weight": state["lm_head.weight"],
    }
    q, kv = n_head * head_dim, n_kv * head_dim
    for i in range(n_layer):
        p, n = f"transformer.h.{i}.", f"layers.{i}."
        wq, wk, wv = state[p + "attn.qkv.weight"].split((q, kv, kv))
        out |= {
            n + "attention_norm.weight": state[p + "norm_1.weight"],
            n + "attention.wq.weight": wq,
            n + "attention.wk.weight": wk,
            n + "attention.wv.weight": wv,
            n + "attention.wo.weight": state[p + "attn.proj.weight"],
            n + "ffn_norm.weight": state[p + "norm_2.weight"],
            n + "feed_forward.w1.weight": state[p + "mlp.fc_1.weight"],
            n + "feed_forward.w3.weight": state[p + "mlp.fc_2.weight"],
            n + "feed_forward.w2.weight": state[p + "mlp.proj.weight"],
        }
    return out


def load_native(tool: str, path: Path, config):
    """A checkpoint of any of the three tools as one tinyllama Llama in fp32, eval mode."""
    import torch

    from tinyllama_cli.load import load_model
    from tinyllama_cli.model import empty_model

    if tool != "litgpt":
        return load_model(path).model
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["model"]
    state = {k.removeprefix("_orig_mod."): v.float() for k, v in state.items()}
    c = config
    native = litgpt_to_native(state, c.n_layer, c.n_head, c.n_kv_head, c.head_dim)
    model = empty_model(c, dtype=torch.float32)
    model.load_state_dict(native, strict=True)
    return model.eval()


def val_loss(model, x, y, batch: int = 16) -> float:
    """The one scoring function: mean next-token cross-entropy over every target of (x, y)."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb, yb = x[i : i + batch], y[i : i + batch]
            n = int((yb != -100).sum())
            total += float(model(xb, targets=yb)) * n
            count += n
    return total / count


def litgpt_own_loss(ckpt: Path, val_file: Path) -> float:
    """(litgpt venv) litgpt's GPT and its chunked_cross_entropy on the saved val sequences."""
    import torch
    from litgpt import GPT, Config
    from litgpt.utils import chunked_cross_entropy

    model = GPT(Config.from_file(ckpt.parent / "model_config.yaml"))
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["model"]
    model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in state.items()})
    xy = np.load(val_file)
    with torch.no_grad():
        logits = model(torch.from_numpy(xy["x"]))
        return float(chunked_cross_entropy(logits, torch.from_numpy(xy["y"])))


def trainer_own_loss(ckpt: Path, x, y) -> float:
    import torch
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
    with torch.no_grad():
        return float(model(input_ids=x, labels=y, shift_labels=y).loss)


# --- summary ------------------------------------------------------------------------------------


def summarise(run: dict, target: float, tokens_per_step: int) -> dict:
    """Time and tokens to the target, start-up (the checkpoint times' line back to step 0) and the
    steady training rate, from one tool's (step, seconds, loss) points."""
    pts = run["points"]
    hit = next((p for p in pts if p["loss"] <= target), None)
    out = {
        "tool": run["tool"],
        "repeat": run["repeat"],
        "final_loss": pts[-1]["loss"] if pts else None,
    }
    out["wall_s"] = run["end"] - run["start"]
    if hit:
        out |= {"target_s": hit["s"], "target_step": hit["step"]}
        out["target_tokens"] = hit["step"] * tokens_per_step
    if len(pts) >= 3:
        steps = np.array([p["step"] for p in pts], float)
        secs = np.array([p["s"] for p in pts], float)
        slope, intercept = np.polyfit(steps, secs, 1)
        out["startup_s"] = float(intercept)
        out["tok_s"] = float(tokens_per_step / slope)
    return out


def print_table(rows: list[dict], target: float) -> None:
    w = max([18] + [len(r["tool"]) + 2 for r in rows])
    head = (
        f"{'tool':<{w}}{'rep':>4}{'to target s':>13}{'step':>6}{'tokens':>11}{'start-up s':>12}"
        f"{'tok/s':>8}{'final loss':>12}{'wall s':>8}"
    )
    print(f"\ntarget val loss {target}\n{head}")
    for r in rows:
        t = f"{r['target_s']:.1f}" if "target_s" in r else "not reached"
        print(
            f"{r['tool']:<{w}}{r['repeat']:>4}{t:>13}{r.get('target_step', '-'):>6}"
            f"{r.get('target_tokens', 0):>11,}{r.get('startup_s', float('nan')):>12.1f}"
            f"{r.get('tok_s', float('nan')):>8,.0f}{r['final_loss'] or float('nan'):>12.3f}"
            f"{r['wall_s']:>8.1f}"
        )
    by_tool = {}
    for r in rows:
        if "target_s" in r:
            by_tool.setdefault(r["tool"], []).append(r["target_s"])
    if len(by_tool) > 1:
        med = {t: statistics.median(v) for t, v in by_tool.items()}
        best = min(med, key=med.get)
        print("median time to target: " + ", ".join(f"{t} {s:.1f} s" for t, s in med.items()))
        if "tinyllama" in med:
            others = {t: s for t, s in med.items() if t != "tinyllama"}
            print(
                "tinyllama vs "
                + ", ".join(f"{t}: {s / med['tinyllama']:.2f}x" for t, s in others.items())
                + f" (time ratio, >1 = tinyllama faster); fastest: {best}"
            )


def plot(runs: list[dict], target: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"tinyllama": "tab:blue", "litgpt": "tab:purple", "transformers": "tab:orange"}
    variants = iter(["tab:cyan", "tab:green", "tab:olive", "tab:red"])
    for run in runs:
        if run["tool"] not in colors:
            colors[run["tool"]] = next(variants, "black")
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    seen = set()
    for run in runs:
        pts = run["points"]
        label = None if run["tool"] in seen else run["tool"]
        seen.add(run["tool"])
        style = "-" if run["repeat"] == 0 else "--"
        ax.plot(
            [p["s"] for p in pts],
            [p["loss"] for p in pts],
            style,
            marker="o",
            ms=3,
            color=colors[run["tool"]],
            label=label,
        )
        hit = next((q for q in pts if q["loss"] <= target), None)
        if hit:  # the checkpoint that reached the target
            ax.plot(hit["s"], hit["loss"], "*", ms=12, color=colors[run["tool"]])
    ax.axhline(target, color="gray", ls=":", lw=1)
    ax.set_xlim(left=0)
    ax.text(0, target, f" target {target}", va="bottom", color="gray", fontsize=8)
    ax.set_xlabel("wall seconds since launch (start-up and compile included)")
    ax.set_ylabel("validation loss (shared eval, fp32)")
    ax.set_title(title, fontsize=9)
    losses = [p["loss"] for r in runs for p in r["points"]]
    if losses:
        ax.set_ylim(top=min(9.5, max(losses) + 0.2))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", help="write the results (curves included) here")
    p.add_argument("--work", default="/tmp/tinyllama-race", help="corpus, data and runs")
    p.add_argument("--recipe", default=str(RECIPE), help="the shared hyperparameters")
    p.add_argument("--tools", default=",".join(TOOLS))
    p.add_argument("--target", type=float, default=6.0, help="validation loss to reach")
    p.add_argument("--max-steps", type=int, help="default: the recipe's")
    p.add_argument("--save-every", type=int, help="default: the recipe's")
    p.add_argument("--repeats", type=int, default=1, help="rounds; the order rotates per round")
    p.add_argument("--val-samples", type=int, default=128, help="held-out sequences of seq_len")
    p.add_argument("--timeout", type=float, default=600, help="seconds per tool run")
    p.add_argument("--litgpt-python", default=str(ROOT / ".venv-litgpt" / "bin" / "python"))
    p.add_argument("--plot", default=str(HERE / "race.png"))
    p.add_argument(
        "--from-json", nargs="+", help="re-summarise and re-plot --json file(s) (no training)"
    )
    # worker modes (internal)
    p.add_argument("--trainer-worker", help=argparse.SUPPRESS)
    p.add_argument("--trainer-bf16", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--litgpt-eval", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    overrides = {"max_steps": args.max_steps, "save_every": args.save_every}

    if args.litgpt_eval:
        print(
            json.dumps(
                {"loss": litgpt_own_loss(Path(args.litgpt_eval[0]), Path(args.litgpt_eval[1]))}
            )
        )
        return
    if args.trainer_worker:
        r = load_recipe(Path(args.recipe), overrides)
        trainer_worker(Path(args.trainer_worker), Path(args.data), r, args.trainer_bf16)
        return
    if args.from_json:
        files = [json.loads(Path(f).read_text()) for f in args.from_json]
        saved, tps = files[0], files[0]["tokens_per_step"]
        runs, rounds = [], 0
        for f in files:  # each file's rounds after the previous files'
            runs += [{**run, "repeat": run["repeat"] + rounds} for run in f["runs"]]
            rounds += 1 + max(run["repeat"] for run in f["runs"])
        rows = [summarise(run, args.target, tps) for run in runs]
        print_table(rows, args.target)
        plot(runs, args.target, Path(args.plot), saved["title"])
        if args.json:
            Path(args.json).write_text(
                json.dumps({**saved, "target": args.target, "rows": rows, "runs": runs}, indent=1)
            )
        return

    import torch

    from tinyllama_cli.config import get_preset

    recipe_path = Path(args.recipe)
    r = load_recipe(recipe_path, overrides)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    bf16 = native_bf16()
    load_before = load_average()
    print(cpu_line())
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average before: "
        f"{' '.join(map(str, load_before))}"
    )
    data = prepare(work)
    cfg = get_preset(r["model"]).replace(vocab_size=8192, block_size=r["seq_len"])
    x, y = val_set(data, r["seq_len"], r.get("seed", 1337), args.val_samples)
    val_file = work / "val-check.npz"
    np.savez(val_file, x=x[:8].numpy(), y=y[:8].numpy())
    tokens_per_step = r["global_batch_size"] * r["seq_len"]
    print(
        f"recipe {recipe_path.name}: {r['max_steps']} steps x {tokens_per_step:,} tokens, lr "
        f"{r['lr']} -> {r['min_lr']} (cosine, warmup {r['warmup_steps']}), checkpoint every "
        f"{r['save_every']}; val: {len(x)} x {r['seq_len']} tokens; native bf16: {bf16}"
    )
    tools = args.tools.split(",")
    env = {**os.environ, **OFFLINE}
    litgpt_env = {**env, "PYTHONPATH": str(HERE)}
    runs = []
    for rep in range(args.repeats):
        order = tools[rep % len(tools) :] + tools[: rep % len(tools)]
        for tool in order:
            out = work / f"runs-{rep}" / tool.replace(":", "").replace(" ", "").replace("-", "")
            shutil.rmtree(out, ignore_errors=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            if tool.startswith("tinyllama"):
                cmd, e = tinyllama_cmd(r, data, out, recipe_path), env
                cmd += tool.partition(":")[2].split()
            elif tool == "litgpt":
                cmd, e = litgpt_cmd(r, data, out, args.litgpt_python, bf16), litgpt_env
            else:
                cmd, e = transformers_cmd(r, data, out, recipe_path, bf16), env
            print(f"round {rep + 1}: {tool} ...", flush=True)
            run = {"tool": tool, "repeat": rep, "command": cmd}
            run["load_before"] = load_average()
            run |= run_tool(tool, cmd, e, out.parent / f"{out.name}.log", args.timeout)
            run["load_after"] = load_average()
            points = []
            for step, ckpt in checkpoints(tool, out):
                model = load_native(tool, ckpt, cfg)
                points.append(
                    {
                        "step": step,
                        "s": written_at(ckpt) - run["start"],
                        "loss": val_loss(model, x, y),
                    }
                )
            run["points"] = points
            if points:
                last = checkpoints(tool, out)[-1][1]
                shared = val_loss(load_native(tool, last, cfg), x[:8], y[:8])
                own = None
                if tool == "litgpt":
                    res = subprocess.run(
                        [args.litgpt_python, __file__, "--litgpt-eval", str(last), str(val_file)],
                        env=litgpt_env,
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    own = json.loads(res.stdout.strip().splitlines()[-1])["loss"]
                elif tool == "transformers":
                    own = trainer_own_loss(last, x[:8], y[:8])
                run["cross_check"] = {"shared": shared, "own": own}
                print(
                    f"  load {run['load_before'][0]} -> {run['load_after'][0]}; "
                    f"{len(points)} checkpoints, last loss {points[-1]['loss']:.3f} at "
                    f"{points[-1]['s']:.0f} s; cross-check on 8 sequences: shared {shared:.4f}"
                    + (f", {tool}'s own model {own:.4f}" if own is not None else "")
                )
            runs.append(run)
    load_after = load_average()
    print(f"load average after: {' '.join(map(str, load_after))}")
    rows = [summarise(run, args.target, tokens_per_step) for run in runs]
    print_table(rows, args.target)
    title = (
        f"cpu-small to val loss {args.target} on {os.cpu_count()} CPU cores "
        f"({time.strftime('%Y-%m-%d')}, load {load_before[0]} -> {load_after[0]})"
    )
    plot(runs, args.target, Path(args.plot), title)
    print(f"plot: {args.plot}")
    if args.json:
        result = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "cpu": cpu_line(),
            "torch": torch.__version__,
            "native_bf16": bf16,
            "load_before": load_before,
            "load_after": load_after,
            "recipe": r,
            "tokens_per_step": tokens_per_step,
            "val_sequences": len(x),
            "target": args.target,
            "title": title,
            "rows": rows,
            "runs": runs,
        }
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
