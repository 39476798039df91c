"""Token shards -> training and validation batches, in a deterministic order.

A data dir (written by `prepare-data`, see docs/prepare-data.md) holds, per source, flat token
streams of `<s> doc </s>` documents. Each source's train stream is cut into windows of seq_len + 1
tokens that start every seq_len tokens (consecutive windows share one token, so every token is a
target exactly once per epoch). Sample k of a run is `PretrainData.sample(k)`: the source comes from
the mixture, the window from a seeded per-source, per-epoch permutation (`data/mixture.py`). Nothing
depends on the number of workers or on history, so a resumed run continues from `samples_seen` at
any world size and sees every window exactly once per epoch.

Step s of a run consumes samples [s*G, (s+1)*G) (G = global batch). Worker r of W takes the
contiguous slice [r*G/W, (r+1)*G/W) and splits it into micro batches.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tinyllama_cli.data.mixture import (
    Mixture,
    capped_quotas,
    feistel_permutation,
    parse_mix,
    validation_key,
    window_key,
)
from tinyllama_cli.errors import UserError

DTYPES = {"uint16": np.uint16, "uint32": np.uint32}


@dataclass
class Manifest:
    """The parts of a data dir's manifest.json the trainer relies on, checked."""

    root: Path
    raw: dict
    dtype: np.dtype
    vocab_size: int
    tokenizer_file: Path
    sources: dict[str, dict]

    @classmethod
    def load(cls, data_dir: str | Path) -> Manifest:
        root = Path(data_dir)
        path = root / "manifest.json"
        if not path.is_file():
            raise UserError(
                f"{root} is not a token data dir (no manifest.json); create one with "
                "`tinyllama prepare-data SOURCE... --out DIR`"
            )
        try:
            raw = json.loads(path.read_text())
            version = raw.get("format_version")
            if version != 1:
                raise UserError(
                    f"{path} has format_version {version!r}; this tinyllama reads 1: "
                    "re-run prepare-data with this version"
                )
            dtype = np.dtype(DTYPES[raw["dtype"]])
            tok = raw["tokenizer"]
            sources = raw["sources"]
            vocab = int(tok["vocab_size"])
            tokenizer_file = root / tok.get("file", "tokenizer.model")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(
                f"{path} is not a valid manifest ({type(exc).__name__}: {exc}); "
                "re-create the data dir with `tinyllama prepare-data`"
            ) from None
        if not sources:
            raise UserError(f"{path} lists no sources; prepare-data wrote no tokens")
        return cls(root, raw, dtype, vocab, tokenizer_file, sources)

    def fingerprint(self) -> str:
        """sha256 of the manifest's content: equal data dirs (wherever they are) agree."""
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True).encode()).hexdigest()

    def train_tokens(self) -> dict[str, int]:
        return {name: int(src["tokens"].get("train", 0)) for name, src in self.sources.items()}


class OpenShards:
    """A bounded set of open shard files, shared by every TokenStream of the process.

    TinyLlama's corpus is ~6,000 shards of 2^27 tokens; a reader that kept every shard it
    touched open (one memmap, so one file descriptor, per shard) died with "Too many open files"
    within a few steps under `ulimit -n 200`, and crossed a 1024 limit after ~20 steps of real
    data. Reads are positional (`os.pread`: no seek, so safe from several threads), and only the
    `capacity` most recently used files stay open.
    """

    def __init__(self, capacity: int = 64):
        self.capacity = capacity
        self._fds: OrderedDict[Path, int] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, path: Path, offset: int, nbytes: int) -> bytes:
        with self._lock:
            fd = self._fds.pop(path, None)
            if fd is None:
                fd = os.open(path, os.O_RDONLY)
                while len(self._fds) >= self.capacity:
                    os.close(self._fds.popitem(last=False)[1])
            self._fds[path] = fd  # most recently used last
            data = os.pread(fd, nbytes, offset)
        if len(data) != nbytes:
            raise UserError(
                f"shard {path} ended after {offset + len(data)} bytes, the manifest implies "
                f"at least {offset + nbytes}; the data dir is damaged: re-run prepare-data"
            )
        return data

    def open_count(self) -> int:
        return len(self._fds)

    def close(self) -> None:
        with self._lock:
            while self._fds:
                os.close(self._fds.popitem()[1])


SHARDS = OpenShards()


