"""ferrule.random: JAX's bits (recorded from jax 0.10.2, and checked live
when JAX is importable), the same values inside and outside jit, and the
distributions' statistics."""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule import random as fr

# jax.random (threefry, partitionable, 32-bit mode) for these seeds; the
# float32 uniforms as their bit patterns.
JAX = {0: {'key': [0, 0], 'split': [[1797259609, 2579123966], [928981903, 3453687069], [4146024105, 2718843009]], 'bits': [4070199207, 4202968722, 1427181096, 2012915765, 2447653815, 710830403, 1332275837], 'uniform': [[1064475214, 1064993846, 1051337244], [1055913296, 1058137146, 1042905504]], 'uniform_ab': [1076838626, 1077486916, 3199030644, 1051708048], 'fold': [2716826189, 292468403], 'normal': [1.622642159461975, 2.0252647399902344, -0.4335944354534149, -0.07861734926700592, 0.17609089612960815, -0.9720892310142517]}, 42: {'key': [0, 42], 'split': [[1832780943, 270669613], [64467757, 2916123636], [2465931498, 255383827]], 'bits': [2098992034, 2919706841, 2646866425, 2409546199, 1935504149, 2516274904, 321304473], 'uniform': [[1056585764, 1059981104, 1058915320], [1057988288, 1055308516, 1058405198]], 'uniform_ab': [1055070388, 1068700152, 1066035692, 1062083008], 'fold': [2547012911, 1371500959], 'normal': [-0.02830461598932743, 0.4671318531036377, 0.2957029640674591, 0.15354591608047485, -0.12403281778097153, 0.21692314743995667]}, 2147483647: {'key': [0, 2147483647], 'split': [[3894554595, 3657610310], [2391852627, 3342111533], [1746298583, 1015193934]], 'bits': [840997797, 1235506558, 1419036569, 1650994062, 3053628459, 3320296850, 38724216], 'uniform': [[1044939368, 1049839784, 1051273612], [1053085780, 1060504236, 1061545908]], 'uniform_ab': [3213012607, 3205483100, 3199348804, 3181361520], 'fold': [2576940018, 2245239479], 'normal': [-0.8566831350326538, -0.5602229237556458, -0.4388223886489868, -0.29393982887268066, 0.5562450289726257, 0.748984694480896]}, -7: {'key': [0, 4294967289], 'split': [[113988301, 1248391998], [3115432070, 1214169808], [1106355542, 891264229]], 'bits': [1285792243, 4059003478, 1961769395, 2268883678, 2653007111, 1549558975, 1387316931], 'uniform': [[1050232640, 1064431482, 1055513712], [1057438826, 1058939308, 1052293320]], 'uniform_ab': [3204500960, 1076783960, 1049710128, 1059335698], 'fold': [1500785650, 1213516640], 'normal': [-0.5262083411216736, 1.59873628616333, -0.10859979689121246, 0.07091079652309418, 0.2994491755962372, -0.35636189579963684]}}


def _draws(k):
    return (fr.split(k, 3), fr.bits(k, (7,)), fr.uniform(k, (2, 3)),
            fr.uniform(k, (4,), minval=-2.0, maxval=3.0), fr.fold_in(k, 7), fr.normal(k, (6,)))


_JITTED = ferrule.jit(_draws)


@pytest.mark.parametrize("seed", sorted(JAX))
@pytest.mark.parametrize("where", ["numpy", "jit"])
def test_bits_are_jaxs(seed, where):
    want = JAX[seed]
    k = fr.key(seed)
    assert k.dtype == np.uint32 and k.tolist() == want["key"]
    split, bits, u, uab, fold, normal = _draws(k) if where == "numpy" else _JITTED(k)
    assert split.dtype == bits.dtype == fold.dtype == np.uint32
    assert split.tolist() == want["split"]
    assert bits.tolist() == want["bits"]
    assert u.dtype == np.float32 and u.view(np.uint32).tolist() == want["uniform"]
    assert uab.view(np.uint32).tolist() == want["uniform_ab"]
    assert fold.tolist() == want["fold"]
    # normal: the same uniforms through erfinv (Giles' polynomial): a few ulps
    np.testing.assert_allclose(normal, want["normal"], rtol=2e-6, atol=1e-6)


def test_against_live_jax():
    jax = pytest.importorskip("jax")
    for seed in (3, 12345):
        k = np.asarray(jax.random.PRNGKey(seed))
        assert fr.key(seed).tolist() == k.tolist()
        assert fr.split(k, 5).tolist() == np.asarray(jax.random.split(k, 5)).tolist()
        assert np.array_equal(fr.uniform(k, (3, 7)), np.asarray(jax.random.uniform(k, (3, 7))))


