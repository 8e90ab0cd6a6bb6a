"""Pytrees: nested tuples/lists of leaves, flattened and rebuilt.

Pure Python (no MLIR), so the eager tape and the rules test kit use it too.
"""

from typing import Any, List, Sequence, Tuple


def flatten(tree) -> Tuple[List[Any], Any]:
    """Flatten nested tuples/lists into (leaves, structure)."""
    if isinstance(tree, (tuple, list)):
        leaves, structs = [], []
        for t in tree:
            l, s = flatten(t)
            leaves += l
            structs.append((len(l), s))
        return leaves, (type(tree), structs)
    return [tree], None


def unflatten(struct, leaves: Sequence[Any]):
    """The inverse of :func:`flatten`: ``leaves`` rebuilt into ``struct``."""
    if struct is None:
        return leaves[0]
    kind, structs = struct
    out, k = [], 0
    for n, s in structs:
        out.append(unflatten(s, leaves[k:k + n]))
        k += n
    return kind(out)
