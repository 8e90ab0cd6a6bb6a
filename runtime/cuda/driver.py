"""ctypes bindings for the few CUDA driver API calls the launcher needs.

Only the standard library: this file must work where the NVIDIA driver
(``libcuda.so.1``) and numpy are the only things installed. Every call goes
through :func:`check`, which turns a ``CUresult`` into :class:`CudaError`
with the driver's own name and message for it.

The launcher uses the device's *primary context* (the one the runtime API,
CuPy and PyTorch use), so device pointers from those libraries are valid in
our launches and ours in theirs.
"""

import ctypes
import os
import threading
from typing import Optional

CUresult = ctypes.c_int
CUdeviceptr = ctypes.c_uint64
_p = ctypes.c_void_p

# CUdevice_attribute values used here (cuda.h).
ATTR_MULTIPROCESSOR_COUNT = 16
ATTR_MEMORY_CLOCK_RATE = 36      # kHz
ATTR_GLOBAL_MEMORY_BUS_WIDTH = 37  # bits
ATTR_COMPUTE_CAPABILITY_MAJOR = 75
ATTR_COMPUTE_CAPABILITY_MINOR = 76
# CUjit_option values for cuModuleLoadDataEx's error log.
JIT_ERROR_LOG_BUFFER = 5
JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6
CUDA_ERROR_NO_DEVICE = 100
# CUpointer_attribute values.
POINTER_ATTRIBUTE_MEMORY_TYPE = 2   # CU_MEMORYTYPE_HOST=1, DEVICE=2, ARRAY=3, UNIFIED=4
POINTER_ATTRIBUTE_DEVICE_ORDINAL = 9


class CudaError(RuntimeError):
    """A CUDA driver call failed. ``code``/``name`` are the driver's
    ``CUresult`` and its name (``CUDA_ERROR_ILLEGAL_ADDRESS``...)."""

    def __init__(self, message: str, code: int = -1, name: str = ""):
        super().__init__(message)
        self.code = code
        self.name = name


class CudaUnavailable(CudaError):
    """No usable CUDA driver or GPU on this machine."""


# (function name, argtypes). All return CUresult.
_SIGNATURES = {
    "cuInit": [ctypes.c_uint],
    "cuDriverGetVersion": [ctypes.POINTER(ctypes.c_int)],
    "cuDeviceGetCount": [ctypes.POINTER(ctypes.c_int)],
    "cuDeviceGet": [ctypes.POINTER(ctypes.c_int), ctypes.c_int],
    "cuDeviceGetName": [ctypes.c_char_p, ctypes.c_int, ctypes.c_int],
    "cuDeviceGetAttribute": [ctypes.POINTER(ctypes.c_int), ctypes.c_int, ctypes.c_int],
    "cuDeviceTotalMem_v2": [ctypes.POINTER(ctypes.c_size_t), ctypes.c_int],
    "cuDevicePrimaryCtxRetain": [ctypes.POINTER(_p), ctypes.c_int],
    "cuCtxSetCurrent": [_p],
    "cuCtxSynchronize": [],
    "cuModuleLoadDataEx": [ctypes.POINTER(_p), ctypes.c_void_p, ctypes.c_uint,
                           ctypes.POINTER(ctypes.c_int), ctypes.POINTER(_p)],
    "cuModuleUnload": [_p],
    "cuModuleGetFunction": [ctypes.POINTER(_p), _p, ctypes.c_char_p],
    "cuMemAlloc_v2": [ctypes.POINTER(CUdeviceptr), ctypes.c_size_t],
    "cuMemFree_v2": [CUdeviceptr],
    "cuMemcpyHtoD_v2": [CUdeviceptr, ctypes.c_void_p, ctypes.c_size_t],
    "cuMemcpyDtoH_v2": [ctypes.c_void_p, CUdeviceptr, ctypes.c_size_t],
    "cuMemcpyDtoDAsync_v2": [CUdeviceptr, CUdeviceptr, ctypes.c_size_t, _p],
    "cuMemcpyHtoDAsync_v2": [CUdeviceptr, ctypes.c_void_p, ctypes.c_size_t, _p],
    "cuMemcpyDtoHAsync_v2": [ctypes.c_void_p, CUdeviceptr, ctypes.c_size_t, _p],
    "cuLaunchKernel": [_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint,
                       ctypes.c_uint, ctypes.c_uint, ctypes.c_uint,
                       ctypes.c_uint, _p, ctypes.POINTER(_p), ctypes.POINTER(_p)],
    "cuStreamSynchronize": [_p],
    "cuPointerGetAttribute": [ctypes.c_void_p, ctypes.c_int, CUdeviceptr],
    "cuEventCreate": [ctypes.POINTER(_p), ctypes.c_uint],
    "cuEventRecord": [_p, _p],
    "cuEventSynchronize": [_p],
    "cuEventElapsedTime": [ctypes.POINTER(ctypes.c_float), _p, _p],
    "cuEventDestroy_v2": [_p],
    "cuGetErrorName": [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)],
    "cuGetErrorString": [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)],
}

