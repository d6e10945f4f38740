"""Machine facts and CPU contention readings for the privacy benchmark.

Only the standard library is used, so both benchmark environments can import this file.
Linux only: the readings come from /proc.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def read_cpu_jiffies() -> tuple[int, int, int]:
    """Return the busy, steal and total CPU time of all cores from /proc/stat, in jiffies."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    # guest time is already counted in user, so it is left out of the total.
    total = user + nice + system + idle + iowait + irq + softirq + steal
    busy = user + nice + system + irq + softirq
    return busy, steal, total


def read_load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


class CpuMonitor:
    """Measure wall time, this process's CPU time and other processes' CPU use over a block.

    ``other_cores`` is the average number of cores that other processes kept busy while
    the block ran: machine-wide busy time minus this process's own CPU time, divided by
    the wall time. It is an estimate, because /proc/stat and os.times() tick separately.
    """

    def __enter__(self) -> CpuMonitor:
        self._load_start = read_load_average()
        self._jiffies_start = read_cpu_jiffies()
        self._own_start = _own_cpu_seconds()
        self._wall_start = time.perf_counter()
        return self

    def __exit__(self, *exc_info) -> None:
        self.wall_seconds = time.perf_counter() - self._wall_start
        self.cpu_seconds = _own_cpu_seconds() - self._own_start
        busy_end, steal_end, _ = read_cpu_jiffies()
        busy_start, steal_start, _ = self._jiffies_start
        ticks_per_second = os.sysconf("SC_CLK_TCK")
        busy_seconds = (busy_end - busy_start) / ticks_per_second
        self.other_cores = max(0.0, (busy_seconds - self.cpu_seconds) / self.wall_seconds)
        self.steal_cores = (steal_end - steal_start) / ticks_per_second / self.wall_seconds
        self.load_start = self._load_start
        self.load_end = read_load_average()

    def as_record(self) -> dict[str, float]:
        return {
            "train_seconds": round(self.wall_seconds, 3),
            "train_cpu_seconds": round(self.cpu_seconds, 3),
            "other_cores": round(self.other_cores, 3),
            "steal_cores": round(self.steal_cores, 3),
            "load_start": self.load_start,
            "load_end": self.load_end,
        }


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def describe_machine() -> dict:
    """Collect the CPU model, core count, memory, kernel and thread settings of this machine."""
    lscpu = _command_output(["lscpu"])
    model = next(
        (line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line),
        platform.processor() or "unknown",
    )
    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    thread_variables = (
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "OPENBLAS_CORETYPE",
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
    )
    return {
        "cpu_model": model,
        "logical_cpus": os.cpu_count(),
        "memory_gib": round(memory_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "thread_environment": {name: os.environ.get(name) for name in thread_variables},
        "lscpu": lscpu,
    }


def _command_output(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        return f"{command[0]} failed: {error}"


if __name__ == "__main__":
    print(json.dumps(describe_machine(), indent=2))
