"""numpy's own functions on traced arrays: the ones ferrule.numpy has run
as ferrule ops (numpy's ``__array_function__``/``__array_ufunc__``
protocols); the rest are clear errors (docs/errors.md, tests/test_errors_doc.py)."""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule.errors import UnsupportedOperationError


def test_numpy_functions_that_ferrule_has_are_traced():
    def f(x, y):
        z = np.concatenate([x, y], axis=0)
        w = np.where(z > 0, z, np.exp(z))
        return np.sum(w, axis=0) + np.mean(w) + np.max(z) + np.dot(x[0], y[0]) * np.shape(x)[0]
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 3)), rng.standard_normal((3, 3))
    np.testing.assert_allclose(ferrule.jit(f)(x, y), f(x, y), rtol=1e-12)
    g = ferrule.grad(lambda x: np.sum(np.tanh(x) ** 2))(x)
    np.testing.assert_allclose(g, 2 * np.tanh(x) * (1 - np.tanh(x) ** 2), rtol=1e-12)


def test_missing_methods_and_names_are_attribute_errors_too():
    seen = {}

    def f(x):
        seen["nonzero"] = hasattr(x, "nonzero")
        seen["sum"] = hasattr(x, "sum")
        return x
    ferrule.jit(f)(np.ones(3))
    assert seen == {"nonzero": False, "sum": True}
    assert not hasattr(fnp, "unique") and getattr(fnp, "unique", None) is None
    with pytest.raises(AttributeError, match="no attribute 'not_a_numpy_name'"):
        fnp.not_a_numpy_name


def test_ufunc_keywords_other_than_out_none_are_refused():
    with pytest.raises(UnsupportedOperationError, match="keyword argument"):
        ferrule.jit(lambda x: np.exp(x, where=x > 0))(np.ones(3))
    np.testing.assert_allclose(ferrule.jit(lambda x: np.exp(x, out=None))(np.zeros(3)), 1.0)


W = np.arange(6, dtype=np.float32).reshape(2, 3)


def test_a_global_array_is_baked_in_and_explain_says_so():
    f = ferrule.jit(lambda x: x @ W)
    x = np.ones((1, 2), np.float32)
    before = f(x)
    W_saved = W.copy()
    try:
        W[:] = 0
        np.testing.assert_array_equal(f(x), before)       # JAX's semantics: baked when traced
    finally:
        W[:] = W_saved
    text = f.lower(x).explain()
    assert "a constant array f32[2, 3] (24 B) is baked into the code" in text
    assert "test_numpy_dispatch.py:" in text


def test_ferrules_own_constants_are_not_reported_as_baked():
    from ferrule.nn import cross_entropy
    f = ferrule.jit(lambda z, y: fnp.mean(cross_entropy(z, y)) + fnp.sum(
        fnp.take_along_axis(z, y[:, None], axis=1)))
    z, y = np.ones((4, 5), np.float32), np.arange(4, dtype=np.int32)
    assert "baked" not in f.lower(z, y).explain()
