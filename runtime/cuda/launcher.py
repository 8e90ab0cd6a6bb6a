"""Run a ferrule CUDA artifact: numpy arrays or device arrays in and out.

Needs numpy and the NVIDIA driver only. ``load(path)`` gives a
:class:`GpuFunction`; calling it

* with **numpy arrays** copies them to the device, runs the plan, and
  returns numpy arrays (device buffers are cached between calls);
* with **device arrays** (anything with ``__cuda_array_interface__``: CuPy
  arrays, PyTorch CUDA tensors, :class:`DeviceArray`) uses them in place
  (zero copy) and returns device arrays of the same library: torch tensors
  for torch inputs, CuPy arrays for CuPy inputs, else :class:`DeviceArray`
  (which both libraries can wrap without a copy). ``out=`` may pass the
  output arrays (they must expose ``__cuda_array_interface__``: a DLPack
  capsule does not say whether its memory may be written);
* with **DLPack** CUDA arrays that lack ``__cuda_array_interface__`` (e.g.
  JAX's), read in place through their capsule (:mod:`.dlpack`); results are
  :class:`DeviceArray` unless another argument picks the library.

Launches go on ``stream`` (default 0, the legacy default stream, which
orders with CuPy's and PyTorch's default streams). Temporary buffers are
allocated once per function and reused, so one :class:`GpuFunction` must
not run concurrently on two streams.
"""

import ctypes
import os
import re
from typing import List, Optional, Sequence

import numpy as np

from . import artifact as _artifact
from . import dlpack, driver
from .driver import CudaError

_SCALAR_CTYPES = {"f32": ctypes.c_float, "f64": ctypes.c_double,
                  "i32": ctypes.c_int32, "i64": ctypes.c_int64}


class DeviceArray:
    """A C-contiguous device buffer owned by the launcher.

    Exposes ``__cuda_array_interface__`` (so ``cupy.asarray(x)`` and
    ``torch.as_tensor(x, device="cuda")`` wrap it without a copy: keep
    ``x`` alive meanwhile) and :meth:`get` to copy it to numpy.
    """

    def __init__(self, shape: Sequence[int], dtype, device: int = 0):
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.device = device
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        driver.primary_context(device)
        self.ptr = driver.mem_alloc(self.nbytes)

    @classmethod
    def from_numpy(cls, a, device: int = 0) -> "DeviceArray":
        a = np.ascontiguousarray(a)
        d = cls(a.shape, a.dtype, device)
        driver.call("cuMemcpyHtoD_v2", driver.CUdeviceptr(d.ptr),
                    a.ctypes.data_as(ctypes.c_void_p), a.nbytes)
        return d

    def get(self) -> np.ndarray:
        """Copy to a new numpy array (synchronous)."""
        out = np.empty(self.shape, self.dtype)
        driver.call("cuMemcpyDtoH_v2", out.ctypes.data_as(ctypes.c_void_p),
                    driver.CUdeviceptr(self.ptr), self.nbytes)
        return out

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.dtype.str,
                "data": (self.ptr, False), "version": 3, "strides": None,
                "stream": None}

    def __del__(self):
        if getattr(self, "ptr", 0) and driver._api is not None:
            driver._api.cuMemFree_v2(driver.CUdeviceptr(self.ptr))
            self.ptr = 0


def _device_pointer(obj, shape, dtype, what: str, writable: bool) -> int:
    """Validate a ``__cuda_array_interface__`` array; return its pointer."""
    cai = obj.__cuda_array_interface__
    got_shape = tuple(cai["shape"])
    got_dtype = np.dtype(cai["typestr"])
    if got_shape != tuple(shape) or got_dtype != dtype:
        raise TypeError(f"{what} must be {dtype}{list(shape)}, got "
                        f"{got_dtype}{list(got_shape)}")
    if cai.get("mask") is not None:
        raise TypeError(f"{what}: masked arrays are not supported")
    strides = cai.get("strides")
    if strides is not None:
        expect, step = [], dtype.itemsize
        for d in reversed(got_shape):
            expect.append(step)
            step *= d
        if any(s != e for s, e, d in zip(strides, reversed(expect), got_shape) if d > 1):
            raise TypeError(f"{what} must be C-contiguous (strides {strides})")
    ptr, readonly = cai["data"]
    if writable and readonly:
        raise TypeError(f"{what} is read-only")
    return int(ptr)


