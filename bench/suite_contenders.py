"""The contenders of ``bench/suite.py``, each as users call it.

:func:`prepare` returns, for one workload and its float32 arguments,
``call()`` — one call with fresh outputs, synchronised (JAX's asynchronous
dispatch is waited for) — and ``fetch(result)`` — the results as numpy
arrays in the reference's order; for ferrule also ``call_out()``, the same
call writing into preallocated ``out=`` arrays, and ``jitted``, the
function (for bench/suite_profile.py). A contender whose library
is not installed raises ``ImportError`` (the driver skips it and says so).

Differentiated workloads are ``vjp`` + pullback in one compiled function
where the framework compiles (ferrule ``jit``, ``jax.jit``,
``torch.compile``), and autograd for PyTorch eager.
"""

import types

import numpy as np

CONTENDERS = ("ferrule", "jax", "torch.compile", "torch eager", "numpy")
LABELS = {"ferrule": "ferrule", "jax": "JAX jit(vjp)",
          "torch.compile": "torch.compile(func.vjp)", "torch eager": "PyTorch eager",
          "numpy": "hand-fused numpy"}
SHORT = {"ferrule": "ferrule jit", "jax": "JAX jit", "torch.compile": "torch.compile",
         "torch eager": "PyTorch eager", "numpy": "numpy"}
"""Names for the trivial call, which has no vjp."""


def _as_tuple(r):
    return tuple(r) if isinstance(r, (tuple, list)) else (r,)


def _vjp_program(vjp, w, ops):
    """``f(*primals, *cotangents) -> (*outputs, *primal cotangents)`` for a
    framework's ``vjp(fn, *primals) -> (out, pullback)``."""
    n = w.n_primals
    if not w.vjp:
        return lambda *a: w.fn(ops, *a)

    def forward_backward(*args):
        out, pullback = vjp(lambda *p: w.fn(ops, *p), *args[:n])
        cot = args[n:] if isinstance(out, tuple) else args[n]
        return (*_as_tuple(out), *pullback(cot))
    return forward_backward


def _ferrule(w, args):
    import ferrule
    import ferrule.numpy as fnp
    from ferrule.nn import sigmoid
    ops = types.SimpleNamespace(split=lambda x, n: fnp.split(x, n, axis=1), tanh=fnp.tanh,
                                exp=fnp.exp, sin=fnp.sin, sigmoid=sigmoid)
    f = ferrule.jit(_vjp_program(ferrule.vjp, w, ops))
    call = lambda: f(*args)                                     # noqa: E731
    res = {"call": call, "fetch": _as_tuple, "jitted": f}
    if w.vjp:   # out=: buffers written once here, so their pages are mapped
        buf = tuple(np.empty_like(o) for o in _as_tuple(call()))
        res["call_out"] = lambda: f(*args, out=buf)
    return res


def _jax(w, args):
    import jax
    import jax.numpy as jnp
    ops = types.SimpleNamespace(split=lambda x, n: jnp.split(x, n, axis=1), tanh=jnp.tanh,
                                exp=jnp.exp, sin=jnp.sin, sigmoid=jax.nn.sigmoid)
    f = jax.jit(_vjp_program(jax.vjp, w, ops))
    dev = [jax.device_put(a) for a in args]      # users keep their arrays on the device
    return {"call": lambda: jax.block_until_ready(f(*dev)),
            "fetch": lambda r: tuple(np.asarray(x) for x in _as_tuple(r))}


def _torch_ops():
    import torch
    return torch, types.SimpleNamespace(split=lambda x, n: torch.chunk(x, n, dim=1),
                                        tanh=torch.tanh, exp=torch.exp, sin=torch.sin,
                                        sigmoid=torch.sigmoid)


def _torch_fetch(r):
    return tuple(x.detach().numpy() for x in _as_tuple(r))


def _torch_compile(w, args):
    torch, ops = _torch_ops()
    # Every workload and size is a new specialisation of the same code object:
    # more than the default limit of 8 would fall back to eager silently.
    torch._dynamo.config.recompile_limit = 64
    # One static specialisation per shape, as ferrule and JAX compile: without
    # dynamic=False a second shape would switch torch to dynamic-shape kernels.
    f = torch.compile(_vjp_program(torch.func.vjp, w, ops), dynamic=False)
    targs = [torch.from_numpy(a) for a in args]
    return {"call": lambda: f(*targs), "fetch": _torch_fetch}


def _torch_eager(w, args):
    torch, ops = _torch_ops()
    targs = [torch.from_numpy(a) for a in args]
    n = w.n_primals
    if not w.vjp:
        return {"call": lambda: w.fn(ops, *targs), "fetch": _torch_fetch}

    def call():
        primals = [a.detach().requires_grad_() for a in targs[:n]]
        outs = _as_tuple(w.fn(ops, *primals))
        grads = torch.autograd.grad(outs, primals, targs[n:])
        return (*(o.detach() for o in outs), *grads)
    return {"call": call, "fetch": _torch_fetch}


def _numpy(w, args):
    from suite_numpy import FUNCTIONS
    fn = FUNCTIONS[w.name]
    return {"call": lambda: fn(*args), "fetch": _as_tuple}


_PREPARE = {"ferrule": _ferrule, "jax": _jax, "torch.compile": _torch_compile,
            "torch eager": _torch_eager, "numpy": _numpy}


def prepare(name, w, args):
    """``{"call", "fetch"[, "call_out"]}`` for contender ``name`` on workload
    ``w`` with float32 numpy ``args``; ``ImportError`` if it is not installed."""
    return _PREPARE[name](w, args)


def describe(name) -> str:
    """Version and threads of a contender's library (imports it: may raise
    ``ImportError``)."""
    if name == "ferrule":
        from ferrule.runtime.cpu import options
        return f"row splitting over up to {options.defaults().resolved().threads} threads"
    if name == "jax":
        import jax
        return f"jax {jax.__version__} ({jax.devices()[0].platform})"
    if name.startswith("torch"):
        import torch
        return f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    return f"numpy {np.__version__}, 1 thread"
