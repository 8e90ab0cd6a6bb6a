# The two commands the README opens with:
#   make example   — set up and run ferrule's main job: train a char-LSTM (examples/char_lstm.py)
#   make test      — set up and run the whole test suite (pytest + lit)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ferrule-installed

.PHONY: example test pytest pytest-split lit bench bench-more fuzz fuzz-fast clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,torch,jax,examples]"
	touch $(STAMP)

example: $(STAMP)
	$(BIN)/python examples/char_lstm.py

test: pytest pytest-split lit

pytest: $(STAMP)
	$(BIN)/python -m pytest tests -q

# The derivative and op suites again, with every function split over row
# chunks where it can be (checks the multi-threaded CPU path numerically).
pytest-split: $(STAMP)
	FERRULE_FORCE_SPLIT=1 $(BIN)/python -m pytest -q tests/test_ad.py tests/test_ops.py \
		tests/test_matmul.py tests/test_jit.py

lit: $(STAMP)
	$(BIN)/lit -v tests/lit

# The benchmark suite (bench/suite.py): ferrule against every installed peer,
# each in its own process; a markdown table and a plot under build/bench/.
# Several minutes; `make bench BENCH_ARGS=--quick` for a run under a minute.
bench: $(STAMP)
	$(BIN)/python bench/suite.py $(BENCH_ARGS)

# The per-topic benchmarks (each also runs on its own; see its docstring).
bench-more: $(STAMP)
	$(BIN)/python bench/pointwise_ad.py
	$(BIN)/python bench/cpu_linalg.py
	$(BIN)/python bench/torch_interop.py

# Random programs (docs/fuzzing.md): thousands, a report of every failure;
# fuzz-fast is the profile tests/test_fuzz.py runs in CI.
fuzz: $(STAMP)
	$(BIN)/python tests/fuzz/run.py --count 10000 --jobs 2 --report fuzz-report.txt

fuzz-fast: $(STAMP)
	$(BIN)/python tests/fuzz/run.py --count 100 --jobs 2 --strict

clean:
	rm -rf $(VENV) build *.egg-info tests/lit/Output
