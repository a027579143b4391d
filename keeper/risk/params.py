"""The fitted-parameters document ``keeper fit`` writes and ``policy.model_params`` reads (pure: dicts
in and out; the callers do the file I/O).

    {"format": 1, "law": {"kind": "tail", "nu": ..., ...}, "fitted_on": "...", "window": [from, to],
     "files": [...], "command": "keeper fit ..."}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keeper.risk.laws import Law, law_from_dict

PARAMS_FORMAT = 1


def params_document(law: Law, meta: Mapping[str, Any]) -> dict[str, Any]:
    return {"format": PARAMS_FORMAT, "law": law.to_dict(), **meta}


def law_from_document(doc: Any) -> tuple[Law, dict[str, Any]]:
    """(law, the other keys); ValueError saying what is wrong."""
    if not isinstance(doc, dict) or doc.get("format") != PARAMS_FORMAT or not isinstance(doc.get("law"), dict):
        raise ValueError(f"not a `keeper fit` parameters document (format {PARAMS_FORMAT} with a law)")
    try:
        law = law_from_dict(doc["law"])
    except TypeError as e:
        raise ValueError(str(e)) from None
    return law, {k: v for k, v in doc.items() if k not in ("law", "format")}
