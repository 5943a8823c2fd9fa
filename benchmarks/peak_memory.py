"""Peak memory one case adds, for medseg_eval or surface-distance, measured in a fresh process.

:func:`measure` runs ``python -m benchmarks.peak_memory KIND LIBRARY`` and reads the JSON line it
prints. That process builds the kind's cases, keeps the largest, makes the kind's runner for it
(tensors, or PNG files for the end-to-end kind), calls the library once on a small case (imports and
one-time set-up are not the case's), then takes ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after
one call on the case minus the resident size just before it. Always on the CPU (host memory).

Two Linux details make that difference the call's own peak:

- ``ru_maxrss`` of an exec'd process starts at the peak of the image it replaced: a child spawned
  (vfork/posix_spawn) by a large parent inherits the parent's peak. So the process first re-executes
  itself from a fork of itself while still small.
- Building the inputs peaks above what stays resident, and leaves freed memory in the C heap that
  the call could reuse unseen. Just before the call, ``malloc_trim`` (glibc) returns free heap pages
  to the system and writing ``5`` to ``/proc/self/clear_refs`` (Linux 4.0+) resets the peak to the
  current size.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

LIBRARIES = ("medseg_eval", "surface-distance")
_FRESH = "MEDSEG_EVAL_PEAK_MEMORY_FRESH"


def measure(kind: str, library: str, *, quick: bool, cases: int | None) -> dict:
    """``{"bytes": added peak, "pixels": pixels of the case, "shape": [H, W]}`` from a fresh process, or
    ``{"error": message}``."""
    command = [sys.executable, "-m", "benchmarks.peak_memory", kind, library] + ["--quick"] * quick
    if cases is not None:
        command += ["--cases", str(cases)]
    done = subprocess.run(command, check=False, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _restart_small() -> None:
    """Run this command again from a fork of this (still small) process, so its ``ru_maxrss`` starts small."""
    if os.environ.get(_FRESH):
        return
    os.environ[_FRESH] = "1"
    pid = os.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-m", "benchmarks.peak_memory", *sys.argv[1:]])
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_added(run) -> int:
    gc.collect()
    ctypes.CDLL(None).malloc_trim(0)  # freed heap pages back to the system, so the call's own pages count
    before = _resident_bytes()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # the peak so far becomes the current size
    if resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 > before + (1 << 20):
        raise RuntimeError("the peak resident size could not be reset to the current size")
    run()
    return max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind")
    parser.add_argument("library", choices=LIBRARIES)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cases", type=int)
    args = parser.parse_args()
    _restart_small()

    from benchmarks.kinds import KINDS, tiny_case
    from benchmarks.runners import runner

    kind = KINDS[args.kind]
    case = max(kind.make(args.quick, args.cases), key=lambda c: c[1].size)
    with (runner([tiny_case()], files=kind.files, batch=1, device="cpu") as warm,
          runner([case], files=kind.files, batch=1, device="cpu") as run):
        side = "ours" if args.library == "medseg_eval" else "reference"
        getattr(warm, side)("surface-distance")
        added = _peak_added(lambda: getattr(run, side)("surface-distance"))
    print(json.dumps({"bytes": added, "pixels": int(case[1].size), "shape": list(case[1].shape)}))


if __name__ == "__main__":
    main()
