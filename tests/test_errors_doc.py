"""docs/errors.md's table, row by row: each row's program raises the
documented class with the documented message, naming this file's line.

A row's program sits below; its failing statement is on a line marked
``# E:<id>``, which ``FILE:LINE`` in the documented message must name.
``…`` in a documented message stands for any text.
"""

import re
from pathlib import Path

import numpy as np
import pytest

import ferrule
import ferrule.errors
import ferrule.numpy as fnp

ROOT = Path(__file__).resolve().parents[1]
X = np.ones(3, np.float32)


def _line(marker: str) -> int:
    for k, line in enumerate(Path(__file__).read_text().splitlines(), 1):
        if line.rstrip().endswith("# " + marker):
            return k
    raise KeyError(marker)


def _rows():
    """``{id: (error class name, message)}`` from the docs table."""
    rows = {}
    for line in (ROOT / "docs" / "errors.md").read_text().splitlines():
        m = re.fullmatch(r"\| ([a-z-]+) \| .* \| `(\w+)` \| `(.*)` \|", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3))
    return rows


def _python_if(x):
    if x.sum() > 0:  # E:python-if
        return x
    return -x


_escaped = []


def _escaped_tracer():
    ferrule.jit(lambda x: _escaped.append(x) or x)(X)
    ferrule.jit(lambda y: y + _escaped[0])(X)  # E:escaped-tracer


def _boom(x):
    raise ValueError("boom")


def _calls_boom(x):
    return ferrule.pure_callback(_boom, ferrule.ShapeDtype((3,), np.float32), x)  # E:callback-raised


def _compiled_call():
    fn = ferrule.jit(lambda x: x * 2.0).lower(X).compile()
    fn(np.ones(4, np.float32))  # E:compiled-call


def _out_overlap():
    a = np.zeros(3, np.float32)
    ferrule.jit(lambda x: (x + 1.0, x * 2.0))(X, out=(a, a))  # E:out-overlap


def _out_of_memory():
    ferrule.jit(lambda x: fnp.sum(x[:, None] @ x[None, :]))(np.ones(200_000, np.float32))  # E:out-of-memory


PROGRAMS = {
    "python-if": lambda: ferrule.jit(_python_if)(X),
    "float-of-tracer": lambda: ferrule.jit(lambda x: x * float(x[0]))(X),  # E:float-of-tracer
    "numpy-scalar-type": lambda: ferrule.jit(lambda x: np.int64(x))(X),  # E:numpy-scalar-type
    "numpy-r-c": lambda: ferrule.jit(lambda x: np.r_[x, x])(X),  # E:numpy-r-c
    "numpy-function": lambda: ferrule.jit(lambda x: np.unique(x))(X),  # E:numpy-function
    "numpy-ufunc": lambda: ferrule.jit(lambda x: np.cbrt(x))(X),  # E:numpy-ufunc
    "numpy-ufunc-method": lambda: ferrule.jit(lambda x: np.add.reduce(x))(X),  # E:numpy-ufunc-method
    "numpy-keyword": lambda: ferrule.jit(lambda x: np.sum(x, dtype=np.float64))(X),  # E:numpy-keyword
    "array-method": lambda: ferrule.jit(lambda x: x.nonzero())(X),  # E:array-method
    "ferrule-numpy-name": lambda: ferrule.jit(lambda x: fnp.unique(x))(X),  # E:ferrule-numpy-name
    "string-operand": lambda: ferrule.jit(lambda x: x + "abc")(X),  # E:string-operand
    "broadcast": lambda: ferrule.jit(lambda x, y: x + y)(X, np.ones(4, np.float32)),  # E:broadcast
    "matmul-shapes": lambda: ferrule.jit(lambda a, b: a @ b)(np.ones((2, 3)), np.ones((2, 3))),  # E:matmul-shapes
    "reshape": lambda: ferrule.jit(lambda x: x.reshape(2, 2))(X),  # E:reshape
    "traced-mask": lambda: ferrule.jit(lambda x: x[x > 0])(X),  # E:traced-mask
    "index-bounds": lambda: ferrule.jit(lambda x: x[5])(X),  # E:index-bounds
    "empty-max": lambda: ferrule.jit(lambda x: fnp.max(x, axis=0))(np.ones((0, 2), np.float32)),  # E:empty-max
    "unsupported-dtype": lambda: ferrule.jit(lambda x: x * 2)(np.ones(3, np.complex64)),  # E:unsupported-dtype
    "grad-of-int": lambda: ferrule.grad(lambda i: fnp.sum(i * 2.0))(np.ones(3, np.int32)),  # E:grad-of-int
    "grad-non-scalar": lambda: ferrule.grad(lambda x: x * 2.0)(X),  # E:grad-non-scalar
    "escaped-tracer": _escaped_tracer,
    "scan-carry": lambda: ferrule.jit(lambda x: ferrule.scan(  # E:scan-carry
        lambda c, y: (c.astype(fnp.float64), y), x, fnp.ones((4, 3))))(X),
    "callback-raised": lambda: ferrule.jit(_calls_boom)(X),
    "compiled-call": _compiled_call,
    "out-overlap": _out_overlap,
    "narrow-on-gpu": lambda: ferrule.jit(lambda x: x * 2).lower(np.ones(3, np.float16)).compile_cuda(),
    "out-of-memory": _out_of_memory,
}


def test_every_row_has_a_program_and_every_program_a_row():
    assert set(_rows()) == set(PROGRAMS)


@pytest.mark.parametrize("row", sorted(PROGRAMS))
def test_row(row):
    cls_name, message = _rows()[row]
    cls = (getattr(ferrule.errors, cls_name, None) or getattr(ferrule, cls_name, None)
           or {"TypeError": TypeError, "ValueError": ValueError,
               "MemoryError": MemoryError}[cls_name])
    with pytest.raises(cls) as info:
        PROGRAMS[row]()
    assert type(info.value).__name__ == cls_name
    pattern = ".*".join(re.escape(part) for part in message.split("…"))
    if "FILE:LINE" in message:
        pattern = pattern.replace(re.escape("FILE:LINE"), re.escape(f"{__file__}:{_line('E:' + row)}"))
    assert re.fullmatch(pattern, str(info.value), re.S), (str(info.value), message)
