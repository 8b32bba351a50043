"""Triage: ``modelseal doctor``, the on-call checklist as one command.

Check families, one module each: ``gpu``, ``deps``, ``limits`` (cgroup v1 and v2),
``threads``, ``server`` (``--url``) and ``container`` (``--container``). Each check says
ok / warn / fail / skipped with its evidence and its fix (``report``); ``runner`` decides
which run, ``view`` renders the table a person reads.
"""

from modelseal.doctor.report import Check, DoctorReport, SealRef, Status
from modelseal.doctor.runner import DoctorOptions, run_doctor

__all__ = ["Check", "DoctorOptions", "DoctorReport", "SealRef", "Status", "run_doctor"]
