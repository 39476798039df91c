"""prepare-data throughput against a TinyLlama-style baseline, side by side in one run.

    PYTHONPATH=. python benchmarks/bench_prepare.py --mb 20 --files 8 --repeats 3 [--json]
        [--before DIR]

The corpus is SlimPajama-shaped (`*.jsonl.zst` files of `{"text", "meta"}` lines) made from the
Python standard library's sources (deterministic, no download). The tokenizer is a Llama-style
BPE trained on a sample of it (`--vocab-size`), or pass `--tokenizer` (e.g. Llama 2's
tokenizer.model).

Variants, each run in a fresh process, interleaved, `--repeats` times (medians reported):
- baseline: what TinyLlama's `scripts/prepare_slimpajama.py` does per line: `json.loads`, one
  `SentencePieceProcessor.encode` per document, BOS/EOS added, `np.array(ids, uint16)` appended
  to an output file; one process. (The original parses each line twice; this does it once.)
- prepare-data with `--workers 1` and `--workers 2` (`tinyllama_cli.data.prepare.prepare_data`),
  including its shard assembly and manifest.
- the same with `--decontaminate` (`+decon`) against an eval file of `--eval-texts` texts (the
  size of hellaswag's validation texts): 40-word windows, 1 in 1000 cut from the middle of one of
  the corpus's documents (so a few are dropped), the rest random words of the corpus.
  `decon cost` = its median seconds over the plain run's, minus 1; `index s` = the median
  seconds to build the eval-side index once (timed apart, before the run), and `w/o index` the
  cost without that fixed part: what decontamination adds per document.
- with `--before DIR` (a checkout of another version), `before:workers=N` runs that version's
  package on the same corpus, interleaved with the rest.
Tokens/s = tokens written / wall seconds of the work (interpreter start and imports excluded,
worker start-up included); `x baseline` and `x prev` (2 workers over 1, like over like) are
ratios of medians.
Tokens/CPU-s divides by user+system CPU time of the process and its workers instead: on a
machine shared with other jobs it shows the work done per core, which wall time cannot.
Peak memory = the larger max RSS of the process and of its workers.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_corpus(root: Path, mb: float, files: int) -> list[Path]:
    """`files` .jsonl.zst files holding about `mb` million characters of stdlib sources."""
    import orjson
    import zstandard

    paths = sorted(
        glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "**", "*.py"), recursive=True)
    )
    docs, total = [], 0
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if text.strip():
            docs.append(text)
            total += len(text)
        if total >= mb * 1e6:
            break
    out = []
    for i in range(files):
        data = b"".join(
            orjson.dumps({"text": d, "meta": {"redpajama_set_name": "RedPajamaGithub"}}) + b"\n"
            for d in docs[i::files]
        )
        path = root / f"example_train_{i}.jsonl.zst"
        path.write_bytes(zstandard.ZstdCompressor(level=3).compress(data))
        out.append(path)
    return out


def run_baseline(files: list[str], tokenizer: str, out_dir: str) -> int:
    import io

    import numpy as np
    import sentencepiece as spm
    import zstandard

    sp = spm.SentencePieceProcessor(model_file=tokenizer)
    bos, eos = sp.bos_id(), sp.eos_id()
    n = 0
    with open(os.path.join(out_dir, "baseline.bin"), "wb") as out:
        for path in files:
            with open(path, "rb") as fh:
                stream = io.TextIOWrapper(
                    zstandard.ZstdDecompressor().stream_reader(fh), encoding="utf-8"
                )
                for row in stream:
                    text = json.loads(row)["text"]
                    arr = np.array([bos, *sp.encode(text), eos], dtype=np.uint16)
                    out.write(arr.tobytes())
                    n += len(arr)
    return n


def make_eval_file(root: Path, files: list[Path], texts: int) -> Path:
    """`texts` 40-word eval texts, one a line: 1 in 1000 cut from the middle of a corpus
    document, the rest random words of the corpus."""
    import random

    import orjson
    import zstandard

    docs = [
        orjson.loads(line)["text"]
        for f in files
        for line in zstandard.ZstdDecompressor()
        .decompress(f.read_bytes(), max_output_size=1 << 31)
        .splitlines()
    ]
    words = [w for d in docs[:200] for w in d.split()]
    rng = random.Random(0)
    lines = []
    for i in range(texts):
        if i % 1000 == 0:
            doc = docs[rng.randrange(len(docs))].split()
            start = len(doc) // 2
            lines.append(" ".join(doc[start : start + 40]))
        else:
            lines.append(" ".join(rng.choices(words, k=40)))
    path = root / "eval.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_prepare(
    files: list[str], tokenizer: str, out_dir: str, workers: int, eval_file: str | None
) -> int:
    from tinyllama_cli.data.prepare import PrepareOptions, prepare_data

    extra = {"decontaminate": (Path(eval_file),)} if eval_file else {}
    opts = PrepareOptions(
        out=Path(out_dir) / "data", tokenizer=Path(tokenizer), workers=workers, **extra
    )
    result = prepare_data([f"slim={f}" for f in files], opts)
    return sum(sum(s["tokens"].values()) for s in result.manifest["sources"].values())


def child(args: argparse.Namespace) -> None:
    """One measurement in this fresh process; prints one JSON line."""
    files = json.loads(args.child_files)
    index_s = _index_seconds(args.child_eval) if args.child.endswith("+decon") else 0.0
    with tempfile.TemporaryDirectory(dir=args.tmp) as out_dir:
        cpu0 = _cpu_seconds()
        t0 = time.perf_counter()
        if args.child == "baseline":
            tokens = run_baseline(files, args.tokenizer, out_dir)
        else:
            workers = int(args.child.split("=")[1].removesuffix("+decon"))
            eval_file = args.child_eval if args.child.endswith("+decon") else None
            tokens = run_prepare(files, args.tokenizer, out_dir, workers, eval_file)
        seconds = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0
    peak = (
        max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        )
        * 1024
    )
    print(
        json.dumps(
            {
                "tokens": tokens,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "peak_rss": peak,
                "index_s": index_s,
            }
        )
    )


def _index_seconds(eval_file: str) -> float:
    """Seconds to build the eval-side index once (a fixed cost per run, inside `seconds` too),
    timed before the run so the per-document cost can be told from it."""
    from tinyllama_cli.data.prepare.decontaminate import build_index

    t0 = time.perf_counter()
    build_index([Path(eval_file)], 13)
    return time.perf_counter() - t0


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished workers."""
    return sum(
        getattr(resource.getrusage(who), field)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        for field in ("ru_utime", "ru_stime")
    )


