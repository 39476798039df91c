import pytest

from tinyllama_cli.hardware import GPUS, gpu_for_device_name


@pytest.mark.parametrize("device_name, expected", [
    ("NVIDIA A100-SXM4-40GB", "a100-40g"),
    ("NVIDIA A100-SXM4-80GB", "a100-80g"),
    ("NVIDIA H100 80GB HBM3", "h100"),
    ("NVIDIA H100 PCIe", "h100-pcie"),
    ("NVIDIA H200", "h200"),
    ("NVIDIA A10G", "a10g"),
    ("NVIDIA L40S", "l40s"),
    ("NVIDIA L4", "l4"),
])
def test_cuda_device_names_map_to_the_right_entry(device_name, expected):
    assert gpu_for_device_name(device_name).name == expected


def test_unknown_device_is_none_and_a100_is_tinyllamas_312_tflops():
    assert gpu_for_device_name("Some Future GPU") is None
    assert GPUS["a100-40g"].peak_bf16_tflops == 312.0
