"""Pytrees: dicts, namedtuples, dataclasses and registered classes as
arguments and results of jit and the transforms."""

import collections
import dataclasses

import numpy as np

import ferrule
import ferrule.numpy as fnp
from ferrule import pytree

P = collections.namedtuple("P", "w b")


@dataclasses.dataclass
class D:
    x: np.ndarray
    y: np.ndarray


class Pair:
    def __init__(self, a, b):
        self.a, self.b = a, b


pytree.register(Pair, lambda p: ((p.a, p.b), None), lambda aux, ch: Pair(*ch))


def test_flatten_roundtrip_and_dict_key_order():
    tree = {"z": 1, "a": (2, [3, None]), "p": P(4, 5)}
    leaves, struct = pytree.flatten(tree)
    assert leaves == [2, 3, 4, 5, 1]                  # dict keys sorted, None has no leaf
    assert pytree.unflatten(struct, leaves) == tree
    assert repr(pytree.flatten({"a": 1, "z": 2})[1]) == repr(pytree.flatten({"z": 0, "a": 0})[1])


def test_jit_and_grad_through_containers():
    f = lambda p, d, q: fnp.sum(p["a"] * p["b"].w) + fnp.sum(d.x * d.y) + fnp.sum(q.a * q.b)
    p = {"b": P(np.ones(3), np.zeros(3)), "a": np.arange(3.0)}
    d = D(np.ones(2), np.full(2, 2.0))
    q = Pair(np.ones(2), np.full(2, 3.0))
    assert ferrule.jit(f)(p, d, q) == 3.0 + 4.0 + 6.0
    gp, gd, gq = ferrule.grad(f, argnums=(0, 1, 2))(p, d, q)
    np.testing.assert_array_equal(gp["a"], np.ones(3))
    np.testing.assert_array_equal(gp["b"].w, np.arange(3.0))
    np.testing.assert_array_equal(gp["b"].b, np.zeros(3))
    assert isinstance(gd, D) and isinstance(gq, Pair)
    np.testing.assert_array_equal(gd.x, d.y)
    np.testing.assert_array_equal(gq.b, q.a)


def test_jit_returns_containers_and_caches_per_structure():
    f = ferrule.jit(lambda d: {"s": sum(d.values()), "n": None})
    out = f({"a": np.ones(2), "b": np.ones(2)})
    assert out["n"] is None
    np.testing.assert_array_equal(out["s"], [2.0, 2.0])
    f({"a": np.zeros(2), "b": np.ones(2)})
    assert f.trace_count == 1
    f({"a": np.zeros(2), "c": np.ones(2)})
    assert f.trace_count == 2
