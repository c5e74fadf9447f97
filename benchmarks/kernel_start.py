"""How long a notebook run takes to start: a notebook-03 kernel cold and warm, and papermill's import.

    .venv/bin/python benchmarks/kernel_start.py [--kernels 5] [--kernel hils-kit] [-o FILE]

Starts ``--kernels`` kernels one after the other with the warm server off (``HILS_WARM_KERNEL=0``: each kernel
is a new Python that imports everything) and as many with it on (:mod:`hils_kit.study.warm_kernel`: the first of
them starts the server and runs cold; the benchmark waits for the server, then times the rest). Each time is from
``start_kernel`` to the end of a cell with notebook 03's imports. Servers run in a temporary folder of their own
and are stopped after.

It also times ``import papermill`` in a new Python, as plain ``python -m papermill`` pays it and as the kit's
notebook runs pay it (:mod:`hils_kit.study.papermill_run`: without jsonschema's IRI check).

Prints one JSON object: the seconds of each kernel, cold and warm, their medians, papermill's import both ways,
and the machine's GEMM peak.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client.manager import KernelManager

sys.path.insert(0, str(Path(__file__).parent))
from machine import gemm_peak  # noqa: E402

IMPORTS = """
import pandas as pd
from hils_kit.score.evaluation import evaluate
from hils_kit.stages.cell import train_config
from hils_kit.train.training import train
"""


def time_kernel(kernel: str, env: dict) -> float:
    """Seconds from starting a kernel to the end of a cell with :data:`IMPORTS`."""
    start = time.perf_counter()
    manager = KernelManager(kernel_name=kernel)
    manager.start_kernel(env=env)
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=300)
        reply = client.execute_interactive(IMPORTS, timeout=300)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"the imports failed: {reply['content']}")
        return time.perf_counter() - start
    finally:
        client.stop_channels()
        manager.shutdown_kernel()


def papermill_import(prelude: str = "", repeats: int = 3) -> float:
    """Median seconds of a new Python that runs ``prelude`` and imports papermill."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"{prelude}import papermill"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=5, help="kernels of each kind (default 5)")
    parser.add_argument("--kernel", default="hils-kit", help="the kernelspec (default hils-kit)")
    parser.add_argument("-o", "--output", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)

    from hils_kit.study import warm_kernel

    with tempfile.TemporaryDirectory() as folder:
        os.environ["TMPDIR"] = folder
        tempfile.tempdir = None  # the servers' folder is in this one
        cold_env = {**os.environ, warm_kernel.SWITCH: "0"}
        warm_env = {**os.environ, warm_kernel.SWITCH: "1"}
        cold = [time_kernel(args.kernel, cold_env) for _ in range(args.kernels)]
        first = time_kernel(args.kernel, warm_env)
        while not list(warm_kernel.servers_folder().glob("*.sock")):
            time.sleep(0.2)
        warm = [time_kernel(args.kernel, warm_env) for _ in range(args.kernels - 1)]
        warm_kernel.stop_servers()
    result = {
        "benchmark": "kernel_start",
        "kernels": args.kernels,
        "cold_seconds": [round(s, 2) for s in cold],
        "warm_first_seconds": round(first, 2),
        "warm_seconds": [round(s, 2) for s in warm],
        "cold_median": round(statistics.median(cold), 2),
        "warm_median": round(statistics.median(warm), 2),
        "papermill_import_seconds": round(papermill_import(), 2),
        "papermill_import_without_iri_check_seconds": round(
            papermill_import("from hils_kit.study.papermill_run import without_iri_check; without_iri_check(); "), 2
        ),
        "fp32_gemm_gflops": round(gemm_peak("float32") / 1e9, 1),
        "cpu_cores": os.cpu_count(),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
