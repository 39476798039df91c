"""Accelerator specifications: one table of GPUs for the whole tool, and the CPU's peak.

`tinyllama plan` looks GPUs up by name (`--gpu a100-40g`); the trainer's MFU looks the running
CUDA device up by the name the driver reports (`gpu_for_device_name`) and takes the peak of the
precision it trains in (an fp32 run is not divided by the bf16 tensor-core peak). A CPU has no
data sheet we can trust inside a VM (the clock the hypervisor reports is not the turbo clock the
cores run at), so its peak is measured: `cpu_peak_flops`.

This module imports torch only inside `cpu_peak_flops`: `plan` stays torch-free.
"""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tinyllama_cli.errors import UserError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class GPU:
    """Dense (no sparsity) peaks and nominal memory, from vendor datasheets.

    `peak_bf16_tflops` is the bf16 tensor-core figure (fp16 where the part has no bf16);
    `peak_fp32_tflops` plain fp32 (no TF32: the trainer leaves TF32 off, so fp32 means fp32).
    `device_names` are substrings of `torch.cuda.get_device_name()` that identify the part;
    more specific entries come first in GPUS so that, e.g., "H100 NVL" wins over "H100".
    """

    name: str
    peak_bf16_tflops: float
    peak_fp32_tflops: float
    memory_gib: float
    device_names: tuple[str, ...] = ()

    def peak_tflops(self, precision: str) -> float:
        """Peak of the precision a run computes its matmuls in ("bf16" or "fp32")."""
        return self.peak_fp32_tflops if precision == "fp32" else self.peak_bf16_tflops


GPUS: dict[str, GPU] = {
    g.name: g
    for g in [
        GPU("a100-40g", 312.0, 19.5, 40.0, ("A100-SXM4-40GB", "A100-PCIE-40GB", "A100 40GB")),
        GPU("a100-80g", 312.0, 19.5, 80.0, ("A100",)),
        GPU("a800", 312.0, 19.5, 80.0, ("A800",)),
        GPU("h100-pcie", 756.0, 51.2, 80.0, ("H100 PCIe",)),
        GPU("h100-nvl", 835.0, 60.0, 94.0, ("H100 NVL",)),  # 1671 with sparsity
        GPU("h100", 989.0, 67.0, 80.0, ("H100", "H800")),  # SXM5 (1979 with sparsity)
        GPU("h200-nvl", 835.0, 60.0, 141.0, ("H200 NVL",)),
        GPU("h200", 989.0, 67.0, 141.0, ("H200",)),  # SXM: H100's compute, HBM3e
        GPU("b200", 2250.0, 75.0, 180.0, ("B200",)),  # HGX B200 per GPU
        GPU("l40s", 362.0, 91.6, 48.0, ("L40S",)),
        GPU("a10g", 125.0, 31.2, 24.0, ("A10G",)),
        GPU("a10", 125.0, 31.2, 24.0, ("A10",)),
        GPU("l4", 121.0, 30.3, 24.0, ("L4",)),
        GPU("v100", 125.0, 15.7, 32.0, ("V100",)),  # fp16 tensor cores (no bf16)
        GPU("rtx-3090", 71.0, 35.6, 24.0, ("RTX 3090",)),  # GA102: bf16 with fp32 accumulate
        GPU("rtx-4090", 165.2, 82.6, 24.0, ("RTX 4090",)),  # AD102: bf16 with fp32 accumulate
        GPU("mi300x", 1307.4, 163.4, 192.0, ("MI300X",)),
        GPU("mi250x", 383.0, 47.9, 128.0, ("MI250X",)),
    ]
}


def gpu_for_device_name(device_name: str) -> GPU | None:
    """The table entry whose identifying substring occurs in a CUDA device name, if any."""
    for gpu in GPUS.values():
        if any(key in device_name for key in gpu.device_names):
            return gpu
    return None


