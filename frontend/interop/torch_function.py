"""``ferrule.torch.function``: a ferrule function as a differentiable torch op.

``function(f)`` wraps a numpy-style function of positional arrays into a
callable on torch tensors:

* **forward** runs ferrule's compiled primal of ``f``; **backward** runs
  ferrule's compiled pullback (``vjp(f, ...)`` compiled on its own), which
  recomputes from the inputs what it needs: the only tensors saved for
  backward are the inputs (``ctx.save_for_backward``). Gradients are
  computed only for the inputs that need them (one compiled pullback per
  set of needed inputs; the others are dead code). The pullback is itself a
  wrapped function, so double backward (``create_graph=True``) works.
* **zero-copy** on the CPU: inputs reach the compiled code as numpy views of
  the tensors' memory (``Tensor.numpy()``), and the results are numpy
  buffers handed to the compiled code as ``out=`` and then wrapped by
  ``torch.from_numpy`` (CUDA: ``torch.empty`` on the device).
  Non-contiguous inputs are made contiguous first (one copy: the compiled
  code reads C-contiguous arrays).
* **CUDA** tensors run through ferrule's CUDA launcher
  (``ferrule.runtime.cuda``) on the tensors' memory, on torch's current
  stream; the function is compiled for the device's ``sm_XY`` (or
  ``cuda_target``) on first use.
* **torch.compile**: the function is registered as a custom op
  (``torch.library.custom_op`` with ``register_fake`` and
  ``register_autograd``), so ``torch.compile(model, fullgraph=True)`` keeps
  each call as one opaque node of the graph, forward and backward. ferrule
  compiles per shape: the op's fake implementation specialises symbolic
  sizes (a new shape recompiles the graph); with ``dynamic=True`` call the
  function once before tracing it.

Eager calls do not go through the dispatcher: they use a
``torch.autograd.Function`` running the same compiled code (a custom op's
Python dispatch costs ~70 us more per call); under ``torch.compile``,
``make_fx``/``torch.export`` or any dispatch mode, calls go through the
registered op.
"""

import itertools
import re
import threading
import uuid
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import DTypeError
from .core import InteropError, Program, pullback_function, unflatten

_NP_OF_TORCH = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64)}
_TORCH_OF_NP = {v: k for k, v in _NP_OF_TORCH.items()}
_NAMESPACE = "ferrule"

_uids = itertools.count()
# Op names carry a per-process token. Inductor's and AOTAutograd's on-disk
# caches key a compiled graph by its code, which names the ops it calls; a
# graph compiled in another process (where uid N may be another function,
# and whose backward op is registered only while the backward is traced)
# must never be found by this one.
_TOKEN = uuid.uuid4().hex[:8]
_REGISTRY: Dict[str, "Function"] = {}
_registry_lock = threading.Lock()


def function(f: Optional[Callable] = None, *, pullback: str = "auto", name: Optional[str] = None,
             cuda_target: Optional[str] = None):
    """Wrap numpy-style ``f`` (positional array arguments; an array or a
    tuple/list of arrays as result) into a differentiable function on torch
    tensors. Usable as a decorator, with or without arguments.

    ``pullback``: how ferrule's backward differentiates pointwise regions
    (``"auto"``, ``"recompute"``, ``"store"``, as in :func:`ferrule.jit`);
    whatever the choice, only the inputs are saved between forward and
    backward. ``name``: the op's name (``torch.ops.ferrule.<name>_...``).
    ``cuda_target``: ``"cuda:sm_XY"`` to compile for CUDA tensors (default:
    the device's own compute capability).
    """
    if f is None:
        return lambda g: Function(g, pullback=pullback, name=name, cuda_target=cuda_target)
    return Function(f, pullback=pullback, name=name, cuda_target=cuda_target)


def _spec(t, k: int, fname: str):
    if not isinstance(t, torch.Tensor):
        raise InteropError(
            f"ferrule.torch.function {fname}: argument {k} is a {type(t).__name__}, not a "
            f"torch.Tensor; pass tensors only (bind other values with functools.partial "
            f"or a closure)")
    dt = _NP_OF_TORCH.get(t.dtype)
    if dt is None:
        raise DTypeError(f"ferrule.torch.function {fname}: argument {k} has dtype {t.dtype}; "
                         f"ferrule compiles float32 and float64 (convert with .float() or "
                         f".double())")
    return (tuple(t.shape), dt)


