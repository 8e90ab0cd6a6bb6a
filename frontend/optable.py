"""The op table, docs/ops.md, generated from the code so that it cannot
drift: ``python -m ferrule.optable`` writes it (``--check`` exits 1 if the
committed file differs; tests/test_optable.py does the same).

Where each row's derivative comes from, first match wins:
  1. an op that is one scalar ``arith``/``math`` op (``f.primitive``, set by
     :func:`~ferrule.elementwise.unary_op`): that op's partials, from the
     compiler's one table (``passes/support/scalar_rules.PARTIALS``, kept
     next to the rules themselves);
  2. a ``Derivative:`` paragraph in the op's docstring (the composites of
     :mod:`ferrule.mathops`, ``ferrule.nn``'s newer activations);
  3. :data:`OTHER`, for the ops written before their docstrings said so.
An exported op with none of them is an error: a new op states its
derivative, or the table (and its test) fails. The second part of the
file lists every scalar rule, so a rule without its words fails too.
"""

import argparse
import inspect
import re
import sys
from pathlib import Path

from . import nn
from . import numpy as fnp
from .passes.support.scalar_rules import PARTIALS, RULES
from .stop_gradient_op import stop_gradient

_LINEAR = "linear: the same op on tangents; its transpose in reverse mode"
_NONE_INT = "none: integer results (cotangent `float0`)"
_NONE_BOOL = "none: bool results"
_CONST = "none: a constant (a traced `fill_value` of `full`: the sum of the cotangent)"
# Derivative conventions of the ops whose docstrings predate the
# ``Derivative:`` line (docs/conventions.md has the kinks and ties in full).
OTHER = {
    **{n: _LINEAR for n in ("broadcast_to", "reshape", "transpose", "swapaxes", "sum",
                            "getitem", "concatenate", "stack", "split", "take",
                            "take_along_axis")},
    **{n: _NONE_BOOL for n in ("less", "less_equal", "greater", "greater_equal", "equal",
                               "not_equal")},
    **{n: _NONE_INT for n in ("bitwise_and", "bitwise_or", "bitwise_xor", "invert",
                              "bitwise_not", "left_shift", "right_shift", "arange", "argmax",
                              "argmin")},
    **{n: _CONST for n in ("zeros", "ones", "full", "zeros_like", "ones_like", "full_like")},
    "asarray": "identity on traced arrays; none for constants",
    "array": "identity on traced arrays; none for constants",
    "astype": "float↔float: the tangent cast the same way, the cotangent back; none to or "
              "from integers and bools",
    "square": "2x (as `x * x`)",
    "power": "∂x = y·x^(y-1), ∂y = log(x)·r (`math.powf`; 0 where y = 0, resp. x = 0); an "
             "integer constant exponent: through the multiplies",
    "where": "the chosen operand's derivative, 0 to the other; none to the condition",
    "max": "the cotangent split evenly among the maxima; the tangent is their mean; NaN at a "
           "NaN",
    "amax": "as `max`",
    "min": "as `max`, among the minima",
    "amin": "as `min`",
    "matmul": "bilinear: ∂A = ȳ·Bᵀ, ∂B = Aᵀ·ȳ",
    "dot": "bilinear, as `matmul`",
    "clip": "1 with respect to x inside [lo, hi] and at the bounds, 0 outside (then 1 to the "
            "chosen bound); NaN at a NaN x",
    "mod": "as `remainder`",
    "sigmoid": "0.25·(1 - tanh(x/2)²), through `0.5 + 0.5·tanh(x/2)`",
    "relu": "1 for x > 0, 0 for x <= 0 (0 at 0); NaN at a NaN",
    "softplus": "sigmoid(x) (0.5 at 0)",
    "logsumexp": "softmax(x) along the axis (the max shift is a `stop_gradient`)",
    "log_softmax": "through `x - logsumexp(x)`",
    "softmax": "through `exp(x - max)/sum` (the max shift is a `stop_gradient`)",
    "cross_entropy": "softmax(logits) - one_hot(labels); none to the labels",
    "one_hot": _NONE_INT.replace("integer", "constant"),
    "stop_gradient": "0 in both modes, at any order",
}

_DERIVATIVE = re.compile(r"Derivative( \([^)]*\))?:\s*(.*?)(?:\n\s*\n|$)", re.S)


def _ops():
    """(qualified name, function) of every exported op: ``ferrule.numpy``'s
    functions, ``ferrule.nn``'s, ``ferrule.stop_gradient``."""
    out = [(f"numpy.{n}", getattr(fnp, n)) for n in fnp.__all__
           if callable(getattr(fnp, n)) and not isinstance(getattr(fnp, n), type)]
    out += [(f"nn.{n}", f) for n, f in vars(nn).items()
            if inspect.isfunction(f) and f.__module__ == nn.__name__ and not n.startswith("_")]
    out.append(("stop_gradient", stop_gradient))
    return out


def derivative(name: str, fn) -> str:
    """The derivative convention of op ``name`` (see the module docstring)."""
    prim = getattr(fn, "primitive", None)
    if prim in PARTIALS:
        return f"`{prim}`: {PARTIALS[prim]}"
    m = _DERIVATIVE.search(fn.__doc__ or "")
    if m:
        qual = m.group(1).strip(" ()") + ": " if m.group(1) else ""
        return qual + " ".join(m.group(2).split()).replace("``", "`")
    short = name.rpartition(".")[2]
    if short in OTHER:
        return OTHER[short]
    raise LookupError(f"op {name} states no derivative: give it a 'Derivative:' line in its "
                      f"docstring (frontend/optable.py)")


def generate() -> str:
    """The text of docs/ops.md."""
    ops = _ops()
    missing = sorted(set(RULES) - set(PARTIALS))
    if missing:
        raise LookupError(f"scalar rules without words in scalar_rules.PARTIALS: {missing}")
    lines = [
        "# The op table",
        "",
        "Generated by `python -m ferrule.optable` from the code (do not edit:",
        "`tests/test_optable.py` fails when this file and the code disagree). Each",
        "exported op with its derivative: an op that is one scalar `arith`/`math`",
        "op shows that op's partials (`r` is the result), from the compiler's one",
        "table, `passes/support/scalar_rules.py`; the others their docstrings'",
        "`Derivative:` line, or `frontend/optable.py`'s `OTHER`. Kinks, ties and",
        "NaNs in full: [conventions.md](conventions.md).",
        "",
        f"{len(ops)} ops.",
        "",
        "| op | derivative |",
        "|---|---|",
    ]
    lines += [f"| `{n}` | {derivative(n, f).replace('|', '∣')} |" for n, f in ops]
    lines += [
        "",
        "## The scalar partials table",
        "",
        "Every scalar op that pointwise regions can differentiate; forward mode",
        "uses `ẏ = Σ pₖ ẋₖ`, reverse mode `x̄ₖ += pₖ ȳ`.",
        "",
        "| scalar op | partials |",
        "|---|---|",
    ]
    lines += [f"| `{k}` | {PARTIALS[k].replace('|', '∣')} |" for k in RULES]
    return "\n".join(lines) + "\n"


DOC = Path(__file__).resolve().parents[1] / "docs" / "ops.md"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ferrule.optable", description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 if docs/ops.md is not current")
    p.add_argument("--out", type=Path, default=DOC)
    a = p.parse_args(argv)
    text = generate()
    if a.check:
        ok = a.out.exists() and a.out.read_text() == text
        print(f"{a.out}: {'current' if ok else 'out of date (run python -m ferrule.optable)'}")
        return 0 if ok else 1
    a.out.write_text(text)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
