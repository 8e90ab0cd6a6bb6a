// A team function that calls a function: refused by parallel-calls.
module {
  llvm.func @free(!llvm.ptr)
  llvm.func @__ferrule_team_mm0(%arg0: !llvm.ptr, %tid: i64, %nt: i64) {
    llvm.call @free(%arg0) : (!llvm.ptr) -> ()
    llvm.return
  }
}
