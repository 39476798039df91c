"""formats/hf.py: the generated tokenizer files give AutoTokenizer SentencePiece's ids. (Whole
directories against transformers: tests/convert/test_convert_hf.py.)"""

from __future__ import annotations

import pytest

from tinyllama_cli.tokenizer import Tokenizer

transformers = pytest.importorskip("transformers")


def test_tokenizer_json_follows_sentencepiece_defaults(tmp_path):
    """A SentencePiece BPE with the library defaults (NFKC, collapsed whitespace, no byte
    fallback) still gives AutoTokenizer ids equal to SentencePiece's."""
    import io
    import random

    import sentencepiece as spm

    from tinyllama_cli.formats.hf import write_tokenizer_files

    rng = random.Random(0)
    words = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "a",
        "lazy",
        "dog",
        "reading",
        "ﬁle",
        "café",
        "1234",
        "or",
        "56",
    ]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(" ".join(rng.choice(words) for _ in range(30)) for _ in range(300)),
        model_writer=model,
        model_type="bpe",
        vocab_size=120,
        minloglevel=2,
    )
    (tmp_path / "sp.model").write_bytes(model.getvalue())
    sp = Tokenizer(tmp_path / "sp.model")
    (tmp_path / "hf").mkdir()
    write_tokenizer_files(sp, tmp_path / "hf", model_max_length=64)
    auto = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"), local_files_only=True)
    for text in ["the quick  brown", "  leading", "ﬁle café 123", "trailing  ", "unknown ✓ char"]:
        assert auto(text)["input_ids"] == sp.encode(text, bos=True), text
