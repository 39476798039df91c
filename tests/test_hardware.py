"""The GPU table, the CPU's measured peak and the CPU thread default."""

import os
import platform
import subprocess
import sys

import pytest
import torch

from tinyllama_cli import hardware
from tinyllama_cli.errors import UserError
from tinyllama_cli.hardware import GPUS, choose_cpu_threads, cpu_peak_flops, gpu_for_device_name


@pytest.mark.parametrize(
    "device_name, expected",
    [
        ("NVIDIA A100-SXM4-40GB", "a100-40g"),
        ("NVIDIA A100-SXM4-80GB", "a100-80g"),
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H100 NVL", "h100-nvl"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA H200 NVL", "h200-nvl"),
        ("NVIDIA A10G", "a10g"),
        ("NVIDIA L40S", "l40s"),
        ("NVIDIA L4", "l4"),
    ],
)
def test_cuda_device_names_map_to_the_right_entry(device_name, expected):
    assert gpu_for_device_name(device_name).name == expected


def test_unknown_device_is_none_and_a100_is_tinyllamas_312_tflops():
    assert gpu_for_device_name("Some Future GPU") is None
    assert GPUS["a100-40g"].peak_bf16_tflops == 312.0


def test_the_peak_follows_the_precision():
    a100 = GPUS["a100-40g"]
    assert a100.peak_tflops("bf16") == 312.0 and a100.peak_tflops("fp32") == 19.5
    assert all(g.peak_fp32_tflops < g.peak_bf16_tflops for g in GPUS.values())


def test_cpu_peak_is_one_cores_cpu_time_rate_times_threads(monkeypatch):
    """Timed with the thread's CPU time (so other processes cannot slow it), one thread, best
    of the repeats, in the faster of a linear layer's two layouts, scaled to the worker's
    threads; torch's thread count is restored."""
    # one probe of each layout (a @ b.T: 0.5 s, a @ b: 1.0 s), then three timed a @ b.T
    clock = iter([0.0, 0.5, 0.5, 1.5, 2.0, 2.5, 3.0, 3.25, 4.0, 5.0])
    monkeypatch.setattr(hardware.time, "thread_time", lambda: next(clock))
    seen, layouts = [], []
    real_mm = torch.Tensor.__matmul__

    def mm(a, b):
        seen.append(torch.get_num_threads())
        layouts.append("a @ b" if b.is_contiguous() else "a @ b.T")
        return real_mm(a, b)

    monkeypatch.setattr(torch.Tensor, "__matmul__", mm)
    torch.set_num_threads(2)
    try:
        peak = cpu_peak_flops("fp32", threads=4, sizes=(64,), repeats=3)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert set(seen) == {1}
    assert layouts[-3:] == ["a @ b.T"] * 3  # the faster layout's timed products
    assert peak == pytest.approx(4 * 2 * 64**3 / 0.25)


def test_cpu_peak_takes_the_faster_layout_and_bounds_a_linear_layer():
    """Where bf16 is emulated torch runs `a @ b` several times slower than `a @ b.T` (a 2-core
    AVX2 EPYC: 1.3 vs 8.9 GFLOP/s), and a peak from the slow one put MFU above 100%: the peak
    is at least what a linear layer's forward reaches at the same size (2x margin for noise)."""
    import time

    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        peak = cpu_peak_flops(precision, 1, sizes=(256,), repeats=3)
        x, w = torch.randn(256, 256, dtype=dtype), torch.randn(256, 256, dtype=dtype)
        torch.nn.functional.linear(x, w)
        start = time.thread_time()
        torch.nn.functional.linear(x, w)
        elapsed = time.thread_time() - start
        if elapsed > 0:
            assert 2 * peak >= 2 * 256**3 / elapsed, precision


def test_cpu_peak_is_positive_at_both_precisions():
    assert cpu_peak_flops("fp32", 1, sizes=(128,), repeats=2) > 1e8
    assert cpu_peak_flops("bf16", 1, sizes=(128,), repeats=2) > 1e7


