"""Open Inference Protocol v2 request ``parameters`` and the outputs a request asks for."""

from __future__ import annotations

from typing import Any

from modelseal.errors import InputError
from modelseal.serving.codecs.values import quoted
from modelseal.types import Signature


def requested_outputs(
    outputs: object, parameters: dict[str, Any], signature: Signature
) -> tuple[tuple[str, ...], frozenset[str]]:
    """The outputs an infer request asks for, in order (every output when it names none),
    and those to return as binary data."""
    all_binary = _flag(parameters.get("binary_data_output", False), "parameters.binary_data_output")
    if outputs is None or outputs == []:
        names = tuple(signature.output_names)
        return names, frozenset(names) if all_binary else frozenset()
    if not isinstance(outputs, list):
        raise InputError('outputs: must be a list of {"name": ...} objects')
    known = signature.output_names
    chosen: list[str] = []
    binary: set[str] = set()
    for index, item in enumerate(outputs):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InputError(f"outputs[{index}]: must be an object with a string 'name'")
        name: str = item["name"]
        field = f"outputs[{index}] ({name!r})"
        if name not in known:
            raise InputError(
                f"{field}: no output named {name!r}; the signature has: {quoted(known)}"
            )
        if name in chosen:
            raise InputError(f"{field}: asked for twice")
        output_parameters = parameters_of(item.get("parameters"), f"{field} parameters")
        if output_parameters.get("classification"):
            raise InputError(f"{field}: the classification extension is not supported")
        if _flag(
            output_parameters.get("binary_data", all_binary), f"{field} parameters.binary_data"
        ):
            binary.add(name)
        chosen.append(name)
    return tuple(chosen), frozenset(binary)


def parameters_of(value: object, field: str) -> dict[str, Any]:
    """A ``parameters`` object (empty when absent); ``InputError`` when it is not one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"{field}: must be a JSON object")
    return value


def _flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{field}: must be true or false")
    return value