try:
    from torch.utils._python_dispatch import _get_current_dispatch_mode
except ImportError:          # pragma: no cover - other torch versions
    def _get_current_dispatch_mode():
        return None


def _tracing() -> bool:
    """True where calls must go through the registered op: under
    torch.compile, or inside make_fx/export/fake-tensor dispatch modes."""
    return torch.compiler.is_compiling() or _get_current_dispatch_mode() is not None


@torch.compiler.assume_constant_result
def _arity_info(key: str, n_in: int):
    """(op name, result structure) of a signature with ``n_in`` arguments
    seen before, else None; run in Python even while dynamo traces (its
    result is a constant of the graph)."""
    fn = _REGISTRY[key]
    known = fn._by_arity.get(n_in)
    if known is None:             # called eagerly before: reuse that signature
        seen = [k for k in list(fn.program._entries) if len(k) == n_in]
        if seen:
            return fn._op_info(seen[-1])
    return known


@torch.compiler.assume_constant_result
def _op_info(key: str, specs) -> Tuple[str, object]:
    """(op name, result structure) for a signature of static sizes."""
    return _REGISTRY[key]._op_info(specs)


class Function:
    """A ferrule function on torch tensors (see :func:`function`)."""

    def __init__(self, f: Callable, pullback: str = "auto", name: Optional[str] = None,
                 cuda_target: Optional[str] = None):
        self.f = f
        self.pullback = pullback
        self.cuda_target = cuda_target
        base = name or getattr(f, "__name__", "fn")
        self.__name__ = base
        self.__doc__ = getattr(f, "__doc__", None)
        self.program = Program(f, pullback, base)
        with _registry_lock:
            uid = next(_uids)
        self._opbase = re.sub(r"\W", "_", base)
        if not self._opbase or self._opbase[0].isdigit():
            self._opbase = "fn_" + self._opbase
        # A string key: dynamo keeps it a constant (with dynamic=True it
        # would make an int attribute symbolic).
        self.key = self._opbase = f"{self._opbase}_{_TOKEN}_{uid}"
        _REGISTRY[self.key] = self
        self._ops: Dict[Tuple[int, int], object] = {}
        self._by_arity: Dict[int, Tuple[str, object]] = {}
        self._pullbacks: Dict[Tuple[int, Tuple[int, ...]], "Function"] = {}
        self._gpu: Dict[object, object] = {}
        self._lock = threading.Lock()

    def __repr__(self):
        return f"<ferrule.torch.function {self.__name__}>"

    # ------------------------------------------------------------- calling

    def __call__(self, *args, **kwargs):
        if kwargs:
            raise InteropError(f"ferrule.torch.function {self.__name__}: keyword arguments "
                               f"are not supported; pass tensors positionally")
        if not args:
            raise InteropError(f"ferrule.torch.function {self.__name__}: needs at least one "
                               f"tensor argument")
        specs = tuple(_spec(t, k, self.__name__) for k, t in enumerate(args))
        if _tracing():
            # The op and the result structure depend on the number of
            # arguments only (once one signature is known): symbolic sizes
            # (dynamic shapes) then never reach ferrule's tracer, and the
            # op's fake implementation specialises them (ferrule compiles
            # per shape).
            info = _arity_info(self.key, len(args))
            opname, struct = info if info is not None else _op_info(self.key, specs)
            outs = getattr(getattr(torch.ops, _NAMESPACE), opname)(*args)
        else:
            struct = self.program.entry(specs).out_struct
            if torch.is_grad_enabled() and any(t.requires_grad for t in args):
                outs = _Eager.apply(self, specs, *args)
            else:                       # nothing to differentiate: no graph node
                outs = self._forward(args, specs)
        if isinstance(outs, torch.Tensor):
            outs = (outs,)
        if struct == ("tuple", ((1, None),) * len(outs)):      # the usual flat tuple
            return tuple(outs)
        return unflatten(struct, list(outs))

    def lower(self, *tensors):
        """ferrule's :class:`~ferrule.api.Lowered` of the primal for these
        tensors' shapes and dtypes (``.explain()``, ``.as_text(stage)``,
        ``.compile_cuda(target)``)."""
        specs = tuple(_spec(t, k, self.__name__) for k, t in enumerate(tensors))
        return self.program.entry(specs).lowered

    def pullback_function(self, n_inputs: int, needed: Sequence[int]) -> "Function":
        """The wrapped pullback: ``(*inputs, *output cotangents) ->`` the
        cotangents of the inputs in ``needed`` (a tuple)."""
        key = (n_inputs, tuple(needed))
        pb = self._pullbacks.get(key)
        if pb is None:
            with self._lock:
                pb = self._pullbacks.get(key)
                if pb is None:
                    pb = self._pullbacks[key] = Function(
                        pullback_function(self.f, n_inputs, key[1], self.__name__),
                        pullback=self.pullback, cuda_target=self.cuda_target)
        return pb

    # ------------------------------------------------- the op and its parts

    def _op_info(self, specs):
        entry = self.program.entry(specs)
        n_in, n_out = len(specs), len(entry.out_specs)
        if (n_in, n_out) not in self._ops:
            with self._lock:
                if (n_in, n_out) not in self._ops:
                    self._ops[(n_in, n_out)] = self._register(n_in, n_out)
        info = self._by_arity[n_in] = (f"{self._opbase}_{n_in}_{n_out}", entry.out_struct)
        return info

    def _register(self, n_in: int, n_out: int):
        """Define ``ferrule::<name>_<n_in>_<n_out>`` with its fake and autograd."""
        params = ", ".join(f"Tensor x{k}" for k in range(n_in))
        rets = "Tensor" if n_out == 1 else "(" + ", ".join(["Tensor"] * n_out) + ")"
        qualname = f"{_NAMESPACE}::{self._opbase}_{n_in}_{n_out}"

        def impl(*xs):
            outs = self._forward(xs)
            return outs[0] if n_out == 1 else outs

        op = torch.library.custom_op(qualname, impl, mutates_args=(),
                                     schema=f"({params}) -> {rets}")

        def fake(*xs):
            entry = self.program.entry(tuple(_fake_spec(t) for t in xs))
            outs = tuple(xs[0].new_empty(shape, dtype=_TORCH_OF_NP[dt])
                         for shape, dt in entry.out_specs)
            return outs[0] if n_out == 1 else outs
        op.register_fake(fake)

        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs)     # the inputs, nothing else

        def backward(ctx, *grads):
            return self._backward(ctx.saved_tensors, grads, ctx.needs_input_grad)
        op.register_autograd(backward, setup_context=setup_context)
        return op

    def _forward(self, xs, specs=None) -> tuple:
        """Run the compiled primal on concrete tensors; returns a tuple."""
        if specs is None:
            specs = tuple(_spec(t, k, self.__name__) for k, t in enumerate(xs))
        entry = self.program.entry(specs)
        if _all_on_cpu(xs):
            arrays = [_numpy_view(t) for t in xs]
            # Results: numpy buffers that the tensors then wrap (no copy;
            # cheaper per call than torch.empty + .numpy()).
            outs = tuple(np.empty(shape, dt) for shape, dt in entry.out_specs)
            entry.cpu()(*arrays, out=outs)
            return tuple(map(torch.from_numpy, outs))
        return self._forward_cuda(specs, xs, entry, _device_of(xs, self.__name__))

    def _backward(self, saved, grads, needs) -> tuple:
        needed = tuple(k for k, n in enumerate(needs) if n)
        result = [None] * len(saved)
        if not needed:
            return tuple(result)
        if any(g is None for g in grads):
            grads = [torch.zeros_like(o) if g is None else g
                     for g, o in zip(grads, self._out_templates(saved))]
        pb = self.pullback_function(len(saved), needed)
        for k, g in zip(needed, pb(*saved, *grads)):
            result[k] = g
        return tuple(result)

    def _out_templates(self, saved):
        """Empty tensors shaped like the results (for absent cotangents)."""
        specs = tuple(_spec(t, k, self.__name__) for k, t in enumerate(saved))
        return [saved[0].new_empty(shape, dtype=_TORCH_OF_NP[dt])
                for shape, dt in self.program.entry(specs).out_specs]

    # ----------------------------------------------------------------- CUDA

    def compile_cuda(self, *tensors, target: Optional[str] = None):
        """The primal compiled for an NVIDIA GPU (a
        :class:`~ferrule.api.CudaCompiled`: ``.ptx``, ``.save(path)``,
        ``.load(device)``); works without a GPU. ``tensors`` may be CPU
        tensors: only their shapes and dtypes are used."""
        target = target or self.cuda_target or "cuda:sm_90"
        return self.lower(*tensors).compile_cuda(target)

    def _forward_cuda(self, specs, xs, entry, dev):
        glue = _cuda_glue
        idx = glue.index(dev)
        key = (specs, idx)
        gf = self._gpu.get(key)
        if gf is None:
            from ..runtime import cuda
            target = self.cuda_target or "cuda:sm_%d%d" % glue.capability(idx)
            try:
                gf = entry.lowered.compile_cuda(target).load(idx)
            except cuda.CudaUnavailable as e:
                raise InteropError(f"ferrule.torch.function {self.__name__}: CUDA tensors "
                                   f"given but ferrule's CUDA launcher cannot use the GPU: "
                                   f"{e}") from None
            self._gpu[key] = gf
        outs = tuple(glue.empty(shape, _TORCH_OF_NP[dt], dev) for shape, dt in entry.out_specs)
        # On torch's current stream, without waiting: torch orders what follows.
        gf(*[glue.view(t) for t in xs], out=[glue.view(o) for o in outs],
           stream=glue.stream(dev), sync=False)
        return outs


