"""pandas (and pyarrow, when it holds the columns) change a tabular model's numerics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from modelseal.environment.diff import diff_environments
from modelseal.environment.fingerprint import capture_environment
from modelseal.environment.record import EnvironmentRecord
from modelseal.environment.risk import Risk, seal_numerics
from modelseal.seal.artifact import open_seal
from modelseal.seal.digests import describe_files
from modelseal.seal.manifest import ENVIRONMENT_FILE, MANIFEST_FILE, seal_manifest
from modelseal.types import ColumnKind, ColumnSpec, TableSpec
from modelseal.verify import diff_sources, verify

NUMBERS = ColumnSpec(name="age", kind=ColumnKind.NUMERIC, dtype="int64", nullable=False)
OBJECT_TEXT = ColumnSpec(name="city", kind=ColumnKind.STRING, dtype="object", nullable=False)
ARROW_TEXT = OBJECT_TEXT.model_copy(update={"dtype": "str", "storage": "pyarrow"})
LOCK = {"pandas": "2.2.3", "pyarrow": "17.0.0", "scikit-learn": "1.9.1", "numpy": "2.4.6"}


@pytest.fixture(scope="module")
def here() -> EnvironmentRecord:
    return capture_environment()


def packed_with(here: EnvironmentRecord, **versions: str) -> EnvironmentRecord:
    return here.model_copy(update={"packages": {**here.packages, **versions}})


def test_pandas_2_to_3_is_critical_for_a_tabular_seal_and_says_why(
    here: EnvironmentRecord,
) -> None:
    packed = packed_with(here, pandas="2.2.3")
    table = TableSpec(columns=(NUMBERS, OBJECT_TEXT))
    lock = {**LOCK, "pandas": "2.2.3", "pyarrow": here.packages["pyarrow"]}
    rows = diff_environments(packed, here, lock, seal_numerics(table))
    (pandas,) = [row for row in rows if row.subject == "pandas"]
    assert (pandas.packed, pandas.current, pandas.risk) == (
        "2.2.3",
        here.packages["pandas"],
        Risk.CRITICAL,
    )
    assert "major version change" in pandas.why
    assert "object up to pandas 2, str from pandas 3" in pandas.why


def test_pyarrow_counts_only_when_it_holds_the_columns(here: EnvironmentRecord) -> None:
    packed = packed_with(here, pyarrow="17.0.0")
    lock = {"pyarrow": "17.0.0"}
    held = diff_environments(packed, here, lock, seal_numerics(TableSpec(columns=(ARROW_TEXT,))))
    (row,) = [row for row in held if row.subject == "pyarrow"]
    assert row.risk is Risk.CRITICAL and "pyarrow string storage" in row.why
    read_only = diff_environments(
        packed, here, lock, seal_numerics(TableSpec(columns=(OBJECT_TEXT,)))
    )
    (row,) = [row for row in read_only if row.subject == "pyarrow"]
    assert row.risk is Risk.WARNING and "version differs from the seal's lock" in row.why


def test_a_tensor_seal_has_no_tabular_numerics() -> None:
    assert seal_numerics(None) == {}
    assert set(seal_numerics(TableSpec(columns=(NUMBERS,)))) == {"pandas"}
    assert set(seal_numerics(TableSpec(columns=(ARROW_TEXT,)))) == {"pandas", "pyarrow"}


def test_verify_and_diff_rank_pandas_from_a_tabular_seals_own_record(
    tabular_seal_path: Path, tmp_path: Path
) -> None:
    """The seal says it was packed with pandas 2.2.3 (re-stamped, as if packed there)."""
    seal_dir = shutil.copytree(tabular_seal_path, tmp_path / "older-pandas.seal")
    record = json.loads((seal_dir / ENVIRONMENT_FILE).read_text())
    record["packages"]["pandas"] = "2.2.3"
    (seal_dir / ENVIRONMENT_FILE).write_text(json.dumps(record))
    manifest = open_seal(tabular_seal_path).manifest
    body = manifest.model_dump(mode="json", exclude={"digest", "files"})
    (seal_dir / MANIFEST_FILE).write_text(
        seal_manifest(**body, files=describe_files(seal_dir)).to_json()
    )
    report = verify(seal_dir)
    (row,) = [row for row in report.environment if row.subject == "pandas"]
    assert (row.packed, row.risk) == ("2.2.3", Risk.CRITICAL)
    assert "str from pandas 3" in row.why
    assert report.environment_risk is Risk.CRITICAL
    (diffed,) = [row for row in diff_sources(str(seal_dir), "-").rows if row.subject == "pandas"]
    assert diffed.risk is Risk.CRITICAL and diffed.why == row.why
