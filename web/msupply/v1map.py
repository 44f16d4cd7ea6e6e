"""v1 speaks table numbers and field numbers; the engine stores table and field names. This module
holds the one number↔name mapping (a JSON file; the default ships beside it) and converts at the edge."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DEFAULT_MAP = Path(__file__).with_name("v1_tables.json")
UNKNOWN_FIELD = "field_"  # a field number the map does not know is kept under this prefix


@dataclass(frozen=True)
class Table:
    number: int
    name: str
    key_field: int
    names: dict  # field number -> field name
    numbers: dict  # field name -> field number


class V1Map:
    def __init__(self, spec: dict):
        self.by_number: dict[int, Table] = {}
        self.by_name: dict[str, Table] = {}
        for number, table in spec["tables"].items():
            names = {int(k): v for k, v in table["fields"].items()}
            entry = Table(number=int(number), name=table["name"], key_field=int(table.get("key_field", 1)),
                          names=names, numbers={v: k for k, v in names.items()})
            self.by_number[entry.number] = entry
            self.by_name[entry.name] = entry

    def key_fields(self) -> dict[str, int]:
        """KeyFieldID by table name, for the tables whose key field is not 1."""
        return {name: table.key_field for name, table in self.by_name.items() if table.key_field != 1}

    def key_field(self, record_type: str) -> int:
        table = self.by_name.get(record_type)
        return table.key_field if table else 1

    def to_v3(self, record):
        """A pushed v1 record in v3 shape. An unknown table keeps its number for the job to reject."""
        if not isinstance(record, dict):
            return record
        out = {k: record.get(k) for k in ("SyncID", "RecordID", "SyncType", "StoreID", "mergeIDtokeep",
                                           "mergeIDtodelete") if k in record}
        number = record.get("TableNumber")
        table = self.by_number.get(number) if isinstance(number, int) and not isinstance(number, bool) else None
        if table is None:
            out["_v1_unknown_table"] = number
            return out
        out["RecordType"] = table.name
        fields, values = record.get("fields") or [], record.get("values") or []
        if isinstance(fields, list) and isinstance(values, list) and out.get("SyncType") in ("I", "U"):
            out["Data"] = {table.names.get(f, f"{UNKNOWN_FIELD}{f}"): v for f, v in zip(fields, values)}
        return out

    def from_v3(self, record: dict) -> dict:
        """A pulled v3 record in v1 shape: numbered fields with string values."""
        table = self.by_name.get(record["RecordType"])
        data = record.get("data") or {}
        fields, values = [], []
        for name, value in data.items():
            number = table.numbers.get(name) if table else None
            if number is None and name.startswith(UNKNOWN_FIELD) and name[len(UNKNOWN_FIELD):].isdigit():
                number = int(name[len(UNKNOWN_FIELD):])
            if number is None:
                continue  # v1 has no way to name it
            fields.append(number)
            values.append(_text(value))
        return {"SyncID": record["SyncID"], "TableNumber": table.number if table else 0,
                "RecordID": record["RecordID"], "KeyFieldID": table.key_field if table else 1,
                "SyncType": record["SyncType"], "StoreID": record["StoreID"],
                "mergeIDtokeep": record["mergeIDtokeep"], "mergeIDtodelete": record["mergeIDtodelete"],
                "fields": fields, "values": values}


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def load(path: str | None = None) -> V1Map:
    """An installation's map (MSUPPLY_V1_MAP_FILE), or the shipped default when `path` is None."""
    return _load(path or str(DEFAULT_MAP))


@lru_cache(maxsize=8)
def _load(path: str) -> V1Map:
    with open(path, encoding="utf-8") as fh:
        return V1Map(json.load(fh))
