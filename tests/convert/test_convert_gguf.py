"""convert native -> GGUF: read back with gguf's reader (names, shapes, types, metadata, values);
the q/k permutation against llama.cpp's interleaved RoPE is tests/formats/test_gguf.py's."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch

from tinyllama_cli.convert.api import convert
from tinyllama_cli.formats.gguf import (
    native_to_gguf_name,
    permute_for_gguf,
    read_gguf,
)
from tinyllama_cli.tokenizer import Tokenizer

from .conftest import CONVERT_CONFIG


@pytest.mark.parametrize(
    "dtype,ggml_type,file_type",
    [
        ("fp16", "F16", gguf.LlamaFileType.MOSTLY_F16),
        ("bf16", "BF16", gguf.LlamaFileType.MOSTLY_BF16),
    ],
)
def test_gguf_read_back_names_shapes_metadata_and_values(
    run_dir, tmp_path, dtype, ggml_type, file_type
):
    src, model = run_dir
    out = tmp_path / "m.gguf"
    result = convert(src, "gguf", out, dtype=dtype)
    assert out.is_file() and [f["name"] for f in result.files] == ["m.gguf"]
    if result.verify is not None:
        assert (
            result.verify.ok
            and result.verify.max_tensor_diff == 0.0
            and result.verify.tokenizer == "match"
        )

    reader = gguf.GGUFReader(str(out))
    source = model.state_dict()
    tensors = {t.name: t for t in reader.tensors}
    assert set(tensors) == {native_to_gguf_name(k) for k in source}
    assert {
        "token_embd.weight",
        "output_norm.weight",
        "output.weight",
        "blk.1.attn_q.weight",
        "blk.0.ffn_gate.weight",
        "blk.1.ffn_down.weight",
    } <= set(tensors)
    for name, tensor in source.items():
        t = tensors[native_to_gguf_name(name)]
        assert list(t.shape) == list(reversed(tensor.shape)), name  # ggml lists ne0 (columns) first
        assert t.tensor_type.name == ("F32" if tensor.dim() == 1 else ggml_type), name

    field = lambda key: reader.get_field(key).contents()
    assert field("general.architecture") == "llama"
    assert field("general.file_type") == int(file_type)
    assert field("llama.block_count") == 2 and field("llama.embedding_length") == 64
    assert field("llama.attention.head_count") == 4 and field("llama.attention.head_count_kv") == 2
    assert field("llama.feed_forward_length") == 160 and field("llama.context_length") == 64
    assert field("llama.rope.dimension_count") == 16 and field("llama.rope.freq_base") == 10000.0
    assert field("llama.attention.layer_norm_rms_epsilon") == pytest.approx(1e-5)

    sp = Tokenizer(src / "tokenizer.model")
    tokens = field("tokenizer.ggml.tokens")
    assert field("tokenizer.ggml.model") == "llama" and len(tokens) == 320
    assert tokens[:300] == [sp.id_to_piece(i) for i in range(300)] and tokens[300] == "[PAD300]"
    scores = field("tokenizer.ggml.scores")
    assert np.allclose(scores[:300], [sp.sp.get_score(i) for i in range(300)])
    types = field("tokenizer.ggml.token_type")
    assert types[0] == gguf.TokenType.UNKNOWN and types[1] == types[2] == gguf.TokenType.CONTROL
    assert (
        types[3] == gguf.TokenType.BYTE
        and types[299] == gguf.TokenType.NORMAL
        and types[300] == gguf.TokenType.UNUSED
    )
    assert (
        field("tokenizer.ggml.bos_token_id"),
        field("tokenizer.ggml.eos_token_id"),
        field("tokenizer.ggml.unknown_token_id"),
    ) == (1, 2, 0)
    assert (
        field("tokenizer.ggml.add_bos_token") is True
        and field("tokenizer.ggml.add_eos_token") is False
    )

    torch_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    config, state, _, _ = read_gguf(out)
    assert config.replace(name=CONVERT_CONFIG.name) == CONVERT_CONFIG
    for name, tensor in source.items():
        expected = tensor if tensor.dim() == 1 else tensor.to(torch_dtype).float()
        assert torch.equal(state[name], expected), name
    # The stored q rows are the permuted ones (un-permuting above restored the source).
    raw_q = torch.from_numpy(
        gguf.quants.dequantize(
            tensors["blk.0.attn_q.weight"].data, tensors["blk.0.attn_q.weight"].tensor_type
        ).copy()
    )
    assert torch.equal(
        raw_q.reshape(64, 64),
        permute_for_gguf(source["layers.0.attention.wq.weight"].to(torch_dtype).float(), 4),
    )


def test_gguf_fp32_into_directory_loads_in_transformers(run_dir, tmp_path):
    transformers = pytest.importorskip("transformers")
    src, model = run_dir
    result = convert(src, "gguf", tmp_path / "out")
    path = tmp_path / "out" / "model.gguf"
    assert path.is_file() and "transformers' GGUF loader" in result.verify.method
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    ).eval()
    idx = torch.randint(0, 300, (2, 10))
    with torch.no_grad():  # transformers un-permutes llama q/k itself: an independent check of ours
        torch.testing.assert_close(hf(idx).logits, model(idx), atol=1e-5, rtol=1e-5)
