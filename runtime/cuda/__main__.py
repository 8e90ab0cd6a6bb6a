"""Command line: ``python -m ferrule.runtime.cuda {devices | info A | run A [-n N]}``
(``python -m ferrule_cuda ...`` for a copy of this folder named so; see the
package docstring).

``devices``: the GPUs the driver sees. ``info``: an artifact's target,
kernels, launch configurations and signature (no GPU needed). ``run``: call
the artifact on random inputs already on the device, check the outputs
are finite, and time it with CUDA events.
"""

import argparse
import ctypes
import json
import sys

import numpy as np

from . import artifact, driver
from .launcher import DeviceArray, load


def _devices() -> int:
    count = ctypes.c_int()
    driver.call("cuDeviceGetCount", ctypes.byref(count))
    for d in range(count.value):
        print(json.dumps({"device": d, **driver.device_info(d)}))
    return 0


def _info(path: str) -> int:
    art = artifact.load(path)
    plan = art["plan"]
    print(f"function  {art['function']}  target {art['target']['sm']} "
          f"PTX {art['target']['ptx_version']}  fast_math={art['fast_math']}  "
          f"cubin={'yes' if art.get('cubin') else 'no'}")
    for io in ("inputs", "outputs"):
        print(f"{io:9} " + ", ".join(f"{s['dtype']}{s['shape']}" for s in plan[io]))
    for name, k in art["kernels"].items():
        extra = {key: k[key] for key in ("vector", "registers", "spill_stores", "spill_loads")
                 if key in k}
        print(f"kernel    {name}: {k['kind']}, {k['elements']} elements, grid "
              f"{k['grid']} block {k['block']}, grid_stride={k['grid_stride']} {extra or ''}")
    print(f"steps     {len(plan['steps'])} ("
          + ", ".join(s['op'] + (' ' + s['kernel'] if s['op'] == 'launch' else '')
                      for s in plan['steps']) + ")")
    return 0


def _run(path: str, repeat: int) -> int:
    f = load(path)
    rng = np.random.default_rng(0)
    ins = [DeviceArray.from_numpy(rng.standard_normal(shape).astype(dtype))
           for shape, dtype in f.inputs]
    outs = [DeviceArray(shape, dtype) for shape, dtype in f.outputs]
    f(*ins, out=outs)
    start, stop = driver.Event(), driver.Event()
    start.record()
    for _ in range(repeat):
        f(*ins, out=outs, sync=False)
    stop.record()
    ms = stop.elapsed_ms(start) / repeat
    moved = sum(a.nbytes for a in ins + outs)
    finite = all(np.isfinite(o.get()).all() for o in outs)
    print(f"{f.name}: {ms:.4f} ms/call, {moved / ms / 1e6:.1f} GB/s (inputs read "
          f"+ outputs written once), loaded from {f.loaded_from}, outputs finite: {finite}")
    return 0 if finite else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m {__package__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("devices")
    sub.add_parser("info").add_argument("artifact")
    r = sub.add_parser("run")
    r.add_argument("artifact")
    r.add_argument("-n", "--repeat", type=int, default=20)
    a = p.parse_args(argv)
    if a.cmd == "devices":
        return _devices()
    if a.cmd == "info":
        return _info(a.artifact)
    return _run(a.artifact, a.repeat)


if __name__ == "__main__":
    sys.exit(main())
