"""The projector's two Firestore writes, encoded straight into protobuf.

`WriteBatch.create` and `update` turn every value into a proto-plus message on the way (`_helpers.encode_value`),
which costs about ten times what building the same protobuf directly does, and it was the projector's largest CPU
cost: every event's record carries the event's whole data. `create` and `update` here build the very `Write`
messages the client library builds (tests/projector/test_writes.py compares them byte for byte with
`_helpers.pbs_for_create` / `pbs_for_update`) for the values a job document holds (None, bool, int, float, str,
datetime, lists and dicts of them), and hand anything else to the library.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud import firestore
from google.cloud._helpers import _datetime_to_pb_timestamp
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.types import common, document, write

_Write = write.Write.pb()
_Document = document.Document.pb()
_Precondition = common.Precondition.pb()
_Mask = common.DocumentMask.pb()


class _Unsupported(TypeError):
    """A value this encoder leaves to the client library."""


def _timestamp(at: datetime) -> Any:
    """A `Timestamp` value, nanoseconds kept where the client read some (as `encode_value` does)."""
    if isinstance(at, DatetimeWithNanoseconds):
        return at.timestamp_pb()  # type: ignore[no-untyped-call]
    return _datetime_to_pb_timestamp(at)  # type: ignore[no-untyped-call]


def _encode(value: Any, out: Any) -> None:
    """Set protobuf `Value` `out` to `value`, as `google.cloud.firestore_v1._helpers.encode_value` would."""
    if value is None:
        out.null_value = 0
    elif isinstance(value, bool):  # before int: a bool is an int
        out.boolean_value = value
    elif isinstance(value, int):
        out.integer_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, datetime):
        out.timestamp_value.CopyFrom(_timestamp(value))
    elif isinstance(value, dict):
        out.map_value.SetInParent()
        fields = out.map_value.fields
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Unsupported(key)
            _encode(item, fields[key])
    elif isinstance(value, list | tuple):
        out.array_value.SetInParent()
        values = out.array_value.values
        for item in value:
            _encode(item, values.add())
    else:
        raise _Unsupported(type(value))


def _document(ref: firestore.DocumentReference, fields: Mapping[str, Any]) -> Any:
    doc = _Document(name=ref._document_path)
    for key, value in fields.items():
        _encode(value, doc.fields[key])
    return doc


def _add(batch: firestore.WriteBatch, pb: Any) -> None:
    batch._add_write_pbs([write.Write.wrap(pb)])


def create(batch: firestore.WriteBatch, ref: firestore.DocumentReference, data: Mapping[str, Any]) -> None:
    """`batch.create(ref, data)`: the write fails if the document exists."""
    try:
        doc = _document(ref, data)
    except _Unsupported:
        batch.create(ref, dict(data))
        return
    _add(batch, _Write(update=doc, current_document=_Precondition(exists=False)))


def update(
    batch: firestore.WriteBatch,
    ref: firestore.DocumentReference,
    fields: Mapping[str, Any],
    deleted: Iterable[str],
    last_update_time: datetime,
) -> None:
    """`batch.update` of the top-level `fields` (each set whole) and `deleted` (removed), only if the document is still
    the version of `last_update_time`: the library's `update(ref, replacing(...), option=write_option(...))`."""
    deleted = list(deleted)
    paths = sorted(FieldPath(key) for key in [*fields, *deleted])
    if not paths:
        raise ValueError("Cannot update with an empty document.")
    try:
        doc = _document(ref, fields)
    except _Unsupported:
        updates = {FieldPath(key).to_api_repr(): value for key, value in fields.items()}
        updates.update({FieldPath(key).to_api_repr(): firestore.DELETE_FIELD for key in deleted})
        batch.update(ref, updates, option=firestore.Client.write_option(last_update_time=last_update_time))
        return
    precondition = _Precondition()
    # as the library's option does (proto-plus marshals a datetime to microseconds, nanoseconds or not)
    precondition.update_time.CopyFrom(_datetime_to_pb_timestamp(last_update_time))  # type: ignore[no-untyped-call]
    mask = _Mask(field_paths=[path.to_api_repr() for path in paths])
    _add(batch, _Write(update=doc, update_mask=mask, current_document=precondition))
