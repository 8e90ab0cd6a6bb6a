"""A failed allocation inside compiled code is a ``MemoryError``, not a crash.

Compiled code allocates its temporaries (the memref lowering) and would
write through the NULL it gets when memory runs out, killing the Python
process. Two pieces keep it from doing so, neither of them an edit of
generated IR:

* the CPU pipeline lowers ``memref.alloc``/``dealloc`` to upstream's
  *generic* allocation functions (``finalize-memref-to-llvm
  {use-generic-functions=1}``, :data:`ALLOC`/:data:`FREE`), which the
  runtime defines — not to ``malloc``/``free`` directly;
* :func:`link_guard` links a small module of ferrule's own into the
  function's LLVM module (llvmlite, before optimisation) that defines them:
  :data:`ALLOC` returns ``malloc``'s pointer, or — on NULL for a non-zero
  size — asks the runtime for the current call's ``jmp_buf``
  (:func:`_jmpbuf_for_failure`, a ctypes callback that also records the
  size) and ``longjmp``s to it; and a new exported entry point
  ``__ferrule_entry_<name>(slot, argv)`` that keeps a ``jmp_buf`` on its
  own stack, links it into ``*slot`` (restoring the previous one after:
  calls nest, e.g. a jitted function called from a ``pure_callback``),
  ``_setjmp``s, calls the function with the parameters it reads from
  ``argv`` (one 8-byte slot each: pointers and i64s of the memref
  descriptors), and returns 0 — or 1 after a failed
  allocation.

``slot`` is per thread (:func:`thread_slot`), so row-split chunks running
on a thread pool each unwind to their own call. The caller turns a 1 into
``MemoryError`` (:func:`raise_memory_error`). What the failed call had
allocated before is not freed (its pointers live in the abandoned frames);
the outputs, owned by numpy, are not lost.

Why ``setjmp``/``longjmp`` and not a status threaded through the code: the
allocations sit anywhere in loops that MLIR generated, and unwinding them
to the entry needs either exceptions (which the JIT'd code has no tables
for) or this; frames of compiled code hold no resources to release.
"""

import ctypes
import threading
import llvmlite.binding as llvm

# What finalize-memref-to-llvm{use-generic-functions=1} calls (upstream's names).
ALLOC = "_mlir_memref_to_llvm_alloc"
FREE = "_mlir_memref_to_llvm_free"
JMPBUF_FOR_FAILURE = "__ferrule_oom_jmpbuf"
# glibc's jmp_buf is 200 bytes on x86-64 and 312 on AArch64: room for either.
JMP_BUF_BYTES = 512


def entry_symbol(symbol: str) -> str:
    """The guarded entry point of the compiled function ``symbol``."""
    return symbol.replace("__ferrule_", "__ferrule_entry_", 1)


_tls = threading.local()


def thread_slot() -> int:
    """The address of this thread's ``jmp_buf*`` slot (made once per thread)."""
    slot = getattr(_tls, "slot", None)
    if slot is None:
        slot = _tls.slot = ctypes.c_void_p(0)
        _tls.addr = ctypes.addressof(slot)
        _tls.failed = 0
    return _tls.addr


@ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_int64)
def _jmpbuf_for_failure(size):
    # Called from compiled code (the GIL is taken) when malloc(size) failed.
    _tls.failed = int(size)
    return getattr(_tls, "slot", ctypes.c_void_p(0)).value or 0


def install() -> None:
    """Make :data:`JMPBUF_FOR_FAILURE` resolvable by JIT'd code (idempotent)."""
    if not llvm.address_of_symbol(JMPBUF_FOR_FAILURE):
        llvm.add_symbol(JMPBUF_FOR_FAILURE,
                        ctypes.cast(_jmpbuf_for_failure, ctypes.c_void_p).value)


def raise_memory_error(func_name: str) -> None:
    """The ``MemoryError`` for a call of ``func_name`` whose entry returned 1."""
    size = getattr(_tls, "failed", 0)
    _tls.failed = 0
    raise MemoryError(f"{func_name}: a temporary of {size:,} bytes could not be allocated "
                      f"inside the compiled code (the temporaries it had allocated before "
                      f"are not freed)")