class _CudaGlue:
    """What the CUDA path asks of torch (one place, so that tests can run it
    on ferrule's emulated driver with CPU tensors)."""

    @staticmethod
    def index(dev: torch.device) -> int:
        return dev.index if dev.index is not None else torch.cuda.current_device()

    @staticmethod
    def capability(idx: int) -> Tuple[int, int]:
        return torch.cuda.get_device_capability(idx)

    @staticmethod
    def stream(dev: torch.device) -> int:
        return torch.cuda.current_stream(dev).cuda_stream

    @staticmethod
    def empty(shape, dtype, dev) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype, device=dev)

    @staticmethod
    def view(t: torch.Tensor):
        """An object with ``__cuda_array_interface__`` over ``t``'s memory."""
        return t.detach().contiguous()


_cuda_glue = _CudaGlue()


class _Eager(torch.autograd.Function):
    """The eager path: the same compiled forward and backward as the op,
    without the dispatcher's Python overhead."""

    @staticmethod
    def forward(ctx, fn: Function, specs, *xs):
        ctx.fn = fn
        ctx.save_for_backward(*xs)       # the inputs, nothing else
        outs = fn._forward(xs, specs)
        return outs[0] if len(outs) == 1 else outs

    @staticmethod
    def backward(ctx, *grads):
        return (None, None, *ctx.fn._backward(ctx.saved_tensors, grads,
                                              ctx.needs_input_grad[2:]))


