"""docs/ops.md is generated from the code (``python -m ferrule.optable``)
and committed: it must equal what the code generates now, so an op or a
scalar rule added without its derivative convention fails here."""

import ferrule.numpy as fnp
from ferrule import optable


def test_committed_op_table_is_current():
    assert optable.DOC.read_text() == optable.generate(), \
        "docs/ops.md is out of date: run python -m ferrule.optable"


def test_every_exported_op_and_scalar_rule_has_a_row():
    text = optable.generate()
    for name in fnp.__all__:
        if callable(getattr(fnp, name)) and not isinstance(getattr(fnp, name), type):
            assert f"| `numpy.{name}` |" in text, name
    for rule in optable.RULES:
        assert f"| `{rule}` |" in text, rule


def test_check_mode_reports_a_stale_file(tmp_path):
    stale = tmp_path / "ops.md"
    stale.write_text("old\n")
    assert optable.main(["--check", "--out", str(stale)]) == 1
    assert optable.main(["--out", str(stale)]) == 0
    assert optable.main(["--check", "--out", str(stale)]) == 0
