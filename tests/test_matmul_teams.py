"""Large matmuls on a team of threads inside compiled code
(``tile-matmul{threads=N}`` + ``parallel-calls``, libgomp).

A team splits C's column blocks, so every element is summed exactly as on
one thread: results must be bitwise those of ``team_threads=1``. Also: the
teams inside a ``scan`` (the char-LSTM's per-step matmuls), gradients
against finite differences, calls from several Python threads at once,
a child process after ``fork`` (libgomp's threads are gone there), and the
fallback where libgomp is missing.
"""

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule.runtime import cpu
from ferrule.runtime.cpu import codegen, options
from models import lstm_gates

pytestmark = pytest.mark.skipif(not codegen.openmp_runtime(),
                                reason="libgomp is not installed: no teams to test")

# Each at least 2^20 multiply-adds in the register-tiled part, so each runs
# on a team; with remainders of rows and of columns (run on the caller).
SHAPES = [(32, 256, 1024), (64, 300, 200), (37, 512, 130), (256, 32, 1024)]


def _team_functions(jitted, *args):
    """The names of the team functions in ``jitted``'s code for ``args``."""
    from ferrule.dialect.context import make_context
    low = jitted.lower(*args)
    _, ll = cpu.lower_to_llvm_ir(low.as_text("ad"), low.name, make_context(), team_threads=2)
    return {line.split("@")[1].split("(")[0] for line in ll.splitlines()
            if line.startswith("define") and "@__ferrule_team_" in line
            and "__par(" not in line and "__team(" not in line}


def _both(make, *args):
    """``make()``'s jitted function run with teams of 2 and with none."""
    out = {}
    for team in (1, 2):
        with cpu.using(team_threads=team):
            f = make()
            out[team] = f(*args)
            note = f.lower(*args).compile().threads_note
            assert ("team of 2" in note) == (team == 2), note
            assert "row chunks" not in note, note
    return out[1], out[2]


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_team_matmul_is_bitwise_the_serial_one(m, k, n, dtype):
    rng = np.random.default_rng(m + k + n)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    if dtype == np.float32:
        assert "__ferrule_team_mm0" in _team_functions(ferrule.jit(lambda a, b: a @ b), a, b)
    serial, team = _both(lambda: ferrule.jit(lambda a, b: a @ b), a, b)
    assert np.array_equal(serial, team)
    want = a.astype(np.float64) @ b.astype(np.float64)
    tol = (2e-6 if dtype == np.float32 else 1e-14) * np.sqrt(k)
    np.testing.assert_allclose(team, want, rtol=tol, atol=tol * np.abs(want).max())


def test_team_batched_matmul():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 64, 256)).astype(np.float32)
    b = rng.standard_normal((3, 256, 256)).astype(np.float32)
    serial, team = _both(lambda: ferrule.jit(lambda a, b: a @ b), a, b)
    assert np.array_equal(serial, team)


def _lstm_loss(p, xs):
    def step(hc, x):
        h, c = hc
        h2, c2 = lstm_gates(*fnp.split(x @ p["wx"] + h @ p["wh"], 4, axis=1), c)
        return (h2, c2), h2
    h0 = fnp.zeros((xs.shape[1], p["wh"].shape[0]), xs.dtype)
    _, hs = ferrule.scan(step, (h0, h0), xs)
    return fnp.sum(hs * hs)


def _lstm_problem(dtype, T=4, B=32, E=64, H=128):
    rng = np.random.default_rng(2)
    p = {"wx": rng.standard_normal((E, 4 * H)) / np.sqrt(E),
         "wh": rng.standard_normal((H, 4 * H)) / np.sqrt(H)}
    return ({k: v.astype(dtype) for k, v in p.items()},
            rng.standard_normal((T, B, E)).astype(dtype))


