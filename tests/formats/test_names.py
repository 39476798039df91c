"""The native <-> Hugging Face / GGUF name tables map every tensor both ways."""

import pytest

from tinyllama_cli.config import ModelConfig
from tinyllama_cli.errors import UserError
from tinyllama_cli.formats import gguf, hf
from tinyllama_cli.model import Llama

CONFIG = ModelConfig(
    name="t",
    vocab_size=64,
    n_layer=3,
    n_embd=32,
    n_head=4,
    n_kv_head=2,
    intermediate_size=64,
    block_size=16,
)


@pytest.mark.parametrize("names", [hf.NAMES, gguf.NAMES], ids=["hf", "gguf"])
def test_every_native_name_round_trips(names):
    native = list(Llama(CONFIG).state_dict())
    external = [names.to_external(n) for n in native]
    assert None not in external and len(set(external)) == len(native)
    assert all(
        e.startswith(f"{names.layer_prefix}.")
        for n, e in zip(native, external)
        if n.startswith("layers.")
    )
    assert [names.to_native(e) for e in external] == native


def test_unknown_names_are_refused_with_the_format_named():
    assert hf.NAMES.to_native("model.layers.0.self_attn.q_proj.bias") is None
    assert hf.NAMES.to_external("layers.0.attention.wq.bias") is None
    assert (
        hf.hf_to_native_name("model.layers.2.self_attn.rotary_emb.inv_freq") is None
    )  # dropped, not an error
    with pytest.raises(UserError, match="not part of a Llama model"):
        hf.hf_to_native_name("transformer.h.0.attn.c_attn.weight")
    with pytest.raises(UserError, match="GGUF tensor"):
        gguf.gguf_to_native_name("blk.0.attn_qkv.weight")
    with pytest.raises(KeyError):
        gguf.native_to_gguf_name("layers.0.attention.wqkv.weight")
    assert (
        hf.hf_to_native_name("model.layers.10.mlp.down_proj.weight")
        == "layers.10.feed_forward.w2.weight"
    )
    assert gguf.native_to_gguf_name("layers.7.feed_forward.w1.weight") == "blk.7.ffn_gate.weight"
