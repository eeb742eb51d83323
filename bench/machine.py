"""The machine a benchmark ran on, for the first line of its output: CPU model, cores, GPU if any."""
import os
import platform
import time


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(command: str) -> str:
    """'# CPU model, N cores, date, command' (and the GPU when torch sees one)."""
    gpu = ""
    try:
        import torch
        if torch.cuda.is_available():
            gpu = f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return f"# {cpu_model()}, {os.cpu_count()} cores{gpu}, {time.strftime('%Y-%m-%d')}, {command}"
