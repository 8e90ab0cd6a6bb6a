"""The pass registry and the mixed Python/upstream pipeline runner."""

from typing import Callable, Dict, List, Optional

from mlir import ir, passmanager

_PASSES: Dict[str, Callable[[ir.Operation], None]] = {}


class PassError(Exception):
    """A pass could not transform the IR.

    ``location`` is the MLIR location of the offending op (carrying the
    user's Python source line when the IR came from tracing).
    """

    def __init__(self, pass_name: str, message: str,
                 location: Optional[ir.Location] = None):
        self.pass_name = pass_name
        self.message = message
        self.location = location
        where = f"{location}: " if location is not None else ""
        super().__init__(f"{where}{pass_name}: {message}")


def register(name: str):
    """Decorator: register ``fn(module_op)`` as the pass called ``name``."""
    def deco(fn):
        if name in _PASSES:
            raise ValueError(f"pass {name!r} registered twice")
        _PASSES[name] = fn
        fn.pass_name = name
        return fn
    return deco


def registered_passes() -> List[str]:
    return sorted(_PASSES)


def split_pipeline(pipeline: str) -> List[str]:
    """Split ``a,b{x=1},func.func(c,d)`` into top-level items.

    A surrounding ``builtin.module(...)`` is removed.
    """
    text = pipeline.strip()
    if text.startswith("builtin.module(") and text.endswith(")"):
        text = text[len("builtin.module("):-1]
    items, depth, cur = [], 0, []
    for ch in text:
        if ch in "({":
            depth += 1
        elif ch in ")}":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced brackets in pipeline {pipeline!r}")
        if ch == "," and depth == 0:
            items.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise ValueError(f"unbalanced brackets in pipeline {pipeline!r}")
    if "".join(cur).strip():
        items.append("".join(cur).strip())
    return [i for i in items if i]


def _options(name: str, item: str) -> Dict[str, str]:
    """``name{a=1 b-c=x}`` -> {"a": "1", "b_c": "x"}, checked against the
    pass's keyword parameters (ferrule passes take options as keyword
    arguments; a dash in an option name, as MLIR spells them, is ``_``)."""
    import inspect
    if "{" not in item:
        return {}
    body = item.split("{", 1)[1].rstrip().rstrip("}")
    opts = {}
    for tok in body.split():
        key, _, val = tok.partition("=")
        opts[key.replace("-", "_")] = val or "true"
    params = inspect.signature(_PASSES[name]).parameters
    for key in opts:
        if key not in params or key == "module_op":
            known = [p.replace("_", "-") for p in params if p != "module_op"]
            raise ValueError(f"pass {name!r} has no option {key.replace('_', '-')!r}"
                             + (f"; options: {', '.join(known)}" if known else ""))
    return opts


def run_pipeline(module: ir.Module, pipeline, on_stage=None) -> None:
    """Run ``pipeline`` (a string or a list of items) on ``module`` in place.

    Consecutive upstream items run in one ``PassManager``; ferrule passes run
    in Python between them. ``on_stage(name, module)``, if given, is called
    after each item (used to print IR after each stage).
    Upstream failures raise ``ir.MLIRError`` with diagnostics attached;
    ferrule passes raise :class:`PassError`.
    """
    items = split_pipeline(pipeline) if isinstance(pipeline, str) else list(pipeline)
    upstream: List[str] = []

    def flush():
        if upstream:
            pm = passmanager.PassManager.parse(
                "builtin.module(" + ",".join(upstream) + ")")
            pm.run(module.operation)
            if on_stage:
                on_stage(",".join(upstream), module)
            upstream.clear()

    for item in items:
        name = item.split("{", 1)[0].strip()
        if name in _PASSES:
            flush()
            _PASSES[name](module.operation, **_options(name, item))
            if on_stage:
                on_stage(name, module)
        else:
            upstream.append(item)
    flush()
