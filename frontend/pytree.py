"""Pytrees: nested containers of arrays, flattened to leaves and back.

Containers: tuples, lists, dicts (by sorted key, as JAX), namedtuples,
dataclass instances (by field, in declaration order), ``None`` (a node with
no leaves), and any class registered with :func:`register`. A ``float0``
array (:data:`FLOAT0`: a symbolic zero cotangent, it holds no data) is a
node with no leaves too; it comes back as zeros of its shape. Everything
else is a leaf. A structure is hashable and prints the same for equal trees, so
it is part of ``jit``'s cache key.
"""

import dataclasses
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

# JAX's float0: the dtype of the cotangent (or tangent) of an integer or
# bool value, a symbolic zero; arrays of it hold no data.
FLOAT0 = np.dtype([("float0", np.void, 0)])


def is_float0(x) -> bool:
    """True for a float0 array (a symbolic zero cotangent)."""
    return isinstance(x, np.ndarray) and x.dtype == FLOAT0

_REGISTRY: Dict[type, Tuple[Callable, Callable]] = {}
_NONE = "None"


def register(cls: type, flatten: Callable[[Any], Tuple[Sequence[Any], Any]],
             unflatten: Callable[[Any, Sequence[Any]], Any]) -> None:
    """Make instances of ``cls`` pytree nodes.

    ``flatten(obj) -> (children, aux)`` gives the children (themselves
    pytrees) and hashable auxiliary data; ``unflatten(aux, children)``
    rebuilds the object. As ``jax.tree_util.register_pytree_node``.
    """
    _REGISTRY[cls] = (flatten, unflatten)


def _node(tree):
    """(kind, aux, children) for a container, or None for a leaf."""
    t = type(tree)
    if is_float0(tree):
        return ("float0", tree.shape, [])
    if t in _REGISTRY:
        children, aux = _REGISTRY[t][0](tree)
        return ("registered", (t, aux), list(children))
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):       # namedtuple
        return ("namedtuple", t, list(tree))
    if isinstance(tree, (tuple, list)):
        return (t, None, list(tree))
    if isinstance(tree, dict):
        keys = sorted(tree)
        return ("dict", tuple(keys), [tree[k] for k in keys])
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        names = tuple(f.name for f in dataclasses.fields(tree))
        return ("dataclass", (t, names), [getattr(tree, n) for n in names])
    return None


def _build(kind, aux, children):
    if kind == "registered":
        cls, data = aux
        return _REGISTRY[cls][1](data, children)
    if kind == "namedtuple":
        return aux(*children)
    if kind == "dict":
        return dict(zip(aux, children))
    if kind == "float0":
        return np.zeros(aux, FLOAT0)
    if kind == "dataclass":
        cls, names = aux
        return cls(**dict(zip(names, children)))
    return kind(children)


def flatten(tree, is_leaf: Callable[[Any], bool] = None) -> Tuple[List[Any], Any]:
    """``(leaves, structure)`` of ``tree``; a leaf's structure is None.
    ``is_leaf(subtree)`` true makes a subtree a leaf (as JAX's)."""
    if is_leaf is not None and is_leaf(tree):
        return [tree], None
    if tree is None:
        return [], _NONE
    node = _node(tree)
    if node is None:
        return [tree], None
    kind, aux, children = node
    leaves, structs = [], []
    for c in children:
        l, s = flatten(c, is_leaf)
        leaves += l
        structs.append((len(l), s))
    return leaves, (kind, aux, tuple(structs))


def unflatten(struct, leaves: Sequence[Any]):
    """Rebuild the tree of ``struct`` from ``leaves``."""
    if struct is None:
        return leaves[0]
    if struct is _NONE:
        return None
    kind, aux, structs = struct
    out, k = [], 0
    for n, s in structs:
        out.append(unflatten(s, leaves[k:k + n]))
        k += n
    return _build(kind, aux, out)


def map_leaves(fn: Callable, tree):
    """``tree`` with ``fn`` applied to every leaf."""
    leaves, struct = flatten(tree)
    return unflatten(struct, [fn(l) for l in leaves])
