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
trained model).
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
    ours.fuse_projections()  # as `tinyllama generate` loads it (load_for_generation); state_dict unchanged
    hf_config = transformers.LlamaConfig(**hf_config_dict(config))
    hf = transformers.LlamaForCausalLM(hf_config).to(dtype).eval()
    missing, unexpected = hf.load_state_dict(native_to_hf_state_dict(ours.state_dict()), strict=False)
    assert not unexpected and all("rotary" in k for k in missing), (missing, unexpected)
    hf.generation_config.eos_token_id = None  # exactly max_new_tokens on both sides
    hf.generation_config.pad_token_id = 0
    return config, ours, hf


def run_ours(model, prompts: torch.Tensor, new_tokens: int) -> tuple[float, torch.Tensor]:
    from tinyllama_cli.generate import SamplingParams, generate_tokens

    params = SamplingParams(max_new_tokens=new_tokens, temperature=0.0, ignore_eos=True)
    t0 = time.perf_counter()
    result = generate_tokens(model, prompts.tolist(), params)
    return time.perf_counter() - t0, torch.tensor(result.tokens)


def run_hf(model, prompts: torch.Tensor, new_tokens: int) -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=False,
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    return time.perf_counter() - t0, out[:, prompts.size(1):]


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
    products = [(x, w) for layer in model.layers
                for w in (layer.attention.wqkv, layer.attention.wo.weight, layer.feed_forward.w1.weight,
                          layer.feed_forward.w3.weight)]
    products += [(h, layer.feed_forward.w2.weight) for layer in model.layers] + [(x, model.output.weight)]
    t0 = time.perf_counter()
    for _ in range(steps):
        for activation, weight in products:
            torch.nn.functional.linear(activation, weight)
    return time.perf_counter() - t0


def bench(preset: str, batch: int, args, dtype: torch.dtype) -> dict:
    config, ours, hf = build(preset, dtype)
    g = torch.Generator().manual_seed(batch)
    prompts = torch.randint(3, config.vocab_size, (batch, args.prompt_len), generator=g)
    run_ours(ours, prompts, 4)  # warm-up
    run_hf(hf, prompts, 4)
    weights_floor(ours, batch, 4)
    times: dict[str, list[float]] = {"ours": [], "hf": [], "floor": []}
    same = True
    for _ in range(args.repeats):
        t, a = run_ours(ours, prompts, args.new_tokens)
        times["ours"].append(t)
        t, b = run_hf(hf, prompts, args.new_tokens)
        times["hf"].append(t)
        times["floor"].append(weights_floor(ours, batch, args.new_tokens))
        same = same and torch.equal(a, b)
    tokens = batch * args.new_tokens
    ours_tps, hf_tps, floor_tps = (tokens / statistics.median(times[k]) for k in ("ours", "hf", "floor"))
    return {"preset": preset, "params": config.num_params(), "batch": batch, "prompt_len": args.prompt_len,
            "new_tokens": args.new_tokens, "dtype": str(dtype).removeprefix("torch."), "threads": torch.get_num_threads(),
            "ours_tokens_per_sec": round(ours_tps, 1), "hf_tokens_per_sec": round(hf_tps, 1),
            "ratio": round(ours_tps / hf_tps, 2), "same_tokens": same,
            "floor_tokens_per_sec": round(floor_tps, 1), "floor_ratio": round(floor_tps / hf_tps, 2),
            "ours_s": [round(t, 4) for t in times["ours"]], "hf_s": [round(t, 4) for t in times["hf"]],
            "floor_s": [round(t, 4) for t in times["floor"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", action="append", help="model preset (repeatable); default cpu-small")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    import transformers

    rows = [bench(preset, int(b), args, dtype) for preset in (args.preset or ["cpu-small"])
            for b in args.batch_sizes.split(",")]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} threads, "
          f"{args.dtype}, prompt {args.prompt_len} tokens, {args.new_tokens} new tokens, "
          f"median of {args.repeats} interleaved repeats")
    print(f"{'preset':<10} {'params':>11} {'batch':>5} {'ours tok/s':>11} {'HF tok/s':>9} {'ratio':>6} {'same':>5} "
          f"{'floor tok/s':>12} {'floor/HF':>9}")
    for r in rows:
        print(f"{r['preset']:<10} {r['params']:>11,} {r['batch']:>5} {r['ours_tokens_per_sec']:>11.1f} "
              f"{r['hf_tokens_per_sec']:>9.1f} {r['ratio']:>5.2f}x {r['same_tokens']!s:>5} "
              f"{r['floor_tokens_per_sec']:>12.1f} {r['floor_ratio']:>8.2f}x")
    print("floor: the decode steps' matrix products alone (weights streamed once per token, nothing else);"
          " floor/HF bounds the ratio any decoder on torch's kernels can reach")


if __name__ == "__main__":
    main()