_lock = threading.Lock()
_api = None
_init_error: Optional[CudaUnavailable] = None


def _library_names():
    env = os.environ.get("FERRULE_LIBCUDA")
    return ([env] if env else []) + ["libcuda.so.1", "libcuda.so", "nvcuda.dll"]


def api():
    """The loaded and initialised driver library (``cuInit`` done once).

    Raises :class:`CudaUnavailable` when there is no driver or no device.
    """
    global _api, _init_error
    with _lock:
        if _api is not None:
            return _api
        if _init_error is not None:
            raise _init_error
        lib, errors = None, []
        for name in _library_names():
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError as e:
                errors.append(f"{name}: {e}")
        if lib is None:
            _init_error = CudaUnavailable(
                "no CUDA driver: could not load libcuda (" + "; ".join(errors)
                + "); set FERRULE_LIBCUDA to its path if it is installed elsewhere")
            raise _init_error
        for fname, argtypes in _SIGNATURES.items():
            fn = getattr(lib, fname)
            fn.argtypes = argtypes
            fn.restype = CUresult
        res = lib.cuInit(0)
        if res != 0:
            name, msg = _describe(lib, res)
            _init_error = CudaUnavailable(
                f"CUDA driver present but cuInit failed: {name} ({msg})", res, name)
            raise _init_error
        count = ctypes.c_int()
        lib.cuDeviceGetCount(ctypes.byref(count))
        if count.value == 0:
            _init_error = CudaUnavailable("CUDA driver present but no GPU found",
                                          CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE")
            raise _init_error
        _api = lib
        return lib


def _describe(lib, code: int):
    name, msg = ctypes.c_char_p(), ctypes.c_char_p()
    lib.cuGetErrorName(code, ctypes.byref(name))
    lib.cuGetErrorString(code, ctypes.byref(msg))
    return ((name.value or b"CUDA_ERROR_%d" % code).decode(),
            (msg.value or b"unknown error").decode())


def check(res: int, what: str) -> None:
    """Raise :class:`CudaError` naming ``what`` unless ``res`` is success."""
    if res != 0:
        name, msg = _describe(api(), res)
        raise CudaError(f"{what}: {name}: {msg}", res, name)


def call(fname: str, *args, what: Optional[str] = None) -> None:
    """Call driver function ``fname`` and check its result."""
    check(getattr(api(), fname)(*args), what or fname)


_contexts = {}


def primary_context(device: int = 0) -> ctypes.c_void_p:
    """Make the primary context of ``device`` current (retained once per
    process and kept: it is the one CuPy and PyTorch share)."""
    ctx = _contexts.get(device)
    if ctx is None:
        dev = ctypes.c_int()
        call("cuDeviceGet", ctypes.byref(dev), device)
        ctx = ctypes.c_void_p()
        call("cuDevicePrimaryCtxRetain", ctypes.byref(ctx), dev.value)
        _contexts[device] = ctx
    call("cuCtxSetCurrent", ctx)
    return ctx


def device_info(device: int = 0) -> dict:
    """Name, compute capability, SM count, memory and peak DRAM bandwidth
    (from clock and bus width; the measured copy bandwidth is lower)."""
    lib = api()
    buf = ctypes.create_string_buffer(256)
    call("cuDeviceGetName", buf, 256, device)

    def attr(a, optional=False):
        v = ctypes.c_int()
        res = lib.cuDeviceGetAttribute(ctypes.byref(v), a, device)
        if res != 0 and optional:
            return 0
        check(res, f"cuDeviceGetAttribute({a})")
        return v.value

    mem = ctypes.c_size_t()
    call("cuDeviceTotalMem_v2", ctypes.byref(mem), device)
    ver = ctypes.c_int()
    lib.cuDriverGetVersion(ctypes.byref(ver))
    # Newer drivers may report 0 for these; then the peak is unknown (None).
    clock_khz = attr(ATTR_MEMORY_CLOCK_RATE, optional=True)
    bus_bits = attr(ATTR_GLOBAL_MEMORY_BUS_WIDTH, optional=True)
    return {
        "name": buf.value.decode(),
        "compute_capability": (attr(ATTR_COMPUTE_CAPABILITY_MAJOR),
                               attr(ATTR_COMPUTE_CAPABILITY_MINOR)),
        "sm_count": attr(ATTR_MULTIPROCESSOR_COUNT),
        "total_memory": mem.value,
        "driver_version": ver.value,
        # DDR: two transfers per clock.
        "peak_bandwidth_gbs": (2 * clock_khz * 1e3 * bus_bits / 8 / 1e9
                               if clock_khz and bus_bits else None),
    }


def pointer_device(ptr: int) -> int:
    """Ordinal of the device that owns ``ptr``; CudaError if the driver does
    not know the pointer (host memory that was never registered)."""
    ordinal = ctypes.c_int()
    call("cuPointerGetAttribute", ctypes.byref(ordinal),
         POINTER_ATTRIBUTE_DEVICE_ORDINAL, CUdeviceptr(ptr),
         what=f"cuPointerGetAttribute(0x{ptr:x})")
    return ordinal.value


def mem_alloc(nbytes: int) -> int:
    ptr = CUdeviceptr()
    call("cuMemAlloc_v2", ctypes.byref(ptr), max(1, nbytes),
         what=f"cuMemAlloc({nbytes} bytes)")
    return ptr.value


def load_module(image: bytes, what: str) -> ctypes.c_void_p:
    """``cuModuleLoadDataEx`` on a cubin or NUL-terminated PTX; a failure
    raises :class:`CudaError` carrying the driver JIT's error log."""
    mod = ctypes.c_void_p()
    log = ctypes.create_string_buffer(8192)
    opts = (ctypes.c_int * 2)(JIT_ERROR_LOG_BUFFER, JIT_ERROR_LOG_BUFFER_SIZE_BYTES)
    vals = (ctypes.c_void_p * 2)(ctypes.cast(log, ctypes.c_void_p).value, 8192)
    data = ctypes.create_string_buffer(image, len(image) + 1)
    res = api().cuModuleLoadDataEx(ctypes.byref(mod), data, 2, opts, vals)
    if res != 0:
        name, msg = _describe(api(), res)
        detail = log.value.decode(errors="replace").strip()
        raise CudaError(f"loading {what}: {name}: {msg}"
                        + (f"\n{detail}" if detail else ""), res, name)
    return mod


def get_function(module: ctypes.c_void_p, name: str) -> ctypes.c_void_p:
    fn = ctypes.c_void_p()
    call("cuModuleGetFunction", ctypes.byref(fn), module, name.encode(),
         what=f"cuModuleGetFunction(kernel {name!r})")
    return fn


class Event:
    """A CUDA event, for timing work on a stream."""

    def __init__(self):
        self.handle = ctypes.c_void_p()
        call("cuEventCreate", ctypes.byref(self.handle), 0)

    def record(self, stream: int = 0) -> None:
        call("cuEventRecord", self.handle, ctypes.c_void_p(stream))

    def elapsed_ms(self, start: "Event") -> float:
        call("cuEventSynchronize", self.handle)
        ms = ctypes.c_float()
        call("cuEventElapsedTime", ctypes.byref(ms), start.handle, self.handle)
        return ms.value

    def __del__(self):
        if _api is not None and self.handle:
            _api.cuEventDestroy_v2(self.handle)
