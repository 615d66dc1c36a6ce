"""Resuming costs what is left: a whole ``classwise reveal``, the same run cut by Ctrl-C
half-way, and its ``--resume``, timed end to end (start-up and evaluation included).

    python bench/resume.py                    # paper preset, small CNN on mnist5k, 10 classes
    python bench/resume.py --preset default

The cut comes at ``--at`` (0.5) of the whole run's wall time. Prints a table and writes
``bench/results/resume_<preset>.json``; the resumed run's files are checked against the
whole run's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
from common import CACHE, child_env, command, machine, save, table, zoo_model

CHILD = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
         "from classwise.cli import main; sys.exit(main(sys.argv[1:]))")


def timed(args: list[str], threads: int, cut_after: float | None = None) -> tuple[float, int]:
    """Wall seconds and exit status of ``classwise ARGS``, sent Ctrl-C after ``cut_after``."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", CHILD, *args], stderr=subprocess.DEVNULL,
                             env=child_env(threads))
    if cut_after is not None:
        try:
            child.wait(timeout=cut_after)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGINT)
    child.wait()
    return time.perf_counter() - start, child.returncode


def same_files(a, b) -> bool:
    with np.load(a / "patterns.npz") as x, np.load(b / "patterns.npz") as y:
        arrays = all(np.array_equal(x[k], y[k]) for k in x.files)

    def figures(run):
        rows = json.loads((run / "results.json").read_text())["classes"]
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    return arrays and figures(a) == figures(b)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="paper")
    p.add_argument("--at", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads of the commands")
    args = p.parse_args()
    model = zoo_model(f"mnist-cnn-s{args.seed}")
    out = CACHE / "resume"
    shutil.rmtree(out, ignore_errors=True)
    run = ["reveal", "--model", str(model), "--data", "mnist5k", "--preset", args.preset,
           "--seed", str(args.seed), "--no-progress", "--out"]
    whole, code = timed([*run, str(out / "whole")], args.threads)
    assert code == 0
    cut, code = timed([*run, str(out / "cut")], args.threads, cut_after=args.at * whole)
    assert code == 130, f"the run was not cut (exit {code}); lower --at"
    resumed, code = timed([*run, str(out / "cut"), "--resume"], args.threads)
    assert code == 0
    rows = [{"run": "whole", "seconds": round(whole, 1)},
            {"run": f"cut at {args.at:.0%}", "seconds": round(cut, 1)},
            {"run": "resume", "seconds": round(resumed, 1),
             "of the whole": round(resumed / whole, 2)},
            {"run": "cut + resume", "seconds": round(cut + resumed, 1),
             "of the whole": round((cut + resumed) / whole, 2)}]
    identical = same_files(out / "whole", out / "cut")
    print(table(rows, [("run", "run"), ("seconds", "wall s"), ("of the whole", "of the whole")]))
    print(f"resumed files identical to the whole run's: {identical}")
    path = save(f"resume_{args.preset}", {"command": command("resume.py", args),
                                          "machine": machine(), "rows": rows,
                                          "identical": identical})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
