"""The `ad` dialect: its IRDL definition, verification, and typed builders.

``ad.irdl.mlir`` beside this file defines the ops (names, operand segments,
attribute kinds); :func:`verify_module` checks IR against it and against the
callees' signatures. The ops print in generic form (``"ad.jvp"(...)``).
"""

from .context import ad_op_specs, make_context
from .verify import VerificationError, verify_module
from .builders import jvp, vjp, frule_via_ad, custom_rrule, custom_frule, scan, AD_OPS
from .builders import gather, scatter_add, stop_gradient

__all__ = ["make_context", "ad_op_specs", "verify_module", "VerificationError", "jvp", "vjp", "frule_via_ad",
           "custom_rrule", "custom_frule", "scan", "gather", "scatter_add", "stop_gradient",
           "AD_OPS"]
