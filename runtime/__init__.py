"""ferrule.runtime: lowering pipelines per target, code generation, calling.

The CPU path is ``ferrule.runtime.cpu``. Nothing here imports the frontend;
passes are reached only by name through :mod:`ferrule.runtime.pipelines`.
"""
