"""Write a native model as a Hugging Face Llama directory (the file set in docs/convert.md).

config.json (LlamaForCausalLM, both the 4.x and 5.x RoPE/dtype spellings),
model.safetensors (sharded with model.safetensors.index.json above `max_shard_bytes`),
generation_config.json, and, given a tokenizer, tokenizer.model + tokenizer_config.json +
special_tokens_map.json so that `AutoTokenizer` gives [bos] + SentencePiece ids offline.
The directory is assembled under a temporary name and renamed when complete (`files.staged`);
`write_hf` writes into a given directory so `convert` can verify before the rename.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from tinyllama_cli.convert.hf import hf_config_dict, native_to_hf_state_dict
from tinyllama_cli.convert.output import make_plain_file
from tinyllama_cli.errors import UserError
from tinyllama_cli.files import staged, write_json
from tinyllama_cli.model import Llama
from tinyllama_cli.tokenizer import Tokenizer

DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def save_hf(model: Llama, out_dir: str | Path, tokenizer: Tokenizer | None = None,
            dtype: torch.dtype = torch.float32, max_shard_bytes: int = 5 * 2**30,
            overwrite: bool = False) -> Path:
    """Write `model` as a Hugging Face directory at `out_dir` (staged, then renamed)."""
    out_dir = Path(out_dir)
    with staged(out_dir, overwrite) as tmp:
        write_hf(model, tmp, tokenizer, dtype, max_shard_bytes)
    return out_dir


def write_hf(model: Llama, directory: Path, tokenizer: Tokenizer | None = None,
             dtype: torch.dtype = torch.float32, max_shard_bytes: int = 5 * 2**30) -> None:
    """Write the HF file set into `directory`, which must not exist yet."""
    if dtype not in DTYPE_NAMES:
        raise UserError(f"dtype {dtype} is not supported for Hugging Face output; use fp32, bf16 or fp16")
    directory.mkdir(parents=True)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in native_to_hf_state_dict(model.state_dict()).items()}
    shards = _split_shards(state, max_shard_bytes)
    if len(shards) == 1:
        _save_safetensors(shards[0], directory / "model.safetensors")
    else:
        weight_map = {}
        for i, shard in enumerate(shards, start=1):
            name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            _save_safetensors(shard, directory / name)
            weight_map.update({key: name for key in shard})
        total = sum(t.numel() * t.element_size() for t in state.values())
        write_json(directory / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})

    bos, eos = (tokenizer.bos_id, tokenizer.eos_id) if tokenizer else (1, 2)
    write_json(directory / "config.json", hf_config_dict(model.config, DTYPE_NAMES[dtype], bos, eos))
    write_json(directory / "generation_config.json", generation_config(bos, eos))
    if tokenizer is not None:
        write_tokenizer_files(tokenizer, directory, model_max_length=model.config.block_size)


def _save_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={"format": "pt"})
    make_plain_file(path)  # safetensors leaves its temporary file's 0600


def generation_config(bos_id: int, eos_id: int) -> dict:
    """generation_config.json: the special tokens only.

    No `max_length`: transformers treats a max_length from the model's generation config as set
    by the user, so every `generate(max_new_tokens=...)` logged "Both max_new_tokens and
    max_length seem to have been set". The context limit is config.json's
    max_position_embeddings, which generate already caps its default length at.
    """
    return {"bos_token_id": bos_id, "eos_token_id": eos_id}


def write_tokenizer_files(tokenizer: Tokenizer, directory: Path, model_max_length: int) -> None:
    """tokenizer.model, tokenizer.json and the two JSON files transformers needs offline.

    `model_max_length` is the model's context (block_size): transformers' tokenizer truncates
    to it with `truncation=True` and warns about longer inputs, which a placeholder 1e9 hid.
    """
    shutil.copyfile(tokenizer.path, directory / "tokenizer.model")
    fast = tokenizer_json(tokenizer)
    if fast is not None:
        (directory / "tokenizer.json").write_text(json.dumps(fast, ensure_ascii=False) + "\n")
    piece = tokenizer.id_to_piece
    specials = {"bos_token": piece(tokenizer.bos_id), "eos_token": piece(tokenizer.eos_id), "unk_token": piece(tokenizer.sp.unk_id())}
    write_json(directory / "tokenizer_config.json", {
        # transformers 5's LlamaTokenizer replaces tokenizer.json's normalizer (see tokenizer_json);
        # the generic fast class loads it as written, in 4.x and 5.x alike.
        "tokenizer_class": "PreTrainedTokenizerFast" if fast is not None else "LlamaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        "legacy": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        "pad_token": None,
        **specials,
    })
    write_json(directory / "special_tokens_map.json", specials)


def tokenizer_json(tokenizer: Tokenizer) -> dict | None:
    """A `tokenizers` BPE equivalent of a SentencePiece BPE model, as Llama 2's tokenizer.json.

    Why: rebuilt from tokenizer.model alone, transformers 5 uses a Metaspace pre-tokenizer that
    adds no "▁" before text that already starts with a space, so "  x" loses a token against
    SentencePiece. Llama 2's published tokenizer.json instead prepends "▁" in the normalizer,
    exactly as SentencePiece's dummy prefix does; both transformers 4.x and 5.x load it as is.
    Merges follow SentencePiece's merge order (piece score, i.e. id). None for unigram models or
    when the model proto cannot be parsed (protobuf missing): tokenizer.model is then the source.
    """
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError:  # needs protobuf
        return None
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(tokenizer.model_bytes)
    if proto.trainer_spec.model_type != 2:  # BPE
        return None
    sp, pieces = tokenizer.sp, [p.piece for p in proto.pieces]
    vocab = {piece: i for i, piece in enumerate(pieces)}
    mergeable = [i for i in range(len(pieces)) if proto.pieces[i].type == 1]  # NORMAL pieces
    merges = []
    for i in mergeable:
        piece = pieces[i]
        local = [(piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in vocab and piece[k:] in vocab]
        merges.extend(sorted(local, key=lambda lr: (vocab[lr[0]], vocab[lr[1]])))
    merges.sort(key=lambda lr: (vocab[lr[0] + lr[1]], len(lr[0]), len(lr[1])))
    normalizers = []
    if proto.normalizer_spec.precompiled_charsmap:
        import base64

        charsmap = base64.b64encode(proto.normalizer_spec.precompiled_charsmap).decode()
        normalizers.append({"type": "Precompiled", "precompiled_charsmap": charsmap})
    if proto.normalizer_spec.remove_extra_whitespaces:
        normalizers += [{"type": "Strip", "strip_left": True, "strip_right": True},
                        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]
    if proto.normalizer_spec.add_dummy_prefix:
        normalizers.append({"type": "Prepend", "prepend": "▁"})
    normalizers.append({"type": "Replace", "pattern": {"String": " "}, "content": "▁"})
    special = [i for i in range(len(pieces)) if proto.pieces[i].type in (2, 3, 4)]  # unknown, control, user
    bos = pieces[sp.bos_id()]
    decoders = [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"}]
    if proto.normalizer_spec.add_dummy_prefix:
        decoders.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": pieces[i], "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": proto.pieces[i].type != 4}
            for i in special
        ],
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [sp.bos_id()], "tokens": [bos]}},
        },
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": pieces[sp.unk_id()], "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": proto.trainer_spec.byte_fallback,
            "ignore_merges": False, "vocab": vocab, "merges": [list(m) for m in merges],
        },
    }


def _split_shards(state: dict[str, torch.Tensor], max_bytes: int) -> list[dict[str, torch.Tensor]]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    return shards