@pytest.mark.parametrize(
    "cores, idle, expected",
    [
        (2, 2.0, 2),
        (2, 1.9, 2),
        (2, 1.6, 1),
        (2, 1.0, 1),
        (2, 0.0, 1),
        (2, None, 2),
        (16, 3.0, 3),
        (4, 8.0, 4),
    ],
)
def test_threads_go_to_idle_cores_only(cores, idle, expected):
    assert choose_cpu_threads(cores, idle) == expected


def test_idle_cpus_reads_proc_stat(monkeypatch):
    samples = iter([(100.0, 400.0), (150.0, 500.0)])  # 50 of 100 jiffies idle over our CPUs
    monkeypatch.setattr(hardware, "_cpu_times", lambda cpus: next(samples))
    monkeypatch.setattr(hardware, "_affinity", lambda: {0, 1})
    monkeypatch.setattr(hardware.time, "sleep", lambda s: None)
    assert hardware.idle_cpus() == pytest.approx(1.0)


def test_cpu_times_sum_idle_and_iowait_of_the_cpus_asked_for():
    if hardware._cpu_times({0}) is None:
        pytest.skip("no /proc/stat")
    idle, total = hardware._cpu_times({0})
    assert 0 <= idle <= total and total > 0
    both = hardware._cpu_times({0, 1} if len(hardware._affinity()) > 1 else {0})
    assert both[1] >= total


def test_set_cpu_threads_takes_the_flag_or_refuses_zero(monkeypatch):
    assert hardware.set_cpu_threads(1) == (1, "--threads")
    with pytest.raises(UserError, match="--threads must be at least 1"):
        hardware.set_cpu_threads(0)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert hardware.set_cpu_threads(None) == (1, "OMP_NUM_THREADS")


class _Clock:
    """time.monotonic / own CPU seconds / /proc/stat samples the test moves by hand."""

    def __init__(self):
        self.wall = self.own = 0.0
        self.idle = self.total = 0.0

    def run(self, seconds: float, own_cpu_s: float, busy_cpus: float, cpus: int = 2):
        self.wall += seconds
        self.own += own_cpu_s
        self.total += 100 * seconds * cpus  # jiffies at SC_CLK_TCK 100
        self.idle += 100 * seconds * (cpus - busy_cpus)


def _governed(monkeypatch, threads: int) -> tuple[_Clock, hardware.ThreadGovernor]:
    clock = _Clock()
    monkeypatch.setattr(hardware, "_affinity", lambda: {0, 1})
    monkeypatch.setattr(hardware, "_cpu_times", lambda cpus: (clock.idle, clock.total))
    monkeypatch.setattr(hardware.time, "monotonic", lambda: clock.wall)
    # All of our own CPU time, children included: the real count would add the suite's own
    # children (inductor's compile workers, finished subprocesses) and float rounding with it.
    monkeypatch.setattr(hardware, "own_cpu_seconds", lambda tick=100.0: clock.own)
    monkeypatch.setattr(hardware.os, "sysconf", lambda name: 100)
    set_threads = []
    monkeypatch.setattr(torch, "set_num_threads", set_threads.append)
    governor = hardware.ThreadGovernor(cores=2, threads=threads)
    governor.set_threads = set_threads  # what torch was told, for the assertions
    return clock, governor


def test_governor_counts_only_other_processes_load(monkeypatch):
    """Both cores busy with our own two threads is no foreign load: the job keeps 2 threads;
    a start-up that chose 1 thread (a core was busy at that instant) goes back to 2."""
    clock, governor = _governed(monkeypatch, threads=1)
    clock.run(10.0, own_cpu_s=20.0, busy_cpus=2.0)
    assert governor.update() == (1, 2, 0.0)
    assert governor.set_threads == [2]
    clock.run(10.0, own_cpu_s=20.0, busy_cpus=2.0)
    assert governor.update() is None  # unchanged: torch is not touched again
    assert governor.set_threads == [2]


