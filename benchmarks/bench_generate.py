"""Generation speed: tinyllama's KV-cache decoder against transformers' `generate`, same weights.

    PYTHONPATH=$PWD python benchmarks/bench_generate.py --preset cpu-small --preset cpu-bench \
        --batch-sizes 1,8 --prompt-len 32 --new-tokens 64 --repeats 5 --threads 2

Both sides get the same randomly initialised model (ours converted with `formats/hf.py`'s name
map into `LlamaForCausalLM`), the same dtype, the same thread count and allocator, the same
prompts (random token ids, equal lengths) and decode greedily for exactly --new-tokens tokens
(EOS ignored) with their KV cache: ours `generate.generate_tokens` (a preallocated cache),
transformers' `model.generate(do_sample=False)` (its default DynamicCache). Timed calls are
interleaved (ours, theirs, ours, ...) after one warm-up each; the table gives medians of
new tokens per second (batch x new tokens / wall time, prefill included) and their ratio.
`same` says whether the two produced identical tokens (random weights can have near-ties, so
a mismatch there is possible and not an error; tests/test_generate.py checks parity on a
trained model). `compiled` is ours again with `generate --compile`'s decoder (decode_step.py:
one compiled graph per step over a static cache, compiled in the warm-up, not timed), in
inductor's default mode or, with `--compile-mode max-autotune`, with weights frozen into the
graph and inductor's own GEMM kernels.

With `--target DIR --draft DIR` it runs the contest of issue 20 instead, on trained models at
batch 1: the same text prompts (encoded once, BOS first), greedy, exactly --new-tokens each,
one row per contestant, every contestant once per repeat in turn (interleaved), medians:

    tinyllama      plain greedy, --draft (K tokens a step), --prompt-lookup N, each of the plain
                   and prompt-lookup ones eager, --compile and --compile-mode max-autotune
    transformers   generate, assisted generation with the same draft (`assistant_model=`),
                   prompt lookup (`prompt_lookup_num_tokens=N`)
    llama.cpp      the target exported with `convert --to gguf`, F32 and F16 (needs
                   `pip install llama-cpp-python`; rows are left out without it)

    PYTHONPATH=$PWD python benchmarks/bench_generate.py --target /tmp/h20-models/target \
        --draft /tmp/h20-models/draft --new-tokens 128 --repeats 5 --threads 1

The models (outside the repo): the README quickstart's run (cpu-small, 300 steps) is the
target; the draft is trained on the same data dir with the same tokenizer:

    tinyllama pretrain --config benchmarks/draft-cpu-small.yaml --data quickstart/data \
        --out /tmp/h20-models/draft --mix slimpajama=0.7,starcoder=0.3 --max-steps 300 \
        --warmup-steps 30

HF and GGUF copies are made with `tinyllama convert` into DIR-hf/ and DIR-f32.gguf /
DIR-f16.gguf beside the target when missing. `same` says whether a row's tokens equal
tinyllama's plain greedy tokens; `accept` is the share of drafted tokens accepted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def build(preset: str, dtype: torch.dtype, seed: int = 0):
    import transformers

    from tinyllama_cli.config import get_preset
    from tinyllama_cli.formats.hf import hf_config_dict, native_to_hf_state_dict
    from tinyllama_cli.model import Llama

    config = get_preset(preset)
    torch.manual_seed(seed)
    ours = Llama(config).to(dtype).eval()
    # as `tinyllama generate` loads it (q/k/v fused, input-major weights); state_dict unchanged
    from tinyllama_cli.generate import prepare_for_decoding

    prepare_for_decoding(ours)
    hf_config = transformers.LlamaConfig(**hf_config_dict(config))
    hf = transformers.LlamaForCausalLM(hf_config).to(dtype).eval()
    missing, unexpected = hf.load_state_dict(
        native_to_hf_state_dict(ours.state_dict()), strict=False
    )
    assert not unexpected and all("rotary" in k for k in missing), (missing, unexpected)
    hf.generation_config.eos_token_id = None  # exactly max_new_tokens on both sides
    hf.generation_config.pad_token_id = 0
    return config, ours, hf


def run_ours(
    model, prompts: torch.Tensor, new_tokens: int, decoder=None
) -> tuple[float, torch.Tensor]:
    from tinyllama_cli.generate import SamplingParams, generate_tokens

    params = SamplingParams(max_new_tokens=new_tokens, temperature=0.0, ignore_eos=True)
    t0 = time.perf_counter()
    result = generate_tokens(model, prompts.tolist(), params, decoder=decoder)
    return time.perf_counter() - t0, torch.tensor(result.tokens)


def run_hf(model, prompts: torch.Tensor, new_tokens: int) -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            prompts,
            attention_mask=torch.ones_like(prompts),
            do_sample=False,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
        )
    return time.perf_counter() - t0, out[:, prompts.size(1) :]


@torch.inference_mode()
def weights_floor(model, batch: int, steps: int) -> float:
    """Seconds for `steps` decode steps' matrix products alone: the fused q/k/v, wo, gate, up
    and down projections of every layer and the output head, on random activations, nothing else
    (no norms, RoPE, attention, sampling or Python around them).

    At batch 1 these are matrix-vector products that read every weight once per token, so this
    is what streaming the weights from memory costs with torch's own kernels; no decoder built
    on them can be faster, and `floor / transformers` bounds the ratio any such decoder reaches.
    """
    config, dtype = model.config, model.output.weight.dtype
    x = torch.randn(batch, 1, config.n_embd, dtype=dtype)
    h = torch.randn(batch, 1, config.intermediate_size, dtype=dtype)
    products = [
        (x, w)
        for layer in model.layers
        for w in (
            layer.attention.wqkv,
            layer.attention.wo.weight,
            layer.feed_forward.w1.weight,
            layer.feed_forward.w3.weight,
        )
    ]
    products += [(h, layer.feed_forward.w2.weight) for layer in model.layers] + [
        (x, model.output.weight)
    ]
    t0 = time.perf_counter()
    for _ in range(steps):
        for activation, weight in products:
            torch.nn.functional.linear(activation, weight)
    return time.perf_counter() - t0


def bench(preset: str, batch: int, args, dtype: torch.dtype) -> dict:
    from tinyllama_cli.decode_step import CompiledDecoder

    config, ours, hf = build(preset, dtype)
    g = torch.Generator().manual_seed(batch)
    prompts = torch.randint(3, config.vocab_size, (batch, args.prompt_len), generator=g)
    # generate --compile (or --compile-mode): its graph is made in the warm-up
    decoder = CompiledDecoder(ours, mode=args.compile_mode)
    run_ours(ours, prompts, 4)  # warm-up
    run_ours(ours, prompts, 4, decoder)
    run_hf(hf, prompts, 4)
    weights_floor(ours, batch, 4)
    times: dict[str, list[float]] = {"ours": [], "compiled": [], "hf": [], "floor": []}
    same = True
    for _ in range(args.repeats):
        t, a = run_ours(ours, prompts, args.new_tokens)
        times["ours"].append(t)
        t, _ = run_ours(ours, prompts, args.new_tokens, decoder)
        times["compiled"].append(t)
        t, b = run_hf(hf, prompts, args.new_tokens)
        times["hf"].append(t)
        times["floor"].append(weights_floor(ours, batch, args.new_tokens))
        same = same and torch.equal(a, b)
    tokens = batch * args.new_tokens
    ours_tps, compiled_tps, hf_tps, floor_tps = (
        tokens / statistics.median(times[k]) for k in ("ours", "compiled", "hf", "floor")
    )
    return {
        "preset": preset,
        "params": config.num_params(),
        "batch": batch,
        "prompt_len": args.prompt_len,
        "new_tokens": args.new_tokens,
        "dtype": str(dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "ours_tokens_per_sec": round(ours_tps, 1),
        "hf_tokens_per_sec": round(hf_tps, 1),
        "ratio": round(ours_tps / hf_tps, 2),
        "compiled_tokens_per_sec": round(compiled_tps, 1),
        "compiled_ratio": round(compiled_tps / hf_tps, 2),
        "compile_s": round(decoder.compile_seconds, 1),
        "same_tokens": same,
        "floor_tokens_per_sec": round(floor_tps, 1),
        "floor_ratio": round(floor_tps / hf_tps, 2),
        "ours_s": [round(t, 4) for t in times["ours"]],
        "compiled_s": [round(t, 4) for t in times["compiled"]],
        "hf_s": [round(t, 4) for t in times["hf"]],
        "floor_s": [round(t, 4) for t in times["floor"]],
    }


# --- issue 20's contest: trained models, batch 1, drafts and llama.cpp ----------------------------

PROMPTS = [
    'def read_config(path):\n    """Read the configuration file at path."""\n',
    "The module provides functions for working with files and directories. The module",
    "import os\nimport sys\n\n\ndef main(argv):\n    for name in argv:\n        print(name)\n",
]


def converted(target, kind: str):
    """DIR-hf/ or DIR-f32.gguf / DIR-f16.gguf beside `target`, made by `tinyllama convert`."""
    import subprocess
    import sys
    from pathlib import Path

    out = {
        "hf": Path(f"{target}-hf"),
        "f32": Path(f"{target}-f32.gguf"),
        "f16": Path(f"{target}-f16.gguf"),
    }[kind]
    if not out.exists():
        args = ["--to", "hf"] if kind == "hf" else ["--to", "gguf", "--dtype", "fp" + kind[1:]]
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tinyllama_cli",
                "convert",
                str(target),
                *args,
                "--out",
                str(out),
            ],
            check=True,
            capture_output=True,
        )
    return out


def contestants(args) -> dict:
    """name -> (run(ids) -> (seconds, new ids, drafted, accepted)), every one at batch 1."""
    import transformers

    from tinyllama_cli.generate import SamplingParams, generate_tokens, load_for_generation
    from tinyllama_cli.speculative import ModelDrafter, PromptLookup

    target, _, _ = load_for_generation(args.target, device="cpu", dtype="fp32")
    _, decoder, _ = load_for_generation(args.target, device="cpu", dtype="fp32", compile=True)
    _, tuned_decoder, _ = load_for_generation(
        args.target, device="cpu", dtype="fp32", compile=True, compile_mode="max-autotune"
    )
    draft, _, _ = load_for_generation(args.draft, device="cpu", dtype="fp32")
    vocab = target.tokenizer.vocab_size
    params = SamplingParams(max_new_tokens=args.new_tokens, temperature=0.0, ignore_eos=True)

    def ours(make_drafter, decoder=None):
        model = target.model if decoder is None else decoder.model

        def run(ids):
            t0 = time.perf_counter()
            r = generate_tokens(
                model,
                [ids],
                params,
                vocab_limit=vocab,
                drafter=make_drafter() if make_drafter else None,
                decoder=decoder,
            )
            return time.perf_counter() - t0, r.tokens[0], r.drafted, r.accepted

        return run

    hf_target = transformers.AutoModelForCausalLM.from_pretrained(
        converted(args.target, "hf"), dtype=torch.float32
    ).eval()
    hf_draft = transformers.AutoModelForCausalLM.from_pretrained(
        converted(args.draft, "hf"), dtype=torch.float32
    ).eval()
    for m in (hf_target, hf_draft):
        m.generation_config.eos_token_id = None  # exactly --new-tokens on every side
        m.generation_config.pad_token_id = 0
    hf_draft.generation_config.num_assistant_tokens = args.draft_tokens
    hf_draft.generation_config.num_assistant_tokens_schedule = "constant"

    def hf(**kw):
        def run(ids):
            x = torch.tensor([ids])
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = hf_target.generate(
                    x,
                    attention_mask=torch.ones_like(x),
                    do_sample=False,
                    max_new_tokens=args.new_tokens,
                    min_new_tokens=args.new_tokens,
                    **kw,
                )
            return time.perf_counter() - t0, out[0, len(ids) :].tolist(), 0, 0

        return run

    rows = {
        "tinyllama": ours(None),
        "tinyllama --compile": ours(None, decoder),
        f"tinyllama --draft (K={args.draft_tokens})": ours(
            lambda: ModelDrafter(draft.model, args.draft_tokens, params, None, vocab)
        ),
        f"tinyllama --prompt-lookup {args.lookup}": ours(lambda: PromptLookup(args.lookup)),
        f"tinyllama --compile --prompt-lookup {args.lookup}": ours(
            lambda: PromptLookup(args.lookup), decoder
        ),
        "tinyllama --compile-mode max-autotune": ours(None, tuned_decoder),
        f"tinyllama max-autotune --prompt-lookup {args.lookup}": ours(
            lambda: PromptLookup(args.lookup), tuned_decoder
        ),
        "transformers": hf(),
        f"transformers assisted (K={args.draft_tokens})": hf(assistant_model=hf_draft),
        f"transformers prompt lookup {args.lookup}": hf(prompt_lookup_num_tokens=args.lookup),
    }
    rows.update(llama_cpp_rows(args))
    return rows, {"--compile": decoder, "--compile-mode max-autotune": tuned_decoder}


def llama_cpp_rows(args) -> dict:
    try:
        import llama_cpp
    except ImportError:
        return {}
    rows = {}
    for kind in ("f32", "f16"):
        llm = llama_cpp.Llama(
            model_path=str(converted(args.target, kind)),
            n_ctx=512,
            n_threads=args.threads,
            n_threads_batch=args.threads,
            verbose=False,
        )

        def run(ids, llm=llm):
            llm.reset()
            out = []
            t0 = time.perf_counter()
            for token in llm.generate(ids, top_k=1, temp=0.0, reset=True):
                out.append(token)
                if len(out) == args.new_tokens:
                    break
            return time.perf_counter() - t0, out, 0, 0

        rows[f"llama.cpp {kind.upper()}"] = run
    return rows


def contest(args) -> None:
    from tinyllama_cli.hardware import cpu_flags
    from tinyllama_cli.load import load_model

    tokenizer = load_model(args.target).tokenizer
    prompts = [[tokenizer.bos_id, *tokenizer.encode(p)] for p in PROMPTS]
    runs, decoders = contestants(args)
    for run in runs.values():  # warm-up (and --compile's graph: the prompts share one shape)
        run(prompts[0][:8])
    times = {name: [] for name in runs}
    tokens: dict[str, list] = {}
    counts = {name: [0, 0] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            seconds, out = 0.0, []
            for ids in prompts:
                t, new, drafted, accepted = run(ids)
                seconds, out = seconds + t, [*out, new]
                counts[name][0] += drafted
                counts[name][1] += accepted
            times[name].append(seconds)
            tokens[name] = out
    n = len(prompts) * args.new_tokens
    base = n / statistics.median(times["tinyllama"])
    peer = next((k for k in runs if k == "llama.cpp F32"), None)
    shown_flags = " ".join(sorted(f for f in cpu_flags() if f.startswith(("avx", "amx"))))
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), batch 1, {len(prompts)} prompts x "
        f"{args.new_tokens} new tokens, greedy, median of {args.repeats} interleaved repeats; "
        f"CPU flags: {shown_flags or 'none'}"
    )
    print(
        f"{'contestant':<40} {'tok/s':>8} {'vs tinyllama':>13} {'vs llama.cpp F32':>17} "
        f"{'same':>5} {'accept':>7}"
    )
    for name in runs:
        tps = n / statistics.median(times[name])
        vs_peer = f"{tps / (n / statistics.median(times[peer])):.2f}x" if peer else "-"
        drafted, accepted = counts[name]
        rate = f"{accepted / drafted:.0%}" if drafted else "-"
        print(
            f"{name:<40} {tps:>8.1f} {tps / base:>12.2f}x {vs_peer:>17} "
            f"{tokens[name] == tokens['tinyllama']!s:>5} {rate:>7}"
        )
    print(
        "seconds per repeat:", json.dumps({k: [round(t, 3) for t in v] for k, v in times.items()})
    )
    for flag, decoder in decoders.items():
        print(
            f"tinyllama {flag}, graphs made in the warm-up (not timed):",
            ", ".join(
                f"batch {c.batch} x {c.length} x width {c.width}: {c.seconds:.1f} s, inductor "
                "cache " + {True: "hit", False: "miss", None: "unknown"}[c.cache_hit]
                for c in decoder.shapes
            ),
        )


def main() -> None:
    from tinyllama_cli.decode_step import COMPILE_MODES

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--preset", action="append", help="model preset (repeatable); default cpu-small"
    )
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument(
        "--json", action="store_true", help="print the rows as JSON instead of a table"
    )
    parser.add_argument(
        "--target", help="a trained run dir: run the draft/lookup/llama.cpp contest"
    )
    parser.add_argument("--draft", help="the draft's run dir (same tokenizer as --target)")
    parser.add_argument("--draft-tokens", type=int, default=4)
    parser.add_argument("--lookup", type=int, default=4, help="prompt lookup's tokens per step")
    parser.add_argument(
        "--compile-mode",
        default="default",
        choices=COMPILE_MODES,
        help="the compiled column's decode_step mode (--preset runs)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.target:
        contest(args)
        return
    dtype = getattr(torch, args.dtype)
    import transformers

    rows = [
        bench(preset, int(b), args, dtype)
        for preset in (args.preset or ["cpu-small"])
        for b in args.batch_sizes.split(",")
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} "
        "threads, "
        f"{args.dtype}, prompt {args.prompt_len} tokens, {args.new_tokens} new tokens, "
        f"median of {args.repeats} interleaved repeats"
    )
    print(
        f"{'preset':<10} {'params':>11} {'batch':>5} {'ours tok/s':>11} {'HF tok/s':>9} "
        f"{'ratio':>6} {'same':>5} {'compiled':>9} {'c/HF':>6} "
        f"{'floor tok/s':>12} {'floor/HF':>9}"
    )
    for r in rows:
        print(
            f"{r['preset']:<10} {r['params']:>11,} {r['batch']:>5} "
            f"{r['ours_tokens_per_sec']:>11.1f} "
            f"{r['hf_tokens_per_sec']:>9.1f} {r['ratio']:>5.2f}x {r['same_tokens']!s:>5} "
            f"{r['compiled_tokens_per_sec']:>9.1f} {r['compiled_ratio']:>5.2f}x "
            f"{r['floor_tokens_per_sec']:>12.1f} {r['floor_ratio']:>8.2f}x"
        )
    print(
        "floor: the decode steps' matrix products alone (weights streamed once per token, nothing "
        "else);"
        " floor/HF bounds the ratio any decoder on torch's kernels can reach; compiled: "
        f"generate --compile-mode {args.compile_mode} (decode_step.py), its compile in the "
        "warm-up: "
        + ", ".join(f"{r['preset']} batch {r['batch']} {r['compile_s']} s" for r in rows)
    )


if __name__ == "__main__":
    main()
