"""Which source, and which window of it, is training sample k: a pure function of (seed, k, data).

Two pieces, both stateless so that resuming needs nothing but the number of samples seen:

- `Mixture` assigns sources to samples. Samples are taken in blocks of `MIX_BLOCK`; each block
  holds every source exactly its quota (the mix weights times the block, rounded by largest
  remainder) in a seeded random order. The weights are therefore met to within 1/MIX_BLOCK over
  every block, not just on average, and the number of earlier samples from a source, which picks
  the window, is closed-form: no scan over the run's history on resume, even at 10^9 samples.
- `feistel_permutation` maps a source's j-th sample to a window: a seeded bijection on
  [0, n_windows) per (source, epoch), computed per index with a small Feistel network and cycle
  walking, so it needs O(1) memory even for the 300M windows of SlimPajama (an explicit
  permutation would be 2.4 GB per worker).
"""

from __future__ import annotations

import hashlib

import numpy as np

from tinyllama_cli.errors import UserError

MIX_BLOCK = 10_000  # samples per block of the mixture: weights are realised to 1e-4
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def parse_mix(spec: str | None, train_tokens: dict[str, int]) -> dict[str, float]:
    """Normalised source weights from "NAME=W,NAME=W" (default: proportional to train tokens)."""
    if not spec:
        total = sum(train_tokens.values())
        return {name: n / total for name, n in sorted(train_tokens.items()) if n > 0}
    weights: dict[str, float] = {}
    for item in spec.split(","):
        name, sep, value = item.strip().partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not sep or weight < 0:
            raise UserError(
                f"--mix item {item!r} is not NAME=WEIGHT with a weight >= 0; write e.g. "
                "--mix slimpajama=0.7,starcoder=0.3"
            )
        if name not in train_tokens:
            raise UserError(
                f"--mix names source {name!r}, which the data dir does not have; its "
                f"sources are: {', '.join(sorted(train_tokens))}"
            )
        weights[name] = weight
    total = sum(weights.values())
    if total <= 0:
        raise UserError("--mix weights sum to zero; give at least one source a positive weight")
    for name, weight in weights.items():
        if weight > 0 and train_tokens[name] == 0:
            raise UserError(
                f"source {name!r} has weight {weight} but no training tokens; drop it from --mix"
            )
    return {name: w / total for name, w in sorted(weights.items()) if w > 0}


def block_quotas(weights: list[float], block: int = MIX_BLOCK) -> np.ndarray:
    """Integer samples per source in one block (sum == block), by largest remainder."""
    exact = np.asarray(weights, dtype=np.float64) * block
    quotas = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - quotas), kind="stable")
    quotas[order[: block - int(quotas.sum())]] += 1
    return quotas


def capped_quotas(total: int, weights: list[float], capacity: list[int]) -> list[int]:
    """`total` items split by `weights` (largest remainder), no share above its `capacity`; what
    a capped share cannot take goes to the others by their weights. Each round either places
    everything or fills at least one share, so it ends after at most len(weights) rounds."""
    quotas = [0] * len(weights)
    while True:
        open_ = [i for i, (w, c) in enumerate(zip(weights, capacity)) if w > 0 and quotas[i] < c]
        left = total - sum(quotas)
        if left <= 0 or not open_:
            return quotas
        scale = sum(weights[i] for i in open_)
        exact = {i: left * weights[i] / scale for i in open_}
        give = {i: int(exact[i]) for i in open_}
        by_remainder = sorted(open_, key=lambda i: (int(exact[i]) - exact[i], i))
        for i in by_remainder[: left - sum(give.values())]:
            give[i] += 1
        for i in open_:
            quotas[i] += min(give[i], capacity[i] - quotas[i])


def _key(*parts: object) -> int:
    """A 64-bit key from arbitrary parts, the same on every machine and Python version."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little")


class Mixture:
    """sample index -> (source index, index of the sample within that source's stream)."""

    def __init__(self, weights: list[float], seed: int, block: int = MIX_BLOCK):
        self.seed, self.block = seed, block
        self.quotas = block_quotas(weights, block)
        self._labels = np.repeat(np.arange(len(weights)), self.quotas)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        if b not in self._cache:
            if len(self._cache) > 4:
                self._cache.clear()
            self._cache[b] = self._make_block(b)
        return self._cache[b]

    def _make_block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.Generator(np.random.PCG64(_key("mix", self.seed, b)))
        labels = rng.permutation(self._labels)
        within = np.empty(self.block, dtype=np.int64)
        for s in range(len(self.quotas)):
            where = labels == s
            within[where] = np.arange(int(where.sum()))
        return labels, within

    def locate(self, k: int) -> tuple[int, int]:
        b, p = divmod(k, self.block)
        labels, within = self._block(b)
        s = int(labels[p])
        return s, b * int(self.quotas[s]) + int(within[p])


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fast, well-mixing 64-bit hash (uint64 arithmetic wraps)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def feistel_permutation(index: np.ndarray | int, n: int, key: int, rounds: int = 6) -> np.ndarray:
    """A seeded bijection of [0, n) evaluated at `index`, in O(1) memory.

    A balanced Feistel network permutes [0, 4^h) for the smallest 4^h >= n; values that land
    outside [0, n) are permuted again (cycle walking), which stays a bijection on [0, n).
    """
    x = np.atleast_1d(np.asarray(index, dtype=np.uint64)).copy()
    if n <= 1:
        return np.zeros_like(x)
    half = max(1, (int(n - 1).bit_length() + 1) // 2)
    mask = np.uint64((1 << half) - 1)
    keys = [np.uint64(_key("feistel", key, r)) for r in range(rounds)]

    def once(v: np.ndarray) -> np.ndarray:
        left, right = v >> np.uint64(half), v & mask
        for k in keys:
            left, right = right, left ^ (_mix64(right ^ k) & mask)
        return (left << np.uint64(half)) | right

    with np.errstate(over="ignore"):
        x = once(x)
        todo = x >= np.uint64(n)
        while todo.any():
            x[todo] = once(x[todo])
            todo = x >= np.uint64(n)
    return x.astype(np.int64)


def window_key(seed: int, source: str, epoch: int) -> int:
    return _key("window", seed, source, epoch)


def validation_key(seed: int, source: str) -> int:
    return _key("validation", seed, source)
