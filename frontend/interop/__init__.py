"""ferrule inside other frameworks: ``ferrule.torch`` and ``ferrule.jax``.

The framework-neutral part (:mod:`.core`) compiles a numpy-style function's
primal and its pullbacks per signature with the public API (``jit``,
``vjp``, ``Jitted.lower``, ``out=``); :mod:`.torch_function` and
:mod:`.jax_function` wrap it as a torch custom op and a ``jax.custom_vjp``.
Nothing here is imported by ``import ferrule``: torch and jax are optional
(``pip install ferrule[torch]``, ``ferrule[jax]``).
"""
