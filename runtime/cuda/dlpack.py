"""Zero-copy DLPack inputs for the launcher (standard library + numpy only).

An array whose ``__dlpack_device__()`` is a CUDA device (JAX, and anything
else that speaks DLPack but not ``__cuda_array_interface__``) is read
through its ``__dlpack__`` capsule: :func:`cuda_view` returns a
:class:`DLPackView` exposing the same memory as ``__cuda_array_interface__``,
so the launcher treats it like a CuPy or PyTorch array.

The capsule is not *consumed* (not renamed ``used_dltensor``): the view
keeps it alive while the launch uses the memory, and when the view is
dropped the capsule's own destructor calls the producer's deleter, as the
DLPack protocol specifies for an unconsumed capsule. The producer keeps
owning the memory.

Streams: the capsule is requested for the stream the launch will use
(DLPack's ``1`` for the legacy default stream, the launcher's ``stream=0``,
else the stream handle itself), so the producer orders its pending work
before ours. A producer that takes no ``stream`` keyword is asked without
one, and then nothing orders its pending work: synchronise it first.
A launch that reads a DLPack view always synchronises before returning,
because the view (and with it the producer's hold on the memory) is
released when the call returns.
"""

import ctypes

import numpy as np

KDL_CPU, KDL_CUDA, KDL_CUDA_HOST, KDL_CUDA_MANAGED = 1, 2, 3, 13
_DEVICE_NAMES = {1: "CPU", 2: "CUDA", 3: "CUDA host (pinned)", 4: "OpenCL", 7: "Vulkan",
                 8: "Metal", 10: "ROCm", 13: "CUDA managed", 14: "oneAPI"}
# DLDataTypeCode -> numpy kind letter
_CODES = {0: "i", 1: "u", 2: "f", 6: "b"}


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int), ("device_id", ctypes.c_int)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class _DLManagedTensor(ctypes.Structure):
    # DLTensor first: the legacy (pre-1.0) layout, capsule name "dltensor".
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p)]


_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_get_pointer.restype = ctypes.c_void_p
_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def is_dlpack(obj) -> bool:
    return hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__")


def device_of(obj):
    """``(device_type, device_id)`` of a DLPack producer."""
    t, i = obj.__dlpack_device__()
    return int(t), int(i)


def device_name(device_type: int) -> str:
    return _DEVICE_NAMES.get(device_type, f"DLPack device type {device_type}")


class DLPackView:
    """A CUDA DLPack array seen through ``__cuda_array_interface__``.

    ``source``: the producer (kept alive with its capsule).
    """

    def __init__(self, source, capsule, cai: dict):
        self.source = source
        self._capsule = capsule
        self.__cuda_array_interface__ = cai


def cuda_view(obj, what: str, stream: int = 0) -> DLPackView:
    """Read CUDA DLPack array ``obj`` for use on CUDA stream ``stream`` (0:
    the legacy default stream); ``what`` names it in errors.

    Raises ``TypeError`` for a non-CUDA device, a dtype numpy cannot
    describe, or vector lanes.
    """
    dev_type, dev_id = device_of(obj)
    if dev_type not in (KDL_CUDA, KDL_CUDA_MANAGED):
        raise TypeError(f"{what} is a DLPack array on a {device_name(dev_type)} device; "
                        f"the launcher takes CUDA device arrays or numpy arrays")
    try:
        capsule = obj.__dlpack__(stream=stream or 1)   # DLPack: 1 = legacy default
    except TypeError:           # producers without the stream keyword
        capsule = obj.__dlpack__()
    ptr = _get_pointer(capsule, b"dltensor")
    t = _DLManagedTensor.from_address(ptr).dl_tensor
    dt = t.dtype
    if dt.lanes != 1 or dt.code not in _CODES or dt.bits % 8:
        raise TypeError(f"{what}: DLPack dtype (code {dt.code}, {dt.bits} bits, "
                        f"{dt.lanes} lanes) is not supported")
    dtype = np.dtype(f"{_CODES[dt.code]}{dt.bits // 8}") if dt.code != 6 else np.dtype(bool)
    shape = tuple(t.shape[i] for i in range(t.ndim))
    strides = None
    if t.strides:   # DLPack counts strides in elements, the CUDA interface in bytes
        strides = tuple(t.strides[i] * dtype.itemsize for i in range(t.ndim))
    cai = {"shape": shape, "typestr": dtype.str, "strides": strides,
           "data": (int(t.data or 0) + int(t.byte_offset), False), "version": 3,
           "device_id": dev_id}
    return DLPackView(obj, capsule, cai)
