"""Accelerator specifications: dense bf16 peak FLOP/s and memory, one table for the whole tool.

`tinyllama plan` looks GPUs up by name (`--gpu a100-40g`); the trainer's MFU looks the running
CUDA device up by the name the driver reports (`gpu_for_device_name`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GPU:
    """Dense (no sparsity) bf16 tensor-core peak and nominal memory, from vendor datasheets.

    `device_names` are substrings of `torch.cuda.get_device_name()` that identify the part;
    more specific entries come first in GPUS so that, e.g., "H100 PCIe" wins over "H100".
    """

    name: str
    peak_bf16_tflops: float
    memory_gib: float
    device_names: tuple[str, ...] = ()


GPUS: dict[str, GPU] = {
    g.name: g
    for g in [
        GPU("a100-40g", 312.0, 40.0, ("A100-SXM4-40GB", "A100-PCIE-40GB", "A100 40GB")),  # A100 datasheet
        GPU("a100-80g", 312.0, 80.0, ("A100",)),
        GPU("a800", 312.0, 80.0, ("A800",)),
        GPU("h100-pcie", 756.0, 80.0, ("H100 PCIe",)),
        GPU("h100", 989.0, 80.0, ("H100", "H800")),  # H100 SXM5 datasheet (1979 with sparsity)
        GPU("h200", 989.0, 141.0, ("H200",)),        # H200 SXM: H100's compute, 141 GB HBM3e
        GPU("b200", 2250.0, 180.0, ("B200",)),       # HGX B200: 36 PFLOPS sparse bf16 / 8 GPUs / 2
        GPU("l40s", 362.0, 48.0, ("L40S",)),
        GPU("a10g", 125.0, 24.0, ("A10G",)),
        GPU("a10", 125.0, 24.0, ("A10",)),
        GPU("l4", 121.0, 24.0, ("L4",)),
        GPU("v100", 125.0, 32.0, ("V100",)),         # fp16 tensor cores (no bf16)
        GPU("rtx-3090", 71.0, 24.0, ("RTX 3090",)),  # GA102 whitepaper, bf16 with fp32 accumulate
        GPU("rtx-4090", 165.2, 24.0, ("RTX 4090",)), # AD102 whitepaper, bf16 with fp32 accumulate
        GPU("mi300x", 1307.4, 192.0, ("MI300X",)),   # AMD Instinct MI300X datasheet
        GPU("mi250x", 383.0, 128.0, ("MI250X",)),
    ]
}


def gpu_for_device_name(device_name: str) -> GPU | None:
    """The table entry whose identifying substring occurs in a CUDA device name, if any."""
    for gpu in GPUS.values():
        if any(key in device_name for key in gpu.device_names):
            return gpu
    return None
