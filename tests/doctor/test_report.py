"""The doctor's report: its documented schema, real output validated against it, the table a
person reads, and the exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from modelseal.doctor.report import DoctorReport, Status, new_check, worst_status
from tests.cli_process import run_modelseal

SCHEMA = Path(__file__).parents[2] / "docs" / "schemas" / "doctor-report.schema.json"


def doctor_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA.read_text())
    return schema


def test_the_committed_schema_is_the_report_model() -> None:
    from docs.schemas.generate import render

    assert SCHEMA.read_text() == render(DoctorReport)


def test_real_output_validates_and_reads_back(demo_seal_path: Path) -> None:
    result = run_modelseal("doctor", str(demo_seal_path), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, doctor_schema())
    report = DoctorReport.model_validate(document)
    families = {check.family for check in report.checks}
    assert families == {"gpu", "deps", "limits", "threads"}
    assert report.seal is not None and report.seal.name == "digits"
    assert sum(report.counts.values()) == len(report.checks)
    assert report.passes


def test_the_human_table(demo_seal_path: Path) -> None:
    result = run_modelseal("doctor", str(demo_seal_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("modelseal doctor: seal digits 1.0.0 (")
    assert "nothing failed" in lines[0]
    header = next(line for line in lines if "evidence" in line)
    assert [word for word in ("status", "check", "evidence", "fix") if word in header] == [
        "status", "check", "evidence", "fix",
    ]  # fmt: skip
    rows = {line.split("│")[2].strip(): line.split("│")[1].strip() for line in lines
            if line.startswith("│") and line.split("│")[2].strip()}  # fmt: skip
    assert rows["deps.lock"] == "ok"
    assert rows["limits.memory"] == "ok"


def test_usage_errors_exit_2(demo_seal_path: Path, tmp_path: Path) -> None:
    bad_url = run_modelseal("doctor", str(demo_seal_path), "--url", "ftp://127.0.0.1:8080")
    assert bad_url.returncode == 2
    assert "expected the server's base URL, e.g. http://127.0.0.1:8080" in bad_url.stderr
    no_seal = run_modelseal("doctor", str(tmp_path / "missing.seal"))
    assert no_seal.returncode == 2
    assert "no seal there" in no_seal.stderr
    unknown = run_modelseal("doctor", "--no-such-option")
    assert unknown.returncode == 2


def test_a_failed_check_exits_1(tmp_path: Path) -> None:
    # No seal: nothing can be judged against one, so nothing fails...
    result = run_modelseal("doctor", "--json", extra_env={"MODELSEAL_SOURCE": ""})
    report = DoctorReport.model_validate_json(result.stdout)
    assert (result.returncode == 0) == report.passes
    # ...while a server that does not answer is a failure.
    dead = run_modelseal("doctor", "--json", "--url", "127.0.0.1:9")  # http:// assumed
    assert dead.returncode == 1
    report = DoctorReport.model_validate_json(dead.stdout)
    assert not report.passes
    assert report.url == "http://127.0.0.1:9"


def test_the_worst_status_wins() -> None:
    assert worst_status([Status.OK, Status.SKIPPED, Status.WARN]) is Status.WARN
    assert worst_status([Status.WARN, Status.FAIL, Status.OK]) is Status.FAIL
    assert worst_status([]) is Status.OK
    check = new_check("limits", "shm", "/dev/shm size", Status.WARN, "16 MiB", "--shm-size=1g")
    assert (check.id, check.family, check.where) == ("limits.shm", "limits", "here")