def test_governor_drops_a_thread_when_another_process_holds_a_core(monkeypatch):
    clock, governor = _governed(monkeypatch, threads=2)
    clock.run(10.0, own_cpu_s=10.0, busy_cpus=2.0)  # a hog took one core's worth
    assert governor.update() == (2, 1, pytest.approx(1.0))
    clock.run(1.0, own_cpu_s=1.0, busy_cpus=1.0)  # the hog left, but 1 s is too short to say
    assert governor.update() is None
    clock.run(9.0, own_cpu_s=9.0, busy_cpus=1.0)  # the window kept accumulating: 10 s now
    assert governor.update() == (1, 2, pytest.approx(0.0))


def test_governor_sees_a_real_busy_process():
    """A real `while True` process that is not ours (started by a child that exits, so it is
    nobody's descendant here): its CPU time is foreign."""
    import signal
    import subprocess
    import sys
    import time

    if hardware._cpu_times(hardware._affinity()) is None:
        pytest.skip("no /proc/stat")
    governor = hardware.ThreadGovernor(cores=2, threads=2, min_window_s=1.0)
    spawn = (  # the hog must not hold our pipe open, or run() would wait for it forever
        "import subprocess as s, sys; print(s.Popen([sys.executable, '-c', 'while 1: pass'], "
        "stdout=s.DEVNULL, stderr=s.DEVNULL, stdin=s.DEVNULL).pid)"
    )
    started = subprocess.run(
        [sys.executable, "-c", spawn], capture_output=True, text=True, check=True
    )
    hog = int(started.stdout)
    try:
        time.sleep(1.5)
        foreign = governor.foreign_cpus()
    finally:
        os.kill(hog, signal.SIGKILL)
    assert foreign is not None and foreign >= 0.5


def test_own_cpu_seconds_counts_our_live_subprocesses():
    """inductor's compile workers are this job's load: a live child's CPU time is ours."""
    import subprocess
    import sys

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\n"
    burn += "print('done', flush=True)\ntime.sleep(30)"
    before = hardware.own_cpu_seconds()
    child = subprocess.Popen([sys.executable, "-c", burn], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "done"  # it has burnt 0.5 s and lives on
        assert hardware.own_cpu_seconds() - before >= 0.5
    finally:
        child.kill()
        child.wait()


_REALLOCATE = """
import resource, sys
import torch
from tinyllama_cli.hardware import keep_freed_memory
done = keep_freed_memory() if sys.argv[1] == "keep" else None
x = torch.zeros(32000, 512)  # 64 MB, over glibc's largest mmap threshold (32 MiB)
del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):  # a step's pattern: the same large tensor freed and allocated again
    x = torch.zeros(32000, 512)
    small = [torch.ones(100) for _ in range(10)]
    del x, small
print(done, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _reallocation_faults(mode: str, **env: str) -> tuple[str, int]:
    """(what keep_freed_memory said, minor page faults of four more 64 MB allocations), in a
    fresh process: the settings are process-wide, and torch's THP switch is read once."""
    clean = {k: v for k, v in os.environ.items() if k not in hardware.ALLOCATOR_VARIABLES}
    clean.pop("THP_MEM_ALLOC_ENABLE", None)
    out = subprocess.run(
        [sys.executable, "-c", _REALLOCATE, mode],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return " ".join(out[:-1]), int(out[-1])


glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")


@glibc_only
def test_tuned_allocator_reallocates_with_far_fewer_page_faults():
    """glibc's default unmaps each freed 64 MB block and faults the next one in 4 KiB at a time
    (16,000 faults each); tuned, the same loop faults a small fraction of that (0-2,200 of
    64,000 measured, the rest in 2 MiB pages or reused heap)."""
    said, faults = _reallocation_faults("keep")
    _, default_faults = _reallocation_faults("default")
    assert said.startswith("freed memory kept")
    assert default_faults > 30000  # four fresh 64 MB blocks: what the setting is for
    assert faults * 8 < default_faults


@glibc_only
def test_an_allocator_the_user_chose_is_left_alone():
    said, faults = _reallocation_faults("keep", MALLOC_MMAP_MAX_="65536")
    assert said == "None" and faults > 30000
