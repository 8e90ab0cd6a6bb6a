"""The warm disk cache found by source key (frontend/source_key.py): a fresh
process loads a program compiled before without tracing it — and never
loads one compiled for a different function, closure value, global, static
argument or source text.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule.runtime import cpu
from ferrule.source_key import decode_struct, encode_struct, source_key

PROGRAM = textwrap.dedent("""
    import json, sys
    import numpy as np
    import ferrule, ferrule.numpy as fnp
    G = float(sys.argv[1])                       # a global
    TABLE = np.arange(3.0) * float(sys.argv[1])  # a global array, baked in
    def helper(x):                               # a global function
        return x * HELPER_FACTOR
    def make(c):                                 # c: a closure value
        def f(x, n):                             # n: a static argument
            return helper(x) * c + G + TABLE[n] + fnp.sum(x) * n
        return f
    f = ferrule.jit(make(float(sys.argv[2])))
    out = f(np.arange(4.0), int(sys.argv[3]))
    print(json.dumps({"out": out.tolist(), "traced": f.trace_count, "loaded": f.load_count,
                      "mlir": "mlir.ir" in sys.modules}))
""")


def _run(tmp_path, g, c, n, factor="2.0"):
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM.replace("HELPER_FACTOR", factor))
    env = dict(os.environ, FERRULE_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, str(script), str(g), str(c), str(n)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    x = np.arange(4.0)
    want = x * float(factor) * c + g + np.arange(3.0)[n] * g + x.sum() * n
    np.testing.assert_allclose(res["out"], want, rtol=1e-12)
    return res["traced"], res["loaded"]


def test_a_fresh_process_loads_without_tracing_and_never_a_stale_program(tmp_path):
    assert _run(tmp_path, 1.0, 2.0, 1) == (1, 0)              # cold: traced, compiled
    assert _run(tmp_path, 1.0, 2.0, 1) == (0, 1)              # warm: loaded, not traced
    assert _run(tmp_path, 5.0, 2.0, 1) == (1, 0)              # another global value
    assert _run(tmp_path, 1.0, 7.0, 1) == (1, 0)              # another closure value
    assert _run(tmp_path, 1.0, 2.0, 2) == (1, 0)              # another static argument
    assert _run(tmp_path, 1.0, 2.0, 1, factor="3.0") == (1, 0)  # the source edited
    assert _run(tmp_path, 1.0, 2.0, 1, factor="3.0") == (0, 1)  # ... and then warm


# -- the key itself, in process -------------------------------------------------------

def _key(f, *args):
    return source_key(f, ferrule.jit(f)._key(args)[0], "auto", (), cpu.defaults().resolved())


def test_the_key_follows_closures_globals_and_arguments():
    x = np.ones(3)

    def make(c):
        return lambda a: a * c
    assert _key(make(2.0), x) == _key(make(2.0), x)
    assert _key(make(2.0), x) != _key(make(3.0), x)
    assert _key(make(2.0), x) != _key(make(2.0), np.ones(4))
    assert _key(make(2.0), x) != _key(make(2.0), x.astype(np.float32))
    assert _key(make(np.ones(2)), x) != _key(make(np.zeros(2)), x)   # arrays by content


W = np.ones(3)


def _uses_w(a):
    return a * W


def test_a_global_array_changed_in_place_changes_the_key():
    x = np.ones(3)
    before = _key(_uses_w, x)
    W[0] = 5.0
    try:
        assert _key(_uses_w, x) != before
    finally:
        W[0] = 1.0
    assert _key(_uses_w, x) == before


class _Config:
    scale = 2.0


CONFIG = _Config()


def test_what_it_cannot_vouch_for_has_no_key_and_still_works(tmp_path, monkeypatch):
    def f(a):
        return a * CONFIG.scale               # an instance of a user class
    assert _key(f, np.ones(2)) is None
    monkeypatch.setenv("FERRULE_CACHE_DIR", str(tmp_path))
    np.testing.assert_allclose(ferrule.jit(f)(np.ones(2)), 2.0)
    g = ferrule.jit(f)
    np.testing.assert_allclose(g(np.ones(2)), 2.0)
    assert g.trace_count == 1 and g.load_count == 0     # traced (then a traced-key hit)


def test_a_warm_load_in_process_gives_every_stage_and_the_same_results(tmp_path, monkeypatch):
    monkeypatch.setenv("FERRULE_CACHE_DIR", str(tmp_path))

    def loss(w, x):
        return fnp.sum(fnp.tanh(x @ w) ** 2)
    vg = ferrule.value_and_grad(loss)
    w, x = np.full((3, 2), 0.5, np.float32), np.ones((4, 3), np.float32)
    cold = ferrule.jit(vg)(w, x)
    f = ferrule.jit(vg)
    warm = f(w, x)
    assert f.trace_count == 0 and f.load_count == 1
    assert warm[0] == cold[0]
    np.testing.assert_array_equal(warm[1], cold[1])
    low = f.lower(w, x)
    assert low.out_shapes[1].shape == (3, 2) and "source_key" in low.timings
    assert "ad.vjp" in low.as_text("traced") and f.trace_count == 1   # traced on demand
    assert "define" in low.as_text("llvm-ir")


_X = np.zeros(1)


@pytest.mark.parametrize("tree", [_X, (_X, [_X, _X]), {"a": _X, "b": (_X, None)}])
def test_result_structures_round_trip_through_json(tree):
    from ferrule.pytree import flatten
    struct = flatten(tree)[1]
    assert decode_struct(json.loads(json.dumps(encode_struct(struct)))) == struct


def test_the_warm_start_benchmark_runs_and_does_not_trace():
    """bench/warm_start.py (docs/performance.md), one warm process."""
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(root / "bench" / "warm_start.py"), "--repeat", "1"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "traced in the warm process: 0 time(s)" in r.stdout
    assert "same loss as cold: True" in r.stdout


class _Opaque:
    """Hashable, with a repr that does not say its value."""

    def __init__(self, v):
        self.v = v

    def __hash__(self):
        return hash(self.v)

    def __eq__(self, other):
        return isinstance(other, _Opaque) and other.v == self.v

    def __repr__(self):
        return "_Opaque()"


def test_static_values_and_structures_whose_repr_hides_them_have_no_key():
    import collections
    f = lambda a, s: a * 2.0
    jf = ferrule.jit(f, static_argnums=(1,))
    opts = cpu.defaults().resolved()
    assert source_key(f, jf._key((np.ones(2), 3))[0], "auto", (1,), opts) is not None
    assert source_key(f, jf._key((np.ones(2), _Opaque(3)))[0], "auto", (1,), opts) is None
    P = collections.namedtuple("P", "a b")
    g = lambda p: p.a * p.b
    assert source_key(g, ferrule.jit(g)._key((P(np.ones(2), np.ones(2)),))[0], "auto", (),
                      opts) is None


def test_a_program_with_host_callbacks_is_traced_again(tmp_path, monkeypatch):
    """Callbacks are numbered by each process's traces: code calling one is
    never loaded by source key (it could call another process's number)."""
    monkeypatch.setenv("FERRULE_CACHE_DIR", str(tmp_path))

    def f(x):
        return ferrule.pure_callback(np.sin, ferrule.ShapeDtype((3,), np.float32), x) * 2.0
    x = np.ones(3, np.float32)
    ferrule.jit(f)(x)
    g = ferrule.jit(f)
    np.testing.assert_allclose(g(x), np.sin(x) * 2.0, rtol=1e-6)
    assert g.trace_count == 1 and g.load_count == 0
    assert not list(tmp_path.glob("*.src.json"))


MODULE_PROGRAM = textwrap.dedent("""
    import json, sys
    import numpy as np
    import ferrule
    from helper_mod import scale            # a function from another file: hashed
    import helper_mod                        # a user module: no source key
    f = ferrule.jit(lambda x: scale(x) + 1.0)
    g = ferrule.jit(lambda x: helper_mod.scale(x) - 1.0)
    x = np.arange(3.0)
    print(json.dumps({"f": f(x).tolist(), "g": g(x).tolist(),
                      "counts": [f.trace_count, f.load_count, g.trace_count, g.load_count]}))
""")


def test_a_helper_edited_in_another_file_is_not_a_stale_hit(tmp_path):
    (tmp_path / "prog.py").write_text(MODULE_PROGRAM)
    # No .pyc: an edit within the same second must not load the old code.
    env = dict(os.environ, FERRULE_CACHE_DIR=str(tmp_path / "cache"), PYTHONDONTWRITEBYTECODE="1")

    def run(factor):
        (tmp_path / "helper_mod.py").write_text(f"def scale(x):\n    return x * {factor}\n")
        r = subprocess.run([sys.executable, str(tmp_path / "prog.py")], capture_output=True,
                           text=True, env=env, timeout=600, cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        res = json.loads(r.stdout.strip().splitlines()[-1])
        x = np.arange(3.0)
        np.testing.assert_allclose(res["f"], x * factor + 1.0)
        np.testing.assert_allclose(res["g"], x * factor - 1.0)
        return res["counts"]
    assert run(2.0) == [1, 0, 1, 0]
    assert run(2.0) == [0, 1, 1, 0]          # f loads untraced; g (a module) traces
    assert run(5.25) == [1, 0, 1, 0]         # the helper edited: f compiles anew


def test_a_jitted_global_enters_the_key_by_its_function():
    x = np.ones(2)

    def make(c):
        inner = ferrule.jit(lambda a: a * c)
        return lambda a: inner(a) + 1.0
    assert _key(make(2.0), x) == _key(make(2.0), x)
    assert _key(make(2.0), x) != _key(make(3.0), x)
