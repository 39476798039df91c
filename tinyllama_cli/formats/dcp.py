"""Reading torch.distributed.checkpoint (DCP) directories without running any code they hold.

DCP stores a checkpoint's index in `.metadata` with `pickle`, and non-tensor values (the
optimizer's param groups) as `torch.save` bytes that its default planner reads back with
`torch.load(weights_only=False)`. Either way, a crafted checkpoint runs arbitrary code in
whoever loads it: a shell command ran inside `tinyllama generate` from a downloaded checkpoint.
Every load in this package goes through `load` and `read_metadata` here instead:

- `.metadata` is unpickled by `_MetadataUnpickler`, which resolves only the classes DCP's own
  metadata is made of (and torch dtypes, `torch.Size`, layouts, paths); any other global is
  refused with a `UserError` naming it;
- bytes entries are read with `torch.load(weights_only=True)` (plain numbers, strings and
  containers, which is all the optimizer's param groups are).
"""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta

from tinyllama_cli.errors import UserError

_METADATA_MODULE = "torch.distributed.checkpoint.metadata"
_ALLOWED = {
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),  # a str -> torch.layout lookup
    ("pathlib", "PosixPath"),
    ("pathlib", "PurePosixPath"),
    ("pathlib", "WindowsPath"),
    ("pathlib", "PureWindowsPath"),
    ("collections", "OrderedDict"),
}


class _Forbidden(pickle.UnpicklingError):
    """A global outside the allowed set: the file asks to run something."""


class _MetadataUnpickler(pickle.Unpickler):
    """Resolves only the globals a DCP `.metadata` is built from."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module == _METADATA_MODULE:
            value = super().find_class(module, name)
            if isinstance(value, type):  # its dataclasses and enums, nothing callable else
                return value
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise _Forbidden(f"{module}.{name}")


class SafeReader(FileSystemReader):
    """DCP's file-system reader with `.metadata` read by the restricted unpickler.

    The index is read once and kept: DCP's loader calls `read_metadata` inside a blanket
    `except` (falling back to per-rank files), which would swallow the refusal, so `load` reads
    it first, outside DCP, and DCP then gets the checked copy."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._metadata: Metadata | None = None

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        if self._metadata is None:
            self._metadata = self._read_metadata()
        self._metadata.storage_meta.load_id = self.load_id
        return self._metadata

    def _read_metadata(self) -> Metadata:
        path = self._get_metadata_path()
        with self.fs.create_stream(path, "rb") as f:
            raw = f.read()
        try:
            metadata = _MetadataUnpickler(io.BytesIO(raw)).load()
        except _Forbidden as exc:
            raise UserError(
                f"{Path(str(path))} refers to {exc}, which is no part of a "
                "torch.distributed.checkpoint index; refusing to load it (it could run "
                "code): use a checkpoint from a source you trust"
            ) from None
        except (
            EOFError,
            ValueError,
            TypeError,
            AttributeError,
            IndexError,
            KeyError,
            ImportError,
            pickle.PickleError,
        ) as exc:  # truncated, or not a pickle at all
            raise UserError(
                f"{Path(str(path))} is not a readable checkpoint index ({type(exc).__name__}); "
                "the checkpoint is damaged: use another one"
            ) from None
        if not isinstance(metadata, Metadata):
            raise UserError(
                f"{Path(str(path))} does not hold a checkpoint index; the checkpoint is damaged"
            )
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        return metadata


class SafePlanner(DefaultLoadPlanner):
    """DCP's default load planner with bytes entries read by `torch.load(weights_only=True)`."""

    def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
        try:
            loaded = torch.load(value, weights_only=True)
        except pickle.UnpicklingError:
            raise UserError(
                f"checkpoint entry {read_item.dest_index.fqn} is not plain data but a "
                "pickled object; refusing to load it (it could run code): use a "
                "checkpoint from a source you trust"
            ) from None
        if self.flatten_state_dict:
            from torch.distributed.checkpoint._traverse import set_element

            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], loaded)
        else:
            self.state_dict[read_item.dest_index.fqn] = loaded


def read_metadata(checkpoint: Path) -> Metadata:
    """A checkpoint's DCP index, read safely."""
    return SafeReader(str(checkpoint)).read_metadata()


def load(state_dict: dict[str, Any], checkpoint: Path) -> None:
    """`dcp.load` into `state_dict` in place (resharding as DCP does), reading nothing that runs
    code. Works with or without a process group."""
    from torch.distributed.checkpoint.api import CheckpointException

    reader = SafeReader(str(checkpoint))
    reader.read_metadata()  # refuses a crafted index here, where the UserError is not swallowed
    try:
        with warnings.catch_warnings():  # "assuming the intent is to load in a single process"
            warnings.filterwarnings("ignore", message=".*single process.*")
            dcp.load(state_dict, storage_reader=reader, planner=SafePlanner())
    except CheckpointException as exc:  # DCP wraps each rank's error: surface a refusal as is
        for failure in getattr(exc, "failures", {}).values():
            error = failure[0] if isinstance(failure, tuple) else failure  # (exception, stack)
            if isinstance(error, UserError):
                raise error from None
        raise
