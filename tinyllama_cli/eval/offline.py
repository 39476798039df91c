"""Offline mode, decided up front: every task local, HF_HUB_OFFLINE set, or the hub unreachable.

The Hugging Face libraries then run offline for the eval, so nothing waits on network retries
(`datasets` retries for ~25 s per task otherwise); a task whose data is neither local nor cached
then fails in seconds with one line naming `--dataset` (`tasks.load_tasks`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
# The flags the libraries read from the environment when imported: (module, attribute).
OFFLINE_FLAGS = (
    ("huggingface_hub.constants", "HF_HUB_OFFLINE"),
    ("datasets.config", "HF_HUB_OFFLINE"),
    ("datasets.config", "HF_DATASETS_OFFLINE"),
)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hugging Face hub opens within `timeout` seconds."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    address = (url.hostname or "huggingface.co", url.port or 443)
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").upper() in ("1", "ON", "YES", "TRUE")


def decide_offline(names: list[str], local: dict[str, Path]) -> bool:
    """Offline when the user said so, when every task has local data, or when the hub does not
    answer (a 3 s probe, only when it matters)."""
    if _env_true("HF_HUB_OFFLINE") or _env_true("HF_DATASETS_OFFLINE"):
        return True
    if all(name in local for name in names):
        return True
    return not hub_reachable()


@contextlib.contextmanager
def offline_mode(enabled: bool) -> Iterator[None]:
    """Put huggingface_hub, datasets and transformers in offline mode for the block.

    The libraries read the environment at import time, so already-imported modules get their
    flags set too; everything is restored afterwards.
    """
    if not enabled:
        yield
        return
    saved_env = {k: os.environ.get(k) for k in OFFLINE_ENV}
    os.environ.update({k: "1" for k in OFFLINE_ENV})
    saved_attrs = []
    for module_name, attr in OFFLINE_FLAGS:
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, attr):
            saved_attrs.append((module, attr, getattr(module, attr)))
            setattr(module, attr, True)
    try:
        yield
    finally:
        for module, attr, value in saved_attrs:
            setattr(module, attr, value)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
