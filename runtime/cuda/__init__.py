"""ferrule's CUDA launcher: run compiled GPU artifacts with numpy + the driver.

Nothing here imports MLIR, LLVM or anything outside this folder except
numpy and the standard library, so it runs on a GPU machine that has only
numpy and the NVIDIA driver. Compile elsewhere
(``ferrule.compile(f, ..., target="cuda").save("f.json")``), carry the file,
then::

    from ferrule.runtime import cuda          # where ferrule is installed
    f = cuda.load("f.json")
    outs = f(x, y)                            # numpy in, numpy out
    outs = f(x_t, y_t)                        # torch/CuPy CUDA in, same out

``from ferrule.runtime import cuda`` imports no MLIR or LLVM either (the
packages above this one import lazily), and the command line is
``python -m ferrule.runtime.cuda {devices | info f.json | run f.json}``.

Where ferrule is not installed, use this folder on its own — it has only
relative imports:

* copy it under any name: ``cp -r runtime/cuda /opt/x/ferrule_cuda`` and
  ``PYTHONPATH=/opt/x python -m ferrule_cuda info f.json`` (or
  ``import ferrule_cuda``); do not name it ``cuda`` (NVIDIA's cuda-python
  owns that name);
* or load it from a checkout without copying::

      import importlib.util, sys
      spec = importlib.util.spec_from_file_location(
          "ferrule_cuda", "runtime/cuda/__init__.py",
          submodule_search_locations=["runtime/cuda"])
      ferrule_cuda = importlib.util.module_from_spec(spec)
      sys.modules["ferrule_cuda"] = ferrule_cuda
      spec.loader.exec_module(ferrule_cuda)
"""

from .artifact import ArtifactError
from .artifact import load as load_artifact
from .driver import CudaError, CudaUnavailable, device_info
from .launcher import DeviceArray, GpuFunction, load

__all__ = ["ArtifactError", "CudaError", "CudaUnavailable", "DeviceArray",
           "GpuFunction", "available", "device_info", "load", "load_artifact"]


def available() -> str:
    """'' when a CUDA driver and GPU are usable, else the reason why not."""
    from . import driver
    try:
        driver.api()
        return ""
    except CudaUnavailable as e:
        return str(e)
