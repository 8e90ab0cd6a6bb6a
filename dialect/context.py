"""Making MLIR contexts for ferrule, and reading the `ad` dialect's IRDL spec."""

from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Tuple

from mlir import ir

IRDL_PATH = Path(__file__).with_name("ad.irdl.mlir")


@lru_cache(maxsize=1)
def ad_op_specs() -> Dict[str, Tuple[List[str], Dict[str, str]]]:
    """Parse ``ad.irdl.mlir``: op name -> (operand segment names, {attr: base}).

    Read with the MLIR parser (the file is an ``irdl.dialect`` module), so the
    IRDL file is the one definition of the dialect's ops.
    """
    specs = {}
    with ir.Context(), ir.Location.unknown():
        module = ir.Module.parse(IRDL_PATH.read_text())
        dialect = module.body.operations[0]
        for op in dialect.regions[0].blocks[0].operations:
            op = op.operation
            name = "ad." + ir.StringAttr(op.attributes["sym_name"]).value
            segments, attrs = [], {}
            bases = {}
            for inner in op.regions[0].blocks[0].operations:
                inner = inner.operation
                if inner.name == "irdl.base" and "base_name" in inner.attributes:
                    bases[inner.results[0]] = ir.StringAttr(inner.attributes["base_name"]).value
                elif inner.name == "irdl.operands":
                    segments = [ir.StringAttr(n).value for n in inner.attributes["names"]]
                elif inner.name == "irdl.attributes":
                    names = [ir.StringAttr(n).value for n in inner.attributes["attributeValueNames"]]
                    attrs = {n: bases.get(v, "") for n, v in zip(names, inner.operands)}
            specs[name] = (segments, attrs)
    return specs


def make_context() -> ir.Context:
    """Return a new MLIR context for ferrule IR.

    The `ad` ops are carried as ops of an unregistered dialect (see the note
    in ad.irdl.mlir on IRDL variadics) and checked by
    :func:`ferrule.dialect.verify.verify_module`, which also rejects every
    other unregistered op, so a misspelt op is an error, not an opaque op the
    passes would silently skip.
    """
    ctx = ir.Context()
    ctx.allow_unregistered_dialects = True
    return ctx