# Changes with guard_text: compiled objects in the disk cache made with
# another guard are not reused.
GUARD_VERSION = "oom-guard-3"

# What the guard module calls from this process (for the disk cache, which
# loads object code without its LLVM IR: codegen.load_object resolves these).
EXTERNALS = ("malloc", "free", "_setjmp", "longjmp", JMPBUF_FOR_FAILURE)


def externals(declared) -> list:
    """The functions a guarded module calls from outside: ``declared`` (its
    own declarations) less the ones the guard defines, plus the guard's."""
    return sorted((set(declared) - {ALLOC, FREE}) | set(EXTERNALS))


def guard_text(symbol: str, param_types) -> str:
    """The guard module for ``define void @symbol(<param_types>)`` (see the
    module docstring): ferrule's own LLVM IR, parsed and linked by
    :func:`link_guard`."""
    bad = [t for t in param_types if t not in ("ptr", "i64")]
    if bad:
        raise ValueError(f"guard_text: @{symbol} takes a {bad[0]} parameter; the entry "
                         f"passes only pointers and i64 (memref descriptors)")
    # argv[k] holds parameter k as 8 bytes: one C-level argument for ctypes
    # instead of one per descriptor field (57 for an LSTM cell's vjp).
    loads = "\n".join(f"  %g{k} = getelementptr i64, ptr %argv, i64 {k}\n"
                      f"  %a{k} = load {t}, ptr %g{k}" for k, t in enumerate(param_types))
    actuals = ", ".join(f"{t} %a{k}" for k, t in enumerate(param_types))
    return f"""
declare ptr @malloc(i64)
declare void @free(ptr)
declare ptr @{JMPBUF_FOR_FAILURE}(i64)
declare i32 @_setjmp(ptr) returns_twice
declare void @longjmp(ptr, i32) noreturn
declare void @{symbol}({", ".join(param_types)})

define ptr @{ALLOC}(i64 %n) {{
  %p = call ptr @malloc(i64 %n)
  %null = icmp eq ptr %p, null
  %some = icmp ne i64 %n, 0
  %failed = and i1 %null, %some
  br i1 %failed, label %fail, label %ok
ok:
  ret ptr %p
fail:
  %jb = call ptr @{JMPBUF_FOR_FAILURE}(i64 %n)
  %nojb = icmp eq ptr %jb, null
  br i1 %nojb, label %ok, label %jump
jump:
  call void @longjmp(ptr %jb, i32 1)
  unreachable
}}

define void @{FREE}(ptr %p) {{
  call void @free(ptr %p)
  ret void
}}

define i32 @{entry_symbol(symbol)}(ptr %slot, ptr %argv) {{
  %jb = alloca [{JMP_BUF_BYTES} x i8], align 16
  %outer = load ptr, ptr %slot
  store ptr %jb, ptr %slot
  %r = call i32 @_setjmp(ptr %jb) returns_twice
  %first = icmp eq i32 %r, 0
  br i1 %first, label %run, label %oom
run:
{loads}
  call void @{symbol}({actuals}) noinline
  store ptr %outer, ptr %slot
  ret i32 0
oom:
  store ptr %outer, ptr %slot
  ret i32 1
}}
"""


def link_guard(mod, symbol: str, context) -> None:
    """Link the guard module for ``symbol`` into the llvmlite module ``mod``.

    Expects: ``mod`` defines ``symbol``; its allocations call :data:`ALLOC`
    and :data:`FREE` (declared, not defined). Guarantees: they are defined
    (and internal, so each compiled function has its own); the entry
    :func:`entry_symbol` ``(symbol)`` is exported; ``symbol`` itself is
    unchanged and still exported."""
    import llvmlite.binding as llvm
    try:
        fn = mod.get_function(symbol)
    except NameError:
        fn = None
    if fn is None or fn.is_declaration:
        raise ValueError(f"link_guard: @{symbol} is not defined in the module")
    types = [str(a.type) for a in fn.arguments]
    mod.link_in(llvm.parse_assembly(guard_text(symbol, types), context=context))
    for name in (ALLOC, FREE):
        mod.get_function(name).linkage = "internal"