def cpu_flags() -> set[str]:
    """The flags of /proc/cpuinfo's first processor (empty where there is no /proc)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


# The flags that decide a CPU's matmul paths (AVX2, AVX-512, AVX512-BF16, AMX), for reports.
MATMUL_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def matmul_flags_shown() -> str:
    """The CPU's matmul-relevant flags, space-separated ('-' for none): what a benchmark prints
    so that its figures say which kind of CPU they came from."""
    return " ".join(sorted(cpu_flags() & set(MATMUL_FLAGS))) or "-"


def cpu_bf16_kind(flags: set[str] | None = None) -> str | None:
    """ "amx_bf16", "avx512_bf16" or None: which native bf16 matmul instructions the CPU has."""
    flags = cpu_flags() if flags is None else flags
    return next((f for f in ("amx_bf16", "avx512_bf16") if f in flags), None)


def cpu_peak_flops(
    precision: str, threads: int, sizes: tuple[int, ...] = (512, 768, 1024), repeats: int = 5
) -> float:
    """Peak matmul FLOP/s of `threads` cores at `precision`: one core's best rate x threads.

    One core's rate is timed in that thread's CPU time (`time.thread_time`), not wall time, so
    other processes competing for the cores do not change it: a wall-clock timing on a busy
    machine read 1.1e11 in one run and 4.4e11 in the next, and MFU then read 150%. A core's rate
    times the core count is an upper bound of what several threads reach together (they share
    memory bandwidth, and the turbo clock drops as more cores run), so MFU stays below 100%.

    The products are timed in the faster of the two layouts a linear layer multiplies in,
    `a @ b` (its backward's) and `a @ b.T` (its forward's), chosen at the first size: where
    bf16 is emulated torch runs them at very different rates (a 2-core AVX2 EPYC: 1.3 vs 8.9
    GFLOP/s at 512), and a peak read from the slow one put a bf16 run's MFU above 100%.
    About 0.3 s (2.5 s where bf16 is emulated, on that EPYC; 15 s there before the layout
    choice).
    """
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)  # the global RNG is the training run's
    try:
        best, transposed = 0.0, None
        for n in sizes:
            a, b = (torch.randn(n, n, dtype=dtype, generator=generator) for _ in range(2))
            if transposed is None:  # decided at the first size, by one timed product of each
                transposed = _one_core_rate(a, b.mT, 1) > _one_core_rate(a, b, 1)
            best = max(best, _one_core_rate(a, b.mT if transposed else b, repeats))
    finally:
        torch.set_num_threads(previous)
    return best * threads


def _one_core_rate(a: torch.Tensor, b: torch.Tensor, repeats: int) -> float:
    """The best FLOP/s of `repeats` timed `a @ b` (CPU time of this thread), after a warm-up
    (first-call kernel selection and page faults)."""
    a @ b
    best = 0.0
    for _ in range(repeats):
        start = time.thread_time()
        a @ b
        elapsed = time.thread_time() - start
        if elapsed > 0:
            best = max(best, 2 * a.size(0) * a.size(1) * b.size(1) / elapsed)
    return best


def _cpu_times(cpus: set[int]) -> tuple[float, float] | None:
    """(idle, total) jiffies summed over `cpus`, from /proc/stat; None where it is unreadable."""
    idle = total = 0.0
    try:
        with open("/proc/stat") as f:
            for line in f:
                name, *values = line.split()
                if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
                    continue
                numbers = [float(v) for v in values]
                idle += numbers[3] + (numbers[4] if len(numbers) > 4 else 0.0)  # idle + iowait
                total += sum(numbers[:8])  # user..steal; guest time is already inside user
    except (OSError, ValueError):
        return None
    return idle, total


def idle_cpus(interval_s: float = 0.1) -> float | None:
    """How many of this process's CPUs were idle over the next `interval_s` (None: unknown)."""
    cpus = _affinity()
    before = _cpu_times(cpus)
    time.sleep(interval_s)
    after = _cpu_times(cpus)
    if before is None or after is None or after[1] <= before[1]:
        return None
    return len(cpus) * (after[0] - before[0]) / (after[1] - before[1])


def choose_cpu_threads(cores: int, idle: float | None) -> int:
    """Intra-op threads for a CPU process: at most `cores`, and only cores that are idle.

    PyTorch's OpenMP threads wait for each other at the end of every operator. When another
    process holds one of the cores, the thread sharing it runs only in time slices, and all the
    others wait for it: generation on a busy 2-core machine fell from 633 tokens/s with one
    thread to 12 with two (benchmarks/README.md). So a core counts only when it is at least 75%
    idle.
    """
    return max(1, cores if idle is None else min(cores, int(idle + 0.25)))


def default_cpu_threads() -> tuple[int, str]:
    """(threads, why) for a CPU command on this machine: PyTorch's count (the physical cores,
    or OMP_NUM_THREADS when set), lowered to the cores that are idle right now."""
    import torch

    cores = torch.get_num_threads()
    if os.environ.get("OMP_NUM_THREADS"):
        return cores, "OMP_NUM_THREADS"
    idle = idle_cpus()
    why = "idle cores unknown" if idle is None else f"{idle:.1f} of {len(_affinity())} CPUs idle"
    return choose_cpu_threads(cores, idle), why


