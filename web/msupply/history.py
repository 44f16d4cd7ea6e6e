"""Patient dispensing history (v4 `patient_history`) read from the stored mSupply records: the
patient's transactions (`transact`), their lines (`trans_line` → `item_line` → `item`), the store,
the clinician and the medicine administrator. One query; rows are grouped per transaction."""
from __future__ import annotations

import math

from sqlalchemy import text
from sqlalchemy.orm import Session

from models.msupply import NAMESPACE

_HISTORY = f"""
SELECT t.record_key AS t_key, t.data AS t_data, st.data AS store_data, cl.data AS clinician_data,
       substr(tl.record_key, length('trans_line:') + 1) AS line_id, tl.data AS line_data,
       it.data AS item_data, ma.data AS admin_data
  FROM records t
  LEFT JOIN records st ON st.tenant_id = t.tenant_id AND st.namespace = t.namespace AND NOT st.deleted
                      AND st.record_key = 'store:' || (t.data ->> 'store_ID')
  LEFT JOIN records cl ON cl.tenant_id = t.tenant_id AND cl.namespace = t.namespace AND NOT cl.deleted
                      AND cl.record_key = 'clinician:' || (t.data ->> 'clinician_ID')
  LEFT JOIN records tl ON tl.tenant_id = t.tenant_id AND tl.namespace = t.namespace AND NOT tl.deleted
                      AND tl.record_type = 'trans_line'
                      AND tl.data ->> 'transaction_ID' = substr(t.record_key, length('transact:') + 1)
  LEFT JOIN records il ON il.tenant_id = t.tenant_id AND il.namespace = t.namespace
                      AND il.record_key = 'item_line:' || (tl.data ->> 'item_line_ID')
  LEFT JOIN records it ON it.tenant_id = t.tenant_id AND it.namespace = t.namespace
                      AND it.record_key = 'item:' || COALESCE(NULLIF(tl.data ->> 'item_ID', ''), il.data ->> 'item_ID')
  LEFT JOIN records ma ON ma.tenant_id = t.tenant_id AND ma.namespace = t.namespace AND NOT ma.deleted
                      AND ma.record_key = 'medicine_administrator:' || (tl.data ->> 'medicine_administrator_ID')
 WHERE t.tenant_id = :tenant AND t.namespace = '{NAMESPACE}' AND t.record_type = 'transact' AND NOT t.deleted
   AND t.data ->> 'name_ID' = :name_id AND COALESCE(t.data ->> 'type', 'ci') = 'ci'
 ORDER BY t.data ->> 'confirm_date', t.record_key, tl.data ->> 'line_number', tl.record_key
"""


def _number(value) -> float:
    """A stored quantity as a number; text that is no finite number (or too long to be one) is 0."""
    if isinstance(value, str) and len(value) > 64:
        return 0
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    if not math.isfinite(number):
        return 0
    return int(number) if number.is_integer() else number


def _bool(value) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"true", "1", "yes"}


def _person(data: dict | None) -> dict | None:
    if not data:
        return None
    return {"first_name": data.get("first_name") or "", "last_name": data.get("last_name") or ""}


def patient_history(session: Session, tenant_id: str, name_id: str) -> list[dict]:
    out: list[dict] = []
    current_key = None
    for row in session.execute(text(_HISTORY), {"tenant": tenant_id, "name_id": name_id}):
        if row.t_key != current_key:
            current_key = row.t_key
            t = row.t_data or {}
            entry = {"confirm_date": str(t.get("confirm_date") or "")[:10],
                     "store": {"name": (row.store_data or {}).get("name", "")}}
            clinician = _person(row.clinician_data)
            if clinician:
                entry["clinician"] = clinician
            entry["transLines"] = []
            out.append(entry)
        if row.line_id is None:
            continue
        line, item = row.line_data or {}, row.item_data or {}
        trans_line = {"ID": row.line_id, "item_name": line.get("item_name") or item.get("item_name") or "",
                      "quantity": _number(line.get("quantity")),
                      "itemLine": {"item": {"code": item.get("code") or "", "doses": int(_number(item.get("doses"))),
                                            "is_vaccine": _bool(item.get("is_vaccine"))}}}
        administrator = _person(row.admin_data)
        if administrator:
            trans_line["medicineAdministrator"] = administrator
        out[-1]["transLines"].append(trans_line)
    return out