def test_key_from_traced_seed_and_large_seeds():
    assert ferrule.jit(fr.key)(np.int32(42)).tolist() == [0, 42]
    assert ferrule.jit(fr.key)(np.int64((5 << 32) + 9)).tolist() == [5, 9]
    assert fr.key((5 << 32) + 9).tolist() == [5, 9]


def test_large_draws_inside_and_outside_jit_agree():
    """Above 4096 elements the counters are computed (linalg.index), below
    they are a constant: both give the same bits, in jit and in numpy."""
    k = fr.key(7)
    f = ferrule.jit(lambda k: (fr.uniform(k, (64, 100)), fr.normal(k, (5000,), np.float64),
                               fr.uniform(k, (3000,), np.float64)))
    a, b, c = f(k)
    np.testing.assert_array_equal(a, fr.uniform(k, (64, 100)))
    np.testing.assert_allclose(b, fr.normal(k, (5000,), np.float64), rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(c, fr.uniform(k, (3000,), np.float64))


def test_distributions():
    k1, k2, k3, k4 = fr.split(fr.key(0), 4)
    u = fr.uniform(k1, (200_000,))
    assert 0.0 <= u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.003 and abs(u.var() - 1 / 12) < 0.002
    u64 = fr.uniform(k1, (100_000,), np.float64, minval=2.0, maxval=4.0)
    assert u64.dtype == np.float64 and 2.0 <= u64.min() and u64.max() < 4.0
    assert abs(u64.mean() - 3.0) < 0.01
    z = fr.normal(k2, (200_000,))
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert abs(np.mean(np.abs(z) > 1.96) - 0.05) < 0.003           # the tails
    z64 = fr.normal(k2, (100_000,), np.float64)
    assert abs(z64.std() - 1.0) < 0.01
    from math import erf, sqrt
    x = fr.erfinv(np.array([-0.999, -0.3, 0.0, 0.5, 0.9999999]))
    np.testing.assert_allclose([erf(v) for v in x], [-0.999, -0.3, 0.0, 0.5, 0.9999999], rtol=1e-14)
    p = np.array([0.1, 0.2, 0.7], np.float32)
    s = fr.categorical(k3, np.log(p), shape=(30_000,))
    assert s.dtype == np.int64 and s.shape == (30_000,)
    np.testing.assert_allclose(np.bincount(s, minlength=3) / s.size, p, atol=0.01)
    m = fr.bernoulli(k4, 0.3, (100_000,))
    assert m.dtype == np.bool_ and abs(m.mean() - 0.3) < 0.005


def test_categorical_batches_and_axis():
    k = fr.key(1)
    logits = np.array([[0.0, 0.0, -np.inf], [-np.inf, -np.inf, 0.0]], np.float32)
    f = ferrule.jit(lambda k, l: (fr.categorical(k, l), fr.categorical(k, l.T, axis=0),
                                  fr.categorical(k, l, shape=(5, 2))))
    a, b, c = f(k, logits)
    assert a.shape == (2,) and b.shape == (2,) and c.shape == (5, 2)
    assert a[1] == 2 and b[1] == 2 and np.all(c[:, 1] == 2) and np.all(c[:, 0] < 2)
    np.testing.assert_array_equal(a, fr.categorical(k, logits))


def test_sampling_inside_a_scan_with_a_key_in_the_carry():
    """A uint32 key carried through a loop, split at every step; the draws
    match the same loop in numpy."""
    def step(key, _):
        key, sub = fr.split(key)
        return key, fr.categorical(sub, fnp.zeros(4))

    run = ferrule.jit(lambda k: ferrule.scan(step, k, None, length=6))
    key, toks = run(fr.key(3))
    assert key.dtype == np.uint32 and toks.dtype == np.int64 and toks.shape == (6,)
    k = fr.key(3)
    want = []
    for _ in range(6):
        k, sub = fr.split(k)
        want.append(fr.categorical(sub, np.zeros(4, np.float32)))
    assert toks.tolist() == want and key.tolist() == k.tolist()


def test_dropout_mask_and_bad_keys():
    x = np.ones((4, 100), np.float32)
    f = ferrule.jit(lambda k, x: fnp.where(fr.bernoulli(k, 0.5, x.shape), x / 0.5, 0.0))
    y = f(fr.key(0), x)
    assert set(np.unique(y)) <= {0.0, 2.0} and 0.35 < (y > 0).mean() < 0.65
    with pytest.raises(ferrule.DTypeError, match="uint32\\[2\\]"):
        ferrule.jit(lambda k: fr.uniform(k, (3,)))(np.zeros(2, np.int32))
