"""`python -m bench.profiled_engine <out dir> [module ...]`: Prefect's flow-run engine under
pyinstrument.

The bench sets this as the flow-run command of a deployment (job variable `command`) for a few
runs, so each flow process the worker starts writes its own profile to `<out dir>`. pyinstrument
samples the main thread only, and Prefect loads the flow's code in a helper thread; so the flow's
module is imported first, here, in the main thread (Prefect then finds its imports cached), and
the profile shows what importing it costs.
"""

from __future__ import annotations

import importlib
import os
import runpy
import sys
import time

from pyinstrument import Profiler


def main() -> None:
    out_dir, modules = sys.argv[1], sys.argv[2:]
    sys.argv = [sys.argv[0]]
    profiler = Profiler(interval=0.002)
    started = time.time()
    profiler.start()
    try:
        import prefect  # noqa: F401  (what every flow process imports first)

        for module in modules:
            importlib.import_module(module)
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profiler.stop()
        run_id = os.environ.get("PREFECT__FLOW_RUN_ID", "run")
        name = f"{int(started * 1000)}-{run_id}-{os.getpid()}"
        os.makedirs(out_dir, exist_ok=True)
        profiler.last_session.save(os.path.join(out_dir, f"{name}.pyisession"))  # type: ignore[union-attr]


if __name__ == "__main__":
    main()
