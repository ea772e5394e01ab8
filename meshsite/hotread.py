"""One row by a unique key, a few plain columns, without the ORM's query compiler.

Every relay of a forwarded request reads two rows (what it holds of the entry, its route to the
destination), and the station holding the body one more per chunk. Through the ORM each of
these reads costs about half a millisecond of CPU on a small machine, nearly all of it building
the SQL (the compiler runs anew for every query); the query itself takes tens of microseconds.
`row()` builds each statement once per process and runs it through Django's connection (the
same connection, transaction and backend: SQLite or PostgreSQL), so a hop costs what the
database costs.

Only for columns whose stored value is the Python value (text, integers, booleans): a boolean
comes back as a bool on every backend; dates, JSON and other converted types are not read here.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, models

_PLAIN = (models.CharField, models.TextField, models.IntegerField, models.BooleanField)
_statements: dict[tuple[type[models.Model], tuple[str, ...], str], tuple[str, list[bool]]] = {}


def _statement(model: type[models.Model], columns: tuple[str, ...],
               key: str) -> tuple[str, list[bool]]:
    """The SELECT for `columns` of `model` by its unique field `key`, and which columns are
    booleans (ValueError when a field is not one `row` can read)."""
    cached = _statements.get((model, columns, key))
    if cached is not None:
        return cached
    meta, quote = model._meta, connection.ops.quote_name
    key_field = meta.get_field(key)
    if not (key_field.unique or key_field.primary_key):
        raise ValueError(f"{meta.label}.{key} is not unique: row() reads one row by a unique key")
    fields = [meta.get_field(name) for name in columns]
    for field in fields:
        if not isinstance(field, _PLAIN):
            raise ValueError(f"{meta.label}.{field.name} is a {type(field).__name__}: row() "
                             "reads text, integer and boolean columns only")
    # Identifiers from the model's own metadata, quoted by the backend; the value is a parameter.
    sql = (f"SELECT {', '.join(quote(field.column) for field in fields)} "  # noqa: S608
           f"FROM {quote(meta.db_table)} WHERE {quote(key_field.column)} = %s")
    built = (sql, [isinstance(field, models.BooleanField) for field in fields])
    _statements[(model, columns, key)] = built
    return built


def row(model: type[models.Model], columns: tuple[str, ...], key: str,
        value: Any) -> tuple[Any, ...] | None:
    """`columns` of the row of `model` whose unique field `key` is `value`, or None."""
    sql, booleans = _statement(model, columns, key)
    with connection.cursor() as cursor:
        cursor.execute(sql, [value])
        found = cursor.fetchone()
    if found is None:
        return None
    return tuple(bool(item) if boolean and item is not None else item
                 for item, boolean in zip(found, booleans, strict=True))