def own_cpu_seconds(tick: float = 100.0) -> float:
    """CPU seconds of this process, its finished children and its live descendants (inductor's
    compile workers, a data or eval subprocess): all of it is this job's load, not another's."""
    times = os.times()
    total = time.process_time() + times.children_user + times.children_system
    try:
        parents: dict[int, list[tuple[int, float]]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:  # gone since the listing
                continue
            # After the name: state, ppid, ..., utime and stime are fields 12 and 13 (0-based).
            cpu_s = (float(fields[11]) + float(fields[12])) / tick
            parents.setdefault(int(fields[1]), []).append((int(entry.name), cpu_s))
    except OSError:  # no /proc: this process alone
        return total
    todo = [os.getpid()]
    while todo:
        for pid, cpu_s in parents.get(todo.pop(), []):
            total += cpu_s
            todo.append(pid)
    return total


class ThreadGovernor:
    """Re-decides a long CPU job's intra-op threads between steps, from the load that *other*
    processes put on its cores since the last look.

    The start-up choice (`default_cpu_threads`) sees 0.1 s: a job that started beside a
    finishing process (a pip install, the previous command of a script) kept one thread for
    hours after the core was free again; in benchmarks/race.py's first round that cost
    tinyllama 2,724 tok/s against 4,029 with both threads. Our own busy time (this process's
    threads and its subprocesses, `own_cpu_seconds`: inductor's compile workers are ours) is
    subtracted from the cores' busy time in /proc/stat, so what is left is the foreign load,
    and the rule is `choose_cpu_threads`'s: a core counts when it is at least 75% idle of others
    (training cpu-small with one busy process beside it: 3,188 tok/s on 1 thread, 1,652 on 2).
    Windows shorter than `min_window_s` are left to accumulate.
    """

    def __init__(self, cores: int, threads: int, min_window_s: float = 2.0):
        self.cores, self.threads, self.min_window_s = cores, threads, min_window_s
        self._cpus = _affinity()
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._mark = self._sample()

    def _sample(self) -> tuple[float, float, tuple[float, float] | None]:
        return time.monotonic(), own_cpu_seconds(self._tick), _cpu_times(self._cpus)

    def foreign_cpus(self) -> float | None:
        """CPUs' worth of other processes' work since the last call (None: too soon/unknown);
        starts a new window when it answers."""
        now = self._sample()
        (t0, own0, cpu0), (t1, own1, cpu1) = self._mark, now
        if cpu0 is None or cpu1 is None or t1 - t0 < self.min_window_s:
            return None
        self._mark = now
        busy_s = ((cpu1[1] - cpu1[0]) - (cpu0[1] - cpu0[0])) / self._tick
        return max(0.0, (busy_s - (own1 - own0)) / (t1 - t0))

    def update(self) -> tuple[int, int, float] | None:
        """(old, new threads, foreign CPUs) when the count changed (torch is set), else None."""
        foreign = self.foreign_cpus()
        if foreign is None:
            return None
        threads = choose_cpu_threads(self.cores, len(self._cpus) - foreign)
        if threads == self.threads:
            return None
        import torch

        old, self.threads = self.threads, threads
        torch.set_num_threads(threads)
        return old, threads, foreign


def _affinity() -> set[int]:
    if hasattr(os, "sched_getaffinity"):
        return os.sched_getaffinity(0)
    return set(range(os.cpu_count() or 1))


def set_cpu_threads(threads: int | None) -> tuple[int, str]:
    """Set PyTorch's intra-op threads to `threads`, or to `default_cpu_threads()` when None;
    returns (threads, why) for the command to report."""
    import torch

    if threads is not None:
        if threads < 1:
            raise UserError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
        return threads, "--threads"
    threads, why = default_cpu_threads()
    torch.set_num_threads(threads)
    return threads, why


# glibc's mallopt parameters (malloc.h), and the variables that mean the user chose an allocator
# or its settings.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
ALLOCATOR_VARIABLES = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "LD_PRELOAD")


def keep_freed_memory() -> str | None:
    """Tune glibc's allocator for a CPU training worker: large blocks from the heap, kept.

    Why: glibc serves every block over 32 MiB with a fresh mmap and unmaps it on free, while a
    training step frees and reallocates the same large tensors every micro batch (the head's
    and the embedding's gradients, activations), so each is page-faulted in afresh, 4 KiB at a
    time: ~1M minor page faults per process of 8 cpu-bench steps. Here mmap is off (M_MMAP_MAX
    0; glibc still falls back to it where the heap cannot grow), the heap is not handed back
    below 2 GiB of free top (M_TRIM_THRESHOLD), and PyTorch's THP_MEM_ALLOC_ENABLE asks for 2 MiB
    pages for large tensors (read at torch's first CPU allocation, which in a `tinyllama
    pretrain` process comes after this). A freed block is not always reused as it was (a small
    allocation can split it, and the heap grows instead), but measured together on an
    AVX512-BF16 EPYC, bf16 cpu-bench step: page faults 1.0M -> 130k per process and 1.07x
    (2 MiB pages alone: no gain; benchmarks/README.md, "profile_step.py"). The process keeps
    its peak memory until it exits, as tcmalloc does.

    Left alone where it is not glibc, or where the user chose (any of ALLOCATOR_VARIABLES set,
    e.g. tcmalloc preloaded; a THP_MEM_ALLOC_ENABLE of the user's is kept as it is). Returns what
    was done, for the run's start line, or None.
    """
    if platform.libc_ver()[0] != "glibc" or any(os.environ.get(v) for v in ALLOCATOR_VARIABLES):
        return None
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    if not (mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)):
        return None
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    return "freed memory kept (glibc mmap off)"


def cpp_compiler() -> str | None:
    """The C++ compiler inductor would use on CPU ($CXX, g++, clang++ or c++), or None: without
    one, torch.compile fails at its first call on CPU."""
    return next(
        (c for c in (os.environ.get("CXX"), "g++", "clang++", "c++") if c and shutil.which(c)),
        None,
    )