def _cuda_dlpack_view(a, what: str, stream: int):
    """``a`` itself, or a :class:`~.dlpack.DLPackView` of it when it is a
    DLPack array on a CUDA device without ``__cuda_array_interface__``."""
    if (hasattr(a, "__cuda_array_interface__") or isinstance(a, np.ndarray)
            or not dlpack.is_dlpack(a)):
        return a
    if dlpack.device_of(a)[0] == dlpack.KDL_CPU:
        return a               # host memory: the numpy path copies it up
    return dlpack.cuda_view(a, what, stream)


def _family(obj) -> str:
    mod = type(obj).__module__.split(".")[0]
    return mod if mod in ("torch", "cupy") else "ferrule"


def _empty_like_family(family: str, template, shape, dtype, device: int):
    if family == "torch":
        import torch
        return torch.empty(tuple(shape), dtype=getattr(torch, dtype.name),
                           device=template.device)
    if family == "cupy":
        import cupy
        with cupy.cuda.Device(device):
            return cupy.empty(tuple(shape), dtype=dtype)
    return DeviceArray(shape, dtype, device)


class GpuFunction:
    """A loaded artifact. Call it like the compiled function; it returns a
    tuple of outputs (see the module doc for numpy vs device arrays).

    ``loaded_from``: "cubin" or "ptx" (the driver JIT-compiles PTX when the
    cubin is absent or not loadable on this GPU/driver; ``load_note`` says
    why). Set ``debug_sync=True`` (or env ``FERRULE_CUDA_SYNC=1``) to
    synchronise after every launch so an asynchronous fault names its kernel.
    """

    def __init__(self, art: dict, device: int = 0, prefer_cubin: bool = True):
        _artifact.validate(art)
        self.art = art
        self.name = art["function"]
        self.device = device
        plan = art["plan"]
        self.inputs = [(tuple(s["shape"]), np.dtype(s["dtype"])) for s in plan["inputs"]]
        self.outputs = [(tuple(s["shape"]), np.dtype(s["dtype"])) for s in plan["outputs"]]
        self.kernels = art["kernels"]
        self.debug_sync = os.environ.get("FERRULE_CUDA_SYNC") == "1"
        driver.primary_context(device)
        self._check_arch()
        self._module, self.loaded_from, self.load_note = self._load_module(prefer_cubin)
        self._funcs = {k: driver.get_function(self._module, k) for k in self.kernels}
        self._consts = [DeviceArray.from_numpy(
            np.frombuffer(_artifact.constant_bytes(art, i), np.uint8), device)
            for i in range(len(plan["constants"]))]
        self._temps = {}
        self._host_in: List[Optional[DeviceArray]] = [None] * len(self.inputs)
        self._host_out: List[Optional[DeviceArray]] = [None] * len(self.outputs)

    def _check_arch(self) -> None:
        """Refuse clearly when the GPU cannot run code built for the target
        (the driver would only say CUDA_ERROR_NO_BINARY_FOR_GPU)."""
        sm = self.art["target"]["sm"]
        m = re.fullmatch(r"sm_(\d+)([af]?)", sm)
        if m is None:
            return
        info = driver.device_info(self.device)
        major, minor = info["compute_capability"]
        have, need = major * 10 + minor, int(m.group(1))
        # PTX for sm_N runs on any later chip; "a"/"f" variants only on sm_N.
        if have < need or (m.group(2) and have // 10 != need // 10):
            raise CudaError(
                f"{self.name} was compiled for {sm}; this GPU ({info['name']}) is "
                f"sm_{have}: recompile with target='sm_{have}'", -1,
                "CUDA_ERROR_NO_BINARY_FOR_GPU")

    def _load_module(self, prefer_cubin: bool):
        cubin = _artifact.cubin_bytes(self.art)
        note = ""
        if cubin is not None and prefer_cubin:
            try:
                return driver.load_module(cubin, f"cubin of {self.name}"), "cubin", note
            except CudaError as e:
                note = f"cubin not loadable here ({e.name}); JIT-compiled the PTX"
        elif cubin is None:
            note = "artifact has no cubin; JIT-compiled the PTX"
        ptx = self.art["ptx"].encode()
        return driver.load_module(ptx, f"PTX of {self.name}"), "ptx", note

    # ------------------------------------------------------------ running

    def launch(self, in_ptrs: Sequence[int], out_ptrs: Sequence[int],
               stream: int = 0) -> None:
        """Enqueue the plan on ``stream`` with raw device pointers (no checks,
        no synchronisation): the fast path used by :meth:`__call__`."""
        driver.primary_context(self.device)
        for step in self.art["plan"]["steps"]:
            op = step["op"]
            if op == "alloc":
                k = step["temp"]
                if k not in self._temps:
                    self._temps[k] = DeviceArray((step["nbytes"],), np.uint8, self.device)
            elif op == "launch":
                self._launch_one(step, in_ptrs, out_ptrs, stream)
            # "free": temporaries are cached for the next call instead.

    def _launch_one(self, step, in_ptrs, out_ptrs, stream) -> None:
        name = step["kernel"]
        keep = []
        for a in step["args"]:
            kind = a["kind"]
            if kind == "scalar":
                keep.append(_SCALAR_CTYPES[a["type"]](a["value"]))
                continue
            i = a["index"]
            if kind == "input":
                ptr = in_ptrs[i]
            elif kind == "output":
                ptr = out_ptrs[i]
            elif kind == "temp":
                ptr = self._temps[i].ptr
            else:
                ptr = self._consts[i].ptr
            keep.append(ctypes.c_uint64(ptr))
        # cuLaunchKernel takes an array of pointers to the argument values.
        params = (ctypes.c_void_p * max(1, len(keep)))(*[ctypes.addressof(v) for v in keep])
        g, b = step["grid"], step["block"]
        res = driver.api().cuLaunchKernel(
            self._funcs[name], g[0], g[1], g[2], b[0], b[1], b[2], 0,
            ctypes.c_void_p(stream), params, None)
        driver.check(res, f"launching kernel {name} of {self.name} "
                          f"(grid {g}, block {b})")
        if self.debug_sync:
            self._sync(stream, name)

    def _sync(self, stream: int, kernel: Optional[str] = None) -> None:
        """Wait for ``stream``; a failure names ``kernel`` if given, else
        every kernel of the plan (faults are reported asynchronously)."""
        res = driver.api().cuStreamSynchronize(ctypes.c_void_p(stream))
        if res != 0:
            if kernel is not None:
                where = f"kernel {kernel} of {self.name}"
            else:
                names = ", ".join(s["kernel"] for s in self.art["plan"]["steps"]
                                  if s["op"] == "launch")
                where = (f"kernels [{names}] of {self.name} (set "
                         f"FERRULE_CUDA_SYNC=1 to find which one)")
            driver.check(res, f"running {where}")

    def synchronize(self, stream: int = 0) -> None:
        """Wait for this function's work on ``stream``."""
        self._sync(stream)

    def __call__(self, *arrays, out=None, stream: int = 0, sync: bool = True):
        if len(arrays) != len(self.inputs):
            raise TypeError(f"{self.name}: expected {len(self.inputs)} arrays, "
                            f"got {len(arrays)}")
        outs_given = list(out) if out is not None else None
        if outs_given is not None and len(outs_given) != len(self.outputs):
            raise TypeError(f"{self.name}: out= needs {len(self.outputs)} arrays")
        arrays = [_cuda_dlpack_view(a, f"{self.name}: argument {k}", stream)
                  for k, a in enumerate(arrays)]
        on_device = any(hasattr(a, "__cuda_array_interface__")
                        for a in list(arrays) + (outs_given or []))
        if on_device:
            return self._call_device(arrays, outs_given, stream, sync)
        return self._call_host(arrays, outs_given, stream)

    def _call_host(self, arrays, outs, stream):
        in_ptrs = []
        for k, (a, (shape, dtype)) in enumerate(zip(arrays, self.inputs)):
            a = np.ascontiguousarray(a)
            if a.shape != shape or a.dtype != dtype:
                raise TypeError(f"{self.name}: argument {k} must be {dtype}"
                                f"{list(shape)}, got {a.dtype}{list(a.shape)}")
            if self._host_in[k] is None:
                self._host_in[k] = DeviceArray(shape, dtype, self.device)
            d = self._host_in[k]
            driver.call("cuMemcpyHtoD_v2", driver.CUdeviceptr(d.ptr),
                        a.ctypes.data_as(ctypes.c_void_p), a.nbytes,
                        what=f"copying argument {k} of {self.name} to the GPU")
            in_ptrs.append(d.ptr)
        for j, (shape, dtype) in enumerate(self.outputs):
            if self._host_out[j] is None:
                self._host_out[j] = DeviceArray(shape, dtype, self.device)
        self.launch(in_ptrs, [d.ptr for d in self._host_out], stream)
        self._sync(stream)
        results = []
        for j, ((shape, dtype), d) in enumerate(zip(self.outputs, self._host_out)):
            o = outs[j] if outs is not None else np.empty(shape, dtype)
            if (not isinstance(o, np.ndarray) or o.shape != shape or o.dtype != dtype
                    or not o.flags.c_contiguous or not o.flags.writeable):
                raise TypeError(f"{self.name}: out[{j}] must be a writeable "
                                f"C-contiguous {dtype}{list(shape)} array")
            driver.call("cuMemcpyDtoH_v2", o.ctypes.data_as(ctypes.c_void_p),
                        driver.CUdeviceptr(d.ptr), d.nbytes,
                        what=f"copying result {j} of {self.name} from the GPU")
            results.append(o)
        return tuple(results)

    def _call_device(self, arrays, outs, stream, sync):
        keep, in_ptrs, ranges, template = [], [], [], None
        for k, (a, (shape, dtype)) in enumerate(zip(arrays, self.inputs)):
            if not hasattr(a, "__cuda_array_interface__"):
                a = DeviceArray.from_numpy(np.asarray(a, dtype=dtype), self.device)
                keep.append(a)
                sync = True  # the uploaded copy must outlive the kernels
            elif isinstance(a, dlpack.DLPackView):
                # Dropping the view lets the capsule's deleter release the
                # producer's hold on the memory: wait for the kernels first.
                sync = True
            elif template is None:
                template = a
            ptr = _device_pointer(a, shape, dtype, f"{self.name}: argument {k}", False)
            self._check_device(ptr, f"argument {k}")
            in_ptrs.append(ptr)
            ranges.append((ptr, ptr + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize))
        family = _family(template) if template is not None else "ferrule"
        results, out_ptrs = [], []
        for j, (shape, dtype) in enumerate(self.outputs):
            o = outs[j] if outs is not None else _empty_like_family(
                family, template, shape, dtype, self.device)
            if not hasattr(o, "__cuda_array_interface__"):
                raise TypeError(f"{self.name}: out[{j}] must be a device array "
                                f"when the arguments are on the device")
            ptr = _device_pointer(o, shape, dtype, f"{self.name}: out[{j}]", True)
            end = ptr + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if any(ptr < e and s < end for s, e in ranges):
                raise ValueError(f"{self.name}: out[{j}] overlaps an input or "
                                 f"another output")
            ranges.append((ptr, end))
            results.append(o)
            out_ptrs.append(ptr)
        self.launch(in_ptrs, out_ptrs, stream)
        if sync:
            self._sync(stream)
        return tuple(results)

    def _check_device(self, ptr: int, what: str) -> None:
        dev = driver.pointer_device(ptr)
        if dev != self.device:
            raise ValueError(f"{self.name}: {what} lives on device {dev}, the "
                             f"function was loaded on device {self.device}")


def load(path, device: int = 0, prefer_cubin: bool = True) -> GpuFunction:
    """Load an artifact file onto ``device``. Raises ``CudaUnavailable``
    where there is no driver or GPU, ``ArtifactError`` for a bad file."""
    return GpuFunction(_artifact.load(path), device, prefer_cubin)
