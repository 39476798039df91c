"""SentencePiece tokenizer: loading (with a clear error for a file that is not one), encoding
with Llama's BOS/EOS conventions, and training a Llama-style BPE model on local text."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

from tinyllama_cli import files
from tinyllama_cli.errors import UserError


class Tokenizer:
    """A SentencePiece model with Llama's special ids (unk=0, bos=1, eos=2 for Llama 2's)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(
                f"tokenizer {self.path} does not exist; pass a SentencePiece .model file"
            )
        self.model_bytes = self.path.read_bytes()
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.LoadFromSerializedProto(self.model_bytes)
        except Exception:  # noqa: BLE001 -- sentencepiece raises bare RuntimeError/OSError variants
            raise UserError(
                f"{self.path} is not a SentencePiece model; pass a .model file such as Llama 2's "
                "tokenizer.model, or use --train-tokenizer"
            ) from None

    @property
    def vocab_size(self) -> int:
        return self.sp.vocab_size()

    @property
    def bos_id(self) -> int:
        return self.sp.bos_id()

    @property
    def eos_id(self) -> int:
        return self.sp.eos_id()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.model_bytes).hexdigest()

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        ids = self.sp.encode(text)
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode(list(ids))

    def id_to_piece(self, token_id: int) -> str:
        return self.sp.id_to_piece(token_id)

    def pieces(self) -> list[str]:
        """Every piece by id: two tokenizers with equal lists number text the same way."""
        return [self.sp.id_to_piece(i) for i in range(self.vocab_size)]


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    out_path: str | Path,
    max_sentence_length: int = 16384,
    num_threads: int = 2,
) -> Tokenizer:
    """Train a Llama-style SentencePiece BPE: byte fallback, split digits, unk=0 bos=1 eos=2.

    `texts` should be a bounded sample (the caller decides how much); the model is written
    atomically to `out_path`.
    """
    out_path = Path(out_path)
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=model,
            model_type="bpe",
            vocab_size=vocab_size,
            byte_fallback=True,
            split_digits=True,
            allow_whitespace_only_pieces=True,
            remove_extra_whitespaces=False,
            normalization_rule_name="identity",
            character_coverage=0.99995,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            max_sentence_length=max_sentence_length,
            num_threads=num_threads,
            train_extremely_large_corpus=False,
            minloglevel=2,
        )
    except RuntimeError as exc:
        raise UserError(
            f"tokenizer training failed ({exc}); use a smaller --vocab-size or more text"
        ) from None
    files.write_bytes(out_path, _without_thread_count(model.getvalue()))
    return Tokenizer(out_path)


def _without_thread_count(model_bytes: bytes) -> bytes:
    """Drop the trainer's thread count from the saved model: the pieces and scores do not
    depend on it, so the file (and its sha256) then does not either."""
    try:
        from sentencepiece import sentencepiece_model_pb2 as pb
    except ImportError:  # protobuf missing: keep the bytes as trained
        return model_bytes
    proto = pb.ModelProto()
    proto.ParseFromString(model_bytes)
    proto.trainer_spec.ClearField("num_threads")
    return proto.SerializeToString()
