"""bench/suite.py, the benchmark suite of docs/performance.md: its float64
references are the workloads' vjps, a wrong answer fails the run, and
``--quick`` runs end to end with whichever peers are installed here,
printing the table and drawing the plot. No timing is asserted: the numbers
depend on the machine and its load.
"""

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import suite  # noqa: E402
import suite_numpy  # noqa: E402
from suite_workloads import WORKLOADS  # noqa: E402

NUMPY_OPS = types.SimpleNamespace(split=lambda x, n: np.split(x, n, axis=1), tanh=np.tanh,
                                  exp=np.exp, sin=np.sin, sigmoid=lambda x: 1 / (1 + np.exp(-x)))
DIFFERENTIATED = [n for n, w in WORKLOADS.items() if w.vjp]


def _forward(w, primals):
    out = w.fn(NUMPY_OPS, *primals)
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("name", DIFFERENTIATED)
def test_reference_is_the_vjp(name):
    """The hand-derived float64 reference: its forward results are the
    workload's, and its cotangents pass the dot-product test against
    central differences (<ybar, J v> = <J^T ybar, v>)."""
    w = WORKLOADS[name]
    args = [a.astype(np.float64) for a in w.inputs(3, 5)]
    primals, cots = args[:w.n_primals], args[w.n_primals:]
    ref = w.back(*args)
    outs = _forward(w, primals)
    for o, r in zip(outs, ref):
        np.testing.assert_allclose(r, o, rtol=1e-12, atol=1e-12)
    rng = np.random.default_rng(1)
    v = [rng.standard_normal(p.shape) for p in primals]
    eps = 1e-6
    plus = _forward(w, [p + eps * d for p, d in zip(primals, v)])
    minus = _forward(w, [p - eps * d for p, d in zip(primals, v)])
    jv = sum(np.sum(c * (a - b)) for c, a, b in zip(cots, plus, minus)) / (2 * eps)
    vjp = sum(np.sum(g * d) for g, d in zip(ref[len(outs):], v))
    assert abs(jv - vjp) <= 1e-6 * (1 + abs(vjp)), (jv, vjp)


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_hand_fused_numpy_matches_the_reference(name):
    w = WORKLOADS[name]
    args = w.inputs(37, 16)        # 37 rows: not a multiple of the check's row blocks
    got = suite_numpy.FUNCTIONS[name](*args)
    assert w.max_error(args, got if isinstance(got, tuple) else (got,), block=8) < 1e-5


def _args(**kw):
    return types.SimpleNamespace(**{"sizes": "8x8", "step_size": "8x8", "repeat": 1,
                                    "budget": 0.01, **kw})


def test_a_wrong_answer_fails_the_run(monkeypatch, capsys):
    """A contender whose result is off is reported, not timed, and the run
    exits with status 1 without a table."""
    real = suite_numpy.FUNCTIONS["gru"]

    def off(*args):
        out = real(*args)
        return (out[0] + 1e-2, *out[1:])
    monkeypatch.setitem(suite_numpy.FUNCTIONS, "gru", off)
    res = suite.run_child("numpy", _args())
    wrong = [r for r in res["rows"] if "wrong" in r]
    assert [r["workload"] for r in wrong] == ["gru"] and "ms" not in wrong[0]
    assert "WRONG ANSWER" in capsys.readouterr().out

    monkeypatch.setattr(suite, "run_all", lambda a: ([res], ["numpy gru 8x8: " + wrong[0]["wrong"]]))
    with pytest.raises(SystemExit) as e:
        suite.main(["--quick", "--contenders", "numpy"])
    assert e.value.code == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "| workload |" not in out


def test_quick_run_prints_the_table_and_draws_the_plot(tmp_path):
    """``--quick`` as docs/performance.md shows it, every contender installed
    here in its own process; absent ones are skipped with a line."""
    out = tmp_path / "suite.md"
    proc = subprocess.run([sys.executable, "bench/suite.py", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout
    assert "| workload | B×H | MiB moved | bound | ferrule |" in text
    assert "ferrule / best peer" in text and "| LSTM cell | 64×256 |" in text
    assert "| LSTM step (2 matmuls) |" in text and "per-call overhead" in text
    assert out.read_text().strip() in text
    for module, names in (("torch", ("torch.compile", "torch eager")), ("jax", ("jax",))):
        if importlib.util.find_spec(module) is None:
            assert all(f"{n}: skipped, {module} is not installed" in text for n in names)
    if importlib.util.find_spec("matplotlib") is None:
        assert "plot skipped: matplotlib is not installed" in text
    else:
        assert out.with_suffix(".png").stat().st_size > 0