def test_teams_inside_scan_gradients_bitwise_and_against_finite_differences():
    p, xs = _lstm_problem(np.float64)
    serial, team = _both(lambda: ferrule.jit(ferrule.value_and_grad(_lstm_loss)), p, xs)
    assert serial[0] == team[0]
    for name in p:
        assert np.array_equal(serial[1][name], team[1][name]), name
    # float64 central differences along a random direction of wh (teams on)
    rng = np.random.default_rng(3)
    d = rng.standard_normal(p["wh"].shape)
    eps = 1e-6
    with cpu.using(team_threads=2):
        f = ferrule.jit(_lstm_loss)
        hi = f({**p, "wh": p["wh"] + eps * d}, xs)
        lo = f({**p, "wh": p["wh"] - eps * d}, xs)
    fd = (hi - lo) / (2 * eps)
    assert abs(fd - np.sum(team[1]["wh"] * d)) <= 1e-6 * max(1.0, abs(fd))


def test_teams_from_several_python_threads_at_once():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((64, 256)).astype(np.float32)
    b = rng.standard_normal((256, 512)).astype(np.float32)
    with cpu.using(team_threads=2):
        f = ferrule.jit(lambda a, b: fnp.tanh(a @ b))
        want = f(a, b)
        got, errors = [None] * 4, []

        def work(i):
            try:
                for _ in range(20):
                    got[i] = f(a, b)
            except Exception as e:     # pragma: no cover - reported below
                errors.append(e)
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert all(np.array_equal(g, want) for g in got)


def test_a_child_process_after_fork_runs_teams_on_its_own_thread():
    """libgomp is not fork-safe: a team started in a child after the parent
    used one would hang. The child runs the team functions alone."""
    script = textwrap.dedent("""
        import os, numpy as np, ferrule
        from ferrule.runtime import cpu
        a = np.ones((64, 256), np.float32); b = np.ones((256, 1024), np.float32)
        with cpu.using(team_threads=2):
            f = ferrule.jit(lambda a, b: a @ b)
            assert f(a, b)[0, 0] == 256
            pid = os.fork()
            if pid == 0:
                os._exit(0 if f(a, b)[5, 7] == 256 else 3)
            _, status = os.waitpid(pid, 0)
        print("child exit", os.waitstatus_to_exitcode(status))
    """)
    env = {**os.environ, "FERRULE_CACHE_DIR": ""}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert "child exit 0" in r.stdout


def test_without_libgomp_matmuls_run_on_the_calling_thread(monkeypatch):
    monkeypatch.setattr(options, "openmp_runtime", lambda: False)
    resolved = cpu.CpuOptions(threads=2).resolved()
    assert resolved.team_threads == 1
    a = np.ones((64, 256), np.float32)
    b = np.ones((256, 1024), np.float32)
    with cpu.using(threads=2, split_min_elements=1 << 40):
        f = ferrule.jit(lambda a, b: a @ b)
        assert f(a, b)[3, 3] == 256
        assert "team" not in f.lower(a, b).compile().threads_note


def test_the_pass_and_the_runtime_agree_on_the_cap_symbol():
    from ferrule.passes import parallel_calls
    assert parallel_calls.TEAM_LIMIT == codegen.TEAM_LIMIT_SYMBOL


def test_exit_right_after_a_team_call_with_spinning_threads():
    """With OMP_WAIT_POLICY=active the team's threads spin in libgomp for
    ever; the process must still exit cleanly (libgomp stays loaded: it
    was unloaded under spinning threads at exit, a crash)."""
    script = textwrap.dedent("""
        import numpy as np, ferrule
        from ferrule.runtime import cpu
        with cpu.using(team_threads=2):
            print(ferrule.jit(lambda a, b: a @ b)(np.ones((64, 256), np.float32),
                                                   np.ones((256, 1024), np.float32))[0, 0])
    """)
    env = {**os.environ, "FERRULE_CACHE_DIR": "", "OMP_WAIT_POLICY": "active"}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert r.stdout.strip() == "256.0"