def _fake_spec(t):
    try:
        shape = tuple(int(s) for s in t.shape)
    except Exception:   # unbacked symbolic sizes
        raise InteropError("ferrule.torch.function: ferrule compiles per static shape; "
                           "use torch.compile(..., dynamic=False)") from None
    return (shape, _NP_OF_TORCH[t.dtype])


def _all_on_cpu(xs) -> bool:
    return all(t.is_cpu for t in xs)


def _device_of(xs, fname: str) -> torch.device:
    devs = {t.device for t in xs}
    if len(devs) > 1:
        raise InteropError(f"ferrule.torch.function {fname}: arguments are on different "
                           f"devices ({', '.join(sorted(map(str, devs)))}); put them on one")
    dev = devs.pop()
    if dev.type not in ("cpu", "cuda"):
        raise InteropError(f"ferrule.torch.function {fname}: tensors on device '{dev}' are "
                           f"not supported; ferrule runs on 'cpu' and 'cuda' tensors")
    return dev


def _numpy_view(t: torch.Tensor) -> np.ndarray:
    """A numpy array sharing ``t``'s memory (a contiguous copy if ``t`` is not
    contiguous: the compiled code reads C-contiguous arrays)."""
    if t.requires_grad:
        t = t.detach()
    if not t.is_contiguous():
        t = t.contiguous()
    try:
        return t.numpy()
    except RuntimeError:         # a lazily negated view (neg bit): materialise it
        return t.resolve_neg().numpy()
