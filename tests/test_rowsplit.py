"""Row-separable functions run on several threads; others say why not."""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule.runtime import cpu
from models import lstm, lstm_fb


@pytest.fixture
def two_threads():
    with cpu.using(threads=2, split_min_elements=16, split_min_rows_with_sums=1):
        yield


@pytest.mark.parametrize("rows", [8, 5])  # 5 rows: chunks of 2 and 3
def test_row_split_matches_one_thread(two_threads, rows):
    rng = np.random.default_rng(0)
    G = rng.standard_normal((rows, 32)).astype(np.float32)
    c, dh, dc = (rng.standard_normal((rows, 8)).astype(np.float32) for _ in range(3))
    f = ferrule.jit(lstm_fb)
    low = f.lower(G, c, dh, dc)
    got = f(G, c, dh, dc)
    assert "CPU: 2 threads over row chunks" in low.explain()
    with cpu.using(threads=1):
        want = ferrule.jit(lstm_fb)(G, c, dh, dc)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    out = tuple(np.empty_like(a) for a in got)
    f(G, c, dh, dc, out=out)
    for a, b in zip(out, want):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fn, why", [
    # a batch x batch product
    (lambda x, w: x @ fnp.transpose(x) + w, "a matmul mixing the split rows with another dimension"),
    (lambda x, w: x * fnp.sum(x, axis=0) + w, "a partial sum is combined with row data"),
    (lambda x, w: fnp.transpose(x) * w, "a region combines rows of different dimensions"),
    (lambda x, w: fnp.max(x, axis=0) + w[0], "a reduction over the split rows that is not a sum"),
])
def test_not_splittable_runs_on_one_thread(two_threads, fn, why):
    x, w = np.arange(16.0).reshape(4, 4), np.ones((4, 4)) * 0.5
    low = ferrule.jit(fn).lower(x, w)
    want = ferrule.jit(fn, static_argnums=())(x, w)
    low.compile()
    assert "CPU: 1 thread (not splittable over rows" in low.explain() and why in low.explain()
    np.testing.assert_allclose(low.compile()(x, w)[0], want)


def _one_thread(fn, *args):
    with cpu.using(threads=1):
        return ferrule.jit(fn)(*args)


def _flat(r):
    return [y for v in r for y in _flat(v)] if isinstance(r, (tuple, list)) else [r]


MODELS = {
    # inference: the weights go whole to every chunk
    "mlp forward": (lambda x, w1, b1, w2: fnp.tanh(x @ w1 + b1) @ w2,
                    [(9, 5), (5, 7), (7,), (7, 3)]),
    # training: the weight and bias gradients are sums over the chunks
    "mlp value_and_grad": (ferrule.value_and_grad(
        lambda w1, b1, w2, x, y: fnp.mean((fnp.tanh(x @ w1 + b1) @ w2 - y) ** 2),
        argnums=(0, 1, 2)), [(5, 7), (7,), (7, 3), (9, 5), (9, 3)]),
    # a full LSTM cell with its matmuls, forward and backward
    "lstm cell vjp": (lambda x, h, c, wx, wh, b, dh, dc: _lstm_vjp(x, h, c, wx, wh, b, dh, dc),
                      [(11, 6), (11, 4), (11, 4), (6, 16), (4, 16), (16,), (11, 4), (11, 4)]),
    # results split along dimension 1, and a result that does not depend on rows
    "columns and whole": (lambda x, w: (fnp.transpose(x) * 2.0, w * 3.0, fnp.sum(x * x)),
                          [(10, 3), (3, 2)]),
}


def _lstm_vjp(x, h, c, wx, wh, b, dh, dc):
    def cell(x, h, c, wx, wh, b):
        return lstm(x @ wx + h @ wh + b, c)    # the gates from the input and state
    (h2, c2), pb = ferrule.vjp(cell, x, h, c, wx, wh, b)
    return (h2, c2, *pb((dh, dc)))


@pytest.mark.parametrize("name", list(MODELS))
def test_models_split_over_rows_match_one_thread(two_threads, name):
    fn, shapes = MODELS[name]
    rng = np.random.default_rng(1)
    args = [rng.standard_normal(s) for s in shapes]
    want = _one_thread(fn, *args)
    f = ferrule.jit(fn)
    low = f.lower(*args)
    got = f(*args)
    assert "CPU: 2 threads over row chunks" in low.explain(), low.explain()
    for g, w in zip(_flat(got), _flat(want)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    out = tuple(np.empty_like(np.asarray(g)) for g in _flat(got))
    if not isinstance(got, tuple) or any(isinstance(g, tuple) for g in got):
        return
    f(*args, out=out)
    for g, w in zip(out, _flat(want)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_a_bias_as_long_as_the_batch_goes_whole(two_threads):
    """H == B: b (H,) and w2 (H, 3) also start with the batch size; cutting
    them fails, so the split keeps them whole and cuts x and y only."""
    fn, _ = MODELS["mlp value_and_grad"]
    rng = np.random.default_rng(4)
    args = [rng.standard_normal(s) for s in [(5, 8), (8,), (8, 3), (8, 5), (8, 3)]]
    want = _one_thread(fn, *args)
    low = ferrule.jit(fn).lower(*args)
    low.compile()
    assert "CPU: 2 threads over row chunks of [4] rows" in low.explain()
    for g, w in zip(_flat(low.compile()(*args)), _flat(want)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_gradients_summed_over_chunks_are_reported(two_threads):
    fn, shapes = MODELS["mlp value_and_grad"]
    args = [np.ones(s) for s in shapes]
    low = ferrule.jit(fn).lower(*args)
    low.compile()
    assert "4 result(s) summed over the chunks" in low.explain()


def test_small_batches_with_summed_results_stay_on_one_thread(two_threads):
    """Each chunk would write a full weight gradient for a few rows."""
    with cpu.using(split_min_rows_with_sums=32):
        fn, _ = MODELS["mlp value_and_grad"]
        args = [np.ones(s) for s in [(50, 70), (70,), (70, 3), (4, 50), (4, 3)]]
        low = ferrule.jit(fn).lower(*args)
        low.compile()
        assert "1 thread (4 rows: too few to split" in low.explain()
