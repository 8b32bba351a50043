"""Write the JSON schemas of the reports that `--json` prints (run by `make schemas`)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from modelseal.bisect.report import BisectReport
from modelseal.doctor.report import DoctorReport
from modelseal.remote import RemoteVerifyReport
from modelseal.reports import ErrorReport
from modelseal.verify import DiffReport, VerifyReport

HERE = Path(__file__).parent
SCHEMAS: dict[str, type[BaseModel]] = {
    "verify-report.schema.json": VerifyReport,
    "remote-verify-report.schema.json": RemoteVerifyReport,
    "diff-report.schema.json": DiffReport,
    "error-report.schema.json": ErrorReport,
    "doctor-report.schema.json": DoctorReport,
    "bisect-report.schema.json": BisectReport,
}


def render(model: type[BaseModel]) -> str:
    schema = model.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    for name, model in SCHEMAS.items():
        (HERE / name).write_text(render(model))
        print(f"wrote docs/schemas/{name}")
