"""Native <-> external tensor names, one table per format (Hugging Face, GGUF).

Every Llama format names the same tensors: three top-level ones and nine per layer under some
`PREFIX.N.` path. A `NameMap` holds the two tables and the layer prefix and maps both ways, so
`formats/hf.py` and `formats/gguf.py` state only their tables.
"""

from __future__ import annotations

import re

_NATIVE_LAYER = re.compile(r"layers\.(\d+)\.(.+)")


class NameMap:
    def __init__(self, layer_prefix: str, top_level: dict[str, str], per_layer: dict[str, str]):
        """layer_prefix: the external path before the layer number ("model.layers", "blk");
        top_level / per_layer: native -> external names outside / inside a layer."""
        self.layer_prefix = layer_prefix
        self.top_level, self.per_layer = dict(top_level), dict(per_layer)
        self._top_to_native = {v: k for k, v in top_level.items()}
        self._layer_to_native = {v: k for k, v in per_layer.items()}
        self._layer = re.compile(re.escape(layer_prefix) + r"\.(\d+)\.(.+)")

    def to_external(self, name: str) -> str | None:
        """The external name of a native tensor name, or None if the format has none."""
        if name in self.top_level:
            return self.top_level[name]
        match = _NATIVE_LAYER.fullmatch(name)
        if match and match.group(2) in self.per_layer:
            return f"{self.layer_prefix}.{match.group(1)}.{self.per_layer[match.group(2)]}"
        return None

    def to_native(self, name: str) -> str | None:
        """The native name of an external tensor name, or None if it is not one of the model's."""
        if name in self._top_to_native:
            return self._top_to_native[name]
        match = self._layer.fullmatch(name)
        if match and match.group(2) in self._layer_to_native:
            return f"layers.{match.group(1)}.{self._layer_to_native[match.group(2)]}"
        return None

    def layer_suffix(self, name: str) -> str | None:
        """What follows `PREFIX.N.` in an external per-layer name; None for other names."""
        match = self._layer.fullmatch(name)
        return match.group(2) if match else None
