"""The class catalogue as a deployment sees it: the built-in classes
(:mod:`cim.components.catalogue`, GB/T 30428.2) and the user classes stored
in ``components.classes``. A user class never replaces a built-in one."""

from __future__ import annotations

import re

import psycopg

from cim.components.catalogue import CLASSES, CODE_PATTERN, ComponentClass, builtin_class
from layers.components.schema import SCHEMA, ensure_components_schema


def user_classes(conn: psycopg.Connection) -> list[ComponentClass]:
    """The user classes, by code (none when the schema is not there yet)."""
    found = conn.execute(f"SELECT to_regclass('{SCHEMA}.classes') IS NOT NULL").fetchone()
    if not (found and found[0]):
        return []
    rows = conn.execute(
        f"SELECT code, name_zh, name_en, size, colour, department FROM {SCHEMA}.classes ORDER BY code"
    ).fetchall()
    return [
        ComponentClass(
            code=code,
            name_zh=zh,
            name_en=en,
            size=(float(size[0]), float(size[1]), float(size[2])),
            colour=(int(colour[0]), int(colour[1]), int(colour[2])),
            shape="box",
            department=department,
            builtin=False,
        )
        for code, zh, en, size, colour, department in rows
    ]


def catalogue(conn: psycopg.Connection) -> dict[str, ComponentClass]:
    """Every class by code: the built-in ones, then the user ones."""
    out = {c.code: c for c in CLASSES}
    for cls in user_classes(conn):
        out.setdefault(cls.code, cls)
    return out


def save_user_class(conn: psycopg.Connection, cls: ComponentClass, actor: str) -> None:
    """Add or update a user class (in the caller's transaction, if any)."""
    if not re.match(CODE_PATTERN, cls.code):
        raise ValueError(f"class code {cls.code!r} is not four digits")
    if builtin_class(cls.code) is not None:
        raise ValueError(f"class {cls.code} is a built-in class ({builtin_class(cls.code).name_zh}) and stays as it is")  # type: ignore[union-attr]
    ensure_components_schema(conn)
    conn.execute(
        f"""INSERT INTO {SCHEMA}.classes AS c (code, name_zh, name_en, size, colour, department, added_by)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (code) DO UPDATE SET name_zh = excluded.name_zh, name_en = excluded.name_en,
                size = excluded.size, colour = excluded.colour, department = excluded.department,
                added_by = excluded.added_by, added_at = now()""",
        (cls.code, cls.name_zh, cls.name_en, list(cls.size), list(cls.colour), cls.department, actor),
    )