def measure(
    variant: str, files: list[Path], tokenizer: Path, tmp: str, eval_file: Path, before: str | None
) -> dict:
    root, _, child_variant = variant.rpartition(":")
    cmd = [
        sys.executable,
        __file__,
        "--child",
        child_variant,
        "--child-files",
        json.dumps([str(f) for f in files]),
        "--tokenizer",
        str(tokenizer),
        "--tmp",
        tmp,
        "--child-eval",
        str(eval_file),
    ]
    package = before if root == "before" else str(ROOT)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [package, os.environ.get("PYTHONPATH")])),
    )
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def train(files: list[Path], vocab_size: int, path: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from tinyllama_cli.data.prepare.tokenizer_training import tokenizer_sample
    from tinyllama_cli.data.sources import ReadOptions, resolve_sources
    from tinyllama_cli.tokenizer import train_tokenizer

    sample = tokenizer_sample(resolve_sources([str(f) for f in files]), ReadOptions(), 8_000_000)
    train_tokenizer(sample, vocab_size, path)
    return path


def cpu_info() -> dict:
    """The CPU's model and the vector flags that matter here (from /proc/cpuinfo, on Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": "unknown", "flags": []}
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in text.splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")),
        [],
    )
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "sha_ni")
    return {"model": model, "flags": [f for f in wanted if f in flags]}


def report(info: dict) -> None:
    print(
        f"corpus: {info['corpus_mb']} M chars of Python stdlib source in {info['files']} "
        ".jsonl.zst files; "
        f"tokenizer: {info['tokenizer']}; {info['repeats']} interleaved repeats; {info['cpus']} "
        "CPUs"
    )
    print(
        f"cpu: {info['cpu']['model']}; flags: {' '.join(info['cpu']['flags']) or '-'}; "
        f"eval file: {info['eval_texts']:,} texts"
    )
    print(
        f"{'variant':<22}{'tokens':>12}{'median s':>10}{'tokens/s':>14}{'x baseline':>12}"
        f"{'x prev':>8}{'decon cost':>12}{'index s':>9}{'w/o index':>11}{'tokens/CPU-s':>14}"
        f"{'peak MB':>9}"
    )
    for r in info["rows"]:
        prev = f"{r['vs_previous']:.2f}" if r["vs_previous"] else "-"
        decon = r.get("decon_cost") is not None
        cost = f"{r['decon_cost']:+.1%}" if decon else "-"
        per_doc = f"{r['decon_cost_per_doc']:+.1%}" if decon else "-"
        index = f"{r['index_s']:.2f}" if decon else "-"
        print(
            f"{r['variant']:<22}{r['tokens']:>12,}{r['median_s']:>10.2f}{r['tokens_per_s']:>14,.0f}"
            f"{r['vs_baseline']:>12.2f}{prev:>8}{cost:>12}{index:>9}{per_doc:>11}"
            f"{r['tokens_per_cpu_s']:>14,.0f}{r['peak_rss_mb']:>9.0f}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mb", type=float, default=20.0, help="corpus size in millions of characters")
    p.add_argument("--files", type=int, default=8, help="number of .jsonl.zst files")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", default="1,2", help="worker counts to measure, comma-separated")
    p.add_argument(
        "--vocab-size", type=int, default=8000, help="vocabulary of the trained tokenizer"
    )
    p.add_argument("--tokenizer", help="a SentencePiece .model to use instead of training one")
    p.add_argument(
        "--eval-texts",
        type=int,
        default=40_000,
        help="texts in the --decontaminate eval file (hellaswag validation: ~40k)",
    )
    p.add_argument("--before", help="a checkout of another version to run side by side")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-eval", help=argparse.SUPPRESS)
    p.add_argument("--child-files", help=argparse.SUPPRESS)
    p.add_argument("--tmp", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        files = make_corpus(Path(tmp), args.mb, args.files)
        tokenizer = (
            Path(args.tokenizer)
            if args.tokenizer
            else train(files, args.vocab_size, Path(tmp) / "tok.model")
        )
        eval_file = make_eval_file(Path(tmp), files, args.eval_texts)
        workers = args.workers.split(",")
        variants = (
            ["baseline"]
            + [f"workers={w}{d}" for w in workers for d in ("", "+decon")]
            + ([f"before:workers={w}" for w in workers] if args.before else [])
        )
        runs: dict[str, list[dict]] = {v: [] for v in variants}
        for _ in range(args.repeats):
            for v in variants:  # interleaved: machine noise hits every variant alike
                runs[v].append(measure(v, files, tokenizer, tmp, eval_file, args.before))
    counts = {r["tokens"] for v, rs in runs.items() for r in rs if "+decon" not in v}
    if len(counts) != 1:
        raise SystemExit(f"the variants wrote different numbers of tokens: {counts}")
    rows = []
    for v, rs in runs.items():
        rows.append(
            {
                "variant": v,
                "tokens": rs[0]["tokens"],
                "median_s": statistics.median(r["seconds"] for r in rs),
                "tokens_per_s": statistics.median(r["tokens"] / r["seconds"] for r in rs),
                "tokens_per_cpu_s": statistics.median(r["tokens"] / r["cpu_seconds"] for r in rs),
                "peak_rss_mb": max(r["peak_rss"] for r in rs) / 2**20,
                "index_s": statistics.median(r["index_s"] for r in rs),
            }
        )
    by_name = {r["variant"]: r for r in rows}
    for r in rows:
        r["vs_baseline"] = r["tokens_per_s"] / rows[0]["tokens_per_s"]
        plain = r["variant"].removesuffix("+decon")
        decon = r["variant"].endswith("+decon")
        r["decon_cost"] = r["median_s"] / by_name[plain]["median_s"] - 1 if decon else None
        r["decon_cost_per_doc"] = (
            (r["median_s"] - r["index_s"]) / by_name[plain]["median_s"] - 1 if decon else None
        )
        one = r["variant"].replace(f"workers={workers[-1]}", f"workers={workers[0]}")
        r["vs_previous"] = (
            r["tokens_per_s"] / by_name[one]["tokens_per_s"]
            if one != r["variant"] and one in by_name
            else None
        )
    info = {
        "corpus_mb": args.mb,
        "files": args.files,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "cpu": cpu_info(),
        "eval_texts": args.eval_texts,
        "tokenizer": args.tokenizer or f"trained BPE, vocab {args.vocab_size}",
        "rows": rows,
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        report(info)


if __name__ == "__main__":
    main()
