"""LlamaTokenLM: the adapter's ids are those of HF's Llama tokenizer on the tokenizer.json that
`convert` writes."""

from __future__ import annotations


def test_tokenization_follows_hf_llama_tokenizer(env, tmp_path):
    from transformers import AutoTokenizer

    from tinyllama_cli.eval.native_lm import NativeLM
    from tinyllama_cli.formats.hf import save_hf
    from tinyllama_cli.load import load_model

    loaded = load_model(env["run"])
    lm = NativeLM(loaded.model, loaded.tokenizer)
    hf = AutoTokenizer.from_pretrained(
        str(save_hf(loaded.model, tmp_path / "hf", loaded.tokenizer))
    )
    for text in (
        "the man",
        " leading space",
        "  two spaces",
        "a\nb c",
        "trailing ",
        "x 123 y",
        " ",
    ):
        assert lm.tok_encode(text) == hf.encode(text), text
        assert lm.tok_encode(text, add_special_tokens=False) == hf.encode(
            text, add_special_tokens=False
        ), text