class TokenStream:
    """One source's split as one logical array over its shards, read lazily (`OpenShards`)."""

    def __init__(self, manifest: Manifest, source: str, split: str, shards: OpenShards = SHARDS):
        entries = manifest.sources[source].get("shards", {}).get(split, [])
        self.files = [manifest.root / s["file"] for s in entries]
        sizes = [int(s["tokens"]) for s in entries]
        self.starts = np.cumsum([0] + sizes)
        self.n_tokens = int(self.starts[-1])
        self.dtype = manifest.dtype
        self.shards = shards
        for file, size in zip(self.files, sizes):
            if not file.is_file():
                raise UserError(
                    f"shard {file} listed in the manifest is missing; re-run prepare-data"
                )
            if file.stat().st_size != size * self.dtype.itemsize:
                raise UserError(
                    f"shard {file} holds {file.stat().st_size} bytes, the manifest says "
                    f"{size} {self.dtype.name} tokens; the data dir is damaged: re-run prepare-data"
                )

    def read(self, start: int, length: int) -> np.ndarray:
        """Tokens [start, start + length) of the stream, as int64 (a window may span shards)."""
        out = np.empty(length, dtype=np.int64)
        pos, done, item = start, 0, self.dtype.itemsize
        while done < length:
            i = int(np.searchsorted(self.starts, pos, side="right")) - 1
            offset = pos - int(self.starts[i])
            take = min(length - done, int(self.starts[i + 1]) - pos)
            data = self.shards.read(self.files[i], offset * item, take * item)
            out[done : done + take] = np.frombuffer(data, dtype=self.dtype)
            pos, done = pos + take, done + take
        return out

    def num_windows(self, seq_len: int) -> int:
        return max(0, (self.n_tokens - 1) // seq_len)


class PretrainData:
    """Training samples as a pure function of (seed, k, manifest), and validation batches."""

    def __init__(self, data_dir: str | Path, seq_len: int, seed: int, mix: str | None = None):
        self.manifest = Manifest.load(data_dir)
        self.seq_len, self.seed = seq_len, seed
        self.weights = parse_mix(mix, self.manifest.train_tokens())
        self.names = list(self.weights)
        self.streams = [TokenStream(self.manifest, name, "train") for name in self.names]
        self.windows = [s.num_windows(seq_len) for s in self.streams]
        for name, n in zip(self.names, self.windows):
            if n == 0:
                raise UserError(
                    f"source {name!r} has fewer than seq_len + 1 = {seq_len + 1} training "
                    "tokens; add data, lower --seq-len, or leave it out of --mix"
                )
        self.mixture = Mixture([self.weights[n] for n in self.names], seed)
        self.val_names = sorted(self.manifest.sources)
        self.val_streams = [TokenStream(self.manifest, name, "val") for name in self.val_names]

    def sample(self, k: int) -> np.ndarray:
        """Training sample k: seq_len + 1 tokens of one source."""
        s, j = self.mixture.locate(k)
        epoch, pos = divmod(j, self.windows[s])
        window = int(
            feistel_permutation(pos, self.windows[s], window_key(self.seed, self.names[s], epoch))[
                0
            ]
        )
        return self.streams[s].read(window * self.seq_len, self.seq_len + 1)

    def batch(self, first: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets (size, seq_len) for samples first .. first + size - 1."""
        tokens = torch.from_numpy(np.stack([self.sample(k) for k in range(first, first + size)]))
        return tokens[:, :-1], tokens[:, 1:]

    def validation_windows(self, limit: int) -> dict[str, list[int]]:
        """The run's fixed validation set: per source, window indices into its val stream.

        At most `limit` windows in all, shared out by the mix weights (a source with fewer
        windows than its share gives the rest to the others), so the pooled loss is the loss on
        the training mixture. Within a source they are spread over the whole stream by a seeded
        permutation, not its first windows (files are in sorted order, so the first windows of
        Starcoderdata are the alphabetically first languages). A pure function of the seed, the
        mix and the data, like the training order."""
        names = [n for n in self.val_names if n in self.weights]
        capacity = [
            self.val_streams[self.val_names.index(n)].num_windows(self.seq_len) for n in names
        ]
        quotas = capped_quotas(limit, [self.weights[n] for n in names], capacity)
        chosen = {}
        for name, n, q in zip(names, capacity, quotas):
            if q:
                picks = feistel_permutation(np.arange(q), n, validation_key(self.seed, name))
                chosen[name] = sorted(int(w) for w in picks)
        return chosen

    def validation_batch(
        self, source: str, windows: list[int], size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A micro batch of one source's val windows, padded to `size` rows whose targets are all
        ignored (-100), so every worker runs the same number of forward passes even with fewer
        windows than workers."""
        x = torch.zeros(size, self.seq_len, dtype=torch.long)
        y = torch.full((size, self.seq_len), -100, dtype=torch.long)
        stream = self.val_streams[self.val_names.index(source)]
        for row, w in enumerate(windows):
            tokens = torch.from_numpy(stream.read(w * self.seq_len, self.seq_len + 1))
            x[row], y[row] = tokens[:-1], tokens[1:]
        return x, y
