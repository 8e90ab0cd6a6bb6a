// The `ad` dialect: the operations automatic differentiation adds to
// upstream MLIR. Read at run time by ferrule.dialect (context.py) as the
// spec that dialect/verify.py checks ad ops against.
//
// IRDL cannot declare traits, so no `ad` op can hold a region whose body
// verifies (there is no terminator trait); every op refers to the function
// it differentiates by symbol instead.
//
// A second IRDL limit (LLVM 22.1, checked): a constraint variable binds to
// the first type it matches, also across the elements of one variadic, so
// `variadic %t` accepts only operands of ONE type. AD ops mix shapes and
// dtypes, so this file is used as the single source of truth for op names,
// operand segments and attribute kinds, and ferrule.dialect.verify checks
// ops against it (plus types against the callee's signature) in Python.
irdl.dialect @ad {
  // Forward mode: outputs and output tangents of @callee at `primals` along
  // `tangents`. With num_directions = K, there are K tangents per primal
  // (direction-major: all inputs of direction 0, then direction 1, ...) and
  // K tangents per output, in the same order.
  irdl.operation @jvp {
    %t = irdl.any
    %sym = irdl.base "#builtin.symbol_ref"
    %k = irdl.base "#builtin.integer"
    irdl.operands(primals: variadic %t, tangents: variadic %t)
    irdl.results(outs: variadic %t)
    irdl.attributes { "callee" = %sym, "num_directions" = %k }
  }

  // Reverse mode: outputs of @callee at `primals`, then the cotangent of each
  // primal for the output cotangents `cotangents`.
  irdl.operation @vjp {
    %t = irdl.any
    %sym = irdl.base "#builtin.symbol_ref"
    irdl.operands(primals: variadic %t, cotangents: variadic %t)
    irdl.results(outs: variadic %t)
    irdl.attributes { "callee" = %sym }
  }

  // The rules API's frule_via_ad: the AD running a rule is asked for the
  // forward derivative of @callee. Same operand/result layout as ad.jvp.
  // Calls on the same callee and primals are merged by the forward pass into
  // one multi-direction tangent region.
  irdl.operation @frule_via_ad {
    %t = irdl.any
    %sym = irdl.base "#builtin.symbol_ref"
    %k = irdl.base "#builtin.integer"
    irdl.operands(primals: variadic %t, tangents: variadic %t)
    irdl.results(outs: variadic %t)
    irdl.attributes { "callee" = %sym, "num_directions" = %k }
  }

  // A call of @callee whose reverse rule is the user-written @pullback.
  // @pullback takes (residuals..., output cotangents...) and returns one
  // cotangent per argument; @forward returns (outputs..., residuals...).
  irdl.operation @custom_rrule {
    %t = irdl.any
    %callee = irdl.base "#builtin.symbol_ref"
    %fwd = irdl.base "#builtin.symbol_ref"
    %pb = irdl.base "#builtin.symbol_ref"
    %n = irdl.base "#builtin.integer"
    %name = irdl.base "#builtin.string"
    irdl.operands(args: variadic %t)
    irdl.results(outs: variadic %t)
    irdl.attributes { "callee" = %callee, "forward" = %fwd, "pullback" = %pb, "num_residuals" = %n, "rule" = %name }
  }

  // A call of @callee whose forward rule is the user-written @frule:
  // @frule takes (args..., one tangent per arg) and returns (outputs...,
  // one tangent per output). Used by forward mode; reverse mode
  // differentiates @callee itself.
  irdl.operation @custom_frule {
    %t = irdl.any
    %callee = irdl.base "#builtin.symbol_ref"
    %fr = irdl.base "#builtin.symbol_ref"
    %name = irdl.base "#builtin.string"
    irdl.operands(args: variadic %t)
    irdl.results(outs: variadic %t)
    irdl.attributes { "callee" = %callee, "frule" = %fr, "rule" = %name }
  }

  // A loop over a sequence (ferrule.scan): @callee is the step, called
  // `length` times as
  //   (carries', y_t...) = @callee(carries..., x_t..., consts...)
  // where x_t is slice t of each xs operand along its leading dimension and
  // consts are passed unchanged to every step. Results: the final carries,
  // then each y stacked along a new leading dimension of size `length`.
  // With reverse = 1 the steps run from t = length-1 down to 0 (each y_t
  // still lands at index t). The step is one function: the IR does not
  // grow with `length`. The AD passes differentiate it by rule (a scan of
  // the step's JVP; a forward scan stacking residuals and a backward scan
  // over them); lower-scan turns it into an scf.for calling @callee.
  // remat = 1 asks reverse mode to keep only what enters each step (the
  // carries) and to recompute the step in the backward sweep (used by
  // scan(checkpoint=k) for the loop over segments).
  irdl.operation @scan {
    %t = irdl.any
    %sym = irdl.base "#builtin.symbol_ref"
    %i = irdl.base "#builtin.integer"
    irdl.operands(init: variadic %t, xs: variadic %t, consts: variadic %t)
    irdl.results(outs: variadic %t)
    irdl.attributes { "callee" = %sym, "length" = %i, "reverse" = %i, "remat" = %i }
  }

  // A gather along `axis` (numpy's take): for a table of shape
  // P + [n] + Q (P has `axis` dims) and integer indices (i32 or i64) of
  // shape J, the result has shape P + J + Q and
  //   out[p, j, q] = table[p, idx[j], q]
  // where an index i is read as i + n when negative, then clamped to
  // [0, n - 1] (compiled code cannot raise; as JAX, out-of-range indices
  // clamp). Its derivative in the table is a gather of the tangent (forward)
  // and an ad.scatter_add of the cotangent (reverse); the indices carry
  // none. lower-gather (after lower-ad) turns it into a linalg.generic
  // reading the table with tensor.extract.
  irdl.operation @gather {
    %t = irdl.any
    %i = irdl.base "#builtin.integer"
    irdl.operands(table: %t, indices: %t)
    irdl.results(out: %t)
    irdl.attributes { "axis" = %i }
  }

  // The transpose of ad.gather: `dest` plus the updates added at the
  // gathered positions, repeated indices accumulating:
  //   out = dest;  out[p, idx[j], q] += updates[p, j, q]
  // (indices wrapped and clamped as ad.gather's). Linear in (dest,
  // updates): its tangent is a scatter_add of the tangents, its reverse
  // rule gives dest the cotangent and updates a gather of it, so second
  // order works. lower-gather turns it into an scf.for over the indices.
  irdl.operation @scatter_add {
    %t = irdl.any
    %i = irdl.base "#builtin.integer"
    irdl.operands(dest: %t, indices: %t, updates: %t)
    irdl.results(out: %t)
    irdl.attributes { "axis" = %i }
  }

  // The identity with a zero derivative (ferrule.stop_gradient): forward
  // mode gives it no tangent, reverse mode no cotangent, at any order;
  // lower-ad replaces it by its operand once differentiation is done.
  irdl.operation @stop_gradient {
    %t = irdl.any
    irdl.operands(x: %t)
    irdl.results(out: %t)
  }

  // A call of host Python from compiled code (ferrule.pure_callback):
  // `callback` is the number the runtime registered the Python function
  // under in this process (ferrule.runtime.cpu.callbacks), `name` the
  // function's name for messages. Pure: the same arguments give the same
  // results, so an unused call may be dropped and equal calls merged. Not
  // differentiable: the AD passes refuse it (wrap it in a @rules.primitive
  // with a rule). lower-ad turns it into a call of the external function
  // @__ferrule_callback_<callback> on tensors, lower-callbacks into one on
  // buffers, which the CPU runtime binds to the Python function.
  irdl.operation @pure_callback {
    %t = irdl.any
    %i = irdl.base "#builtin.integer"
    %s = irdl.base "#builtin.string"
    irdl.operands(args: variadic %t)
    irdl.results(outs: variadic %t)
    irdl.attributes { "callback" = %i, "name" = %s }
  }
}
