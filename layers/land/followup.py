"""Follow-up (督促) of findings: states (待核查 / 核查属实 / 已整改 / 误报) with
who, when and a note, kept with their history across checks.

A check's findings are matched with the stored ones by their key (the parcel
and the kind, or the unapproved building): one that still holds keeps its
state (its evidence is renewed); one that no longer holds is closed; one found
again after it was closed is reopened (as 待核查, unless a user had called it
误报: that stays). Every such event is a row of ``land.finding_history``.
A parcel's verdict counts its open findings that are not 误报.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg.types.json import Jsonb

from cim.errors import InputError, NotFoundError
from layers.land.rules import KINDS, State
from layers.land.schema import SCHEMA

MAX_NOTE = 2000
_CLOSED_NOTE = "复核不再成立 · no longer found by the check"
_REOPENED_NOTE = "复核再次发现 · found again by the check"


def record_findings(
    conn: psycopg.Connection,
    layer: str,
    run_id: int,
    found: Sequence[tuple],
    unapproved: Sequence[tuple],
    single: str | None,
    actor: str,
) -> int:
    """Store a check's findings (inside its transaction); returns how many were closed.

    ``found``: (key, parcel_id, kind, evidence) of parcels; ``unapproved``:
    (key, evidence, street, community, grid, point) of buildings on no parcel.
    ``single``: only that parcel was checked (nothing else is opened or closed)."""
    conn.execute(
        """CREATE TEMP TABLE _found (key text PRIMARY KEY, parcel_id text, kind text, severity text, evidence jsonb,
             street text, community text, grid text, geom geometry) ON COMMIT DROP"""
    )
    with conn.cursor().copy("COPY _found (key, parcel_id, kind, severity, evidence) FROM STDIN") as copy:
        for key, pid, kind, evidence in found:
            if single is None or pid == single:
                copy.write_row((key, pid, kind, KINDS[kind][0].value, Jsonb(evidence)))
    conn.execute(
        f"""UPDATE _found f SET street = p.street, community = p.community, grid = p.grid,
                                geom = ST_PointOnSurface(p.geom)
            FROM {SCHEMA}.parcels p WHERE p.parcels_layer = %s AND p.parcel_id = f.parcel_id""",
        (layer,),
    )
    if unapproved:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO _found (key, kind, severity, evidence, street, community, grid, geom) "
                "VALUES (%s, 'unapproved_building', %s, %s, %s, %s, %s, %s)",
                [
                    (f"unapproved|{key}", KINDS["unapproved_building"][0].value, Jsonb(ev), s, c, g, point)
                    for key, ev, s, c, g, point in unapproved
                ],
            )
    scope = "AND parcel_id = %(single)s" if single else ""
    params = {"layer": layer, "run": run_id, "single": single, "actor": actor[:200]}
    # found again after being closed: reopened (a 误报 stays 误报)
    conn.execute(
        f"""WITH again AS (
              UPDATE {SCHEMA}.findings d SET closed_at = NULL,
                     state = CASE WHEN d.state = '误报' THEN d.state ELSE '待核查' END
              FROM _found f WHERE d.parcels_layer = %(layer)s AND d.key = f.key AND d.closed_at IS NOT NULL
              RETURNING d.id, d.state)
            INSERT INTO {SCHEMA}.finding_history (finding_id, event, state, actor, note)
            SELECT id, 'reopened', state, %(actor)s, '{_REOPENED_NOTE}' FROM again""",
        params,
    )
    # still holding: new evidence, same state
    conn.execute(
        f"""UPDATE {SCHEMA}.findings d SET evidence = f.evidence, severity = f.severity, last_run = %(run)s,
                   street = f.street, community = f.community, grid = f.grid, geom = f.geom
            FROM _found f WHERE d.parcels_layer = %(layer)s AND d.key = f.key""",
        params,
    )
    # new
    conn.execute(
        f"""WITH fresh AS (
              INSERT INTO {SCHEMA}.findings (parcels_layer, key, parcel_id, kind, severity, evidence, last_run,
                                             street, community, grid, geom)
              SELECT %(layer)s, f.key, f.parcel_id, f.kind, f.severity, f.evidence, %(run)s, f.street, f.community,
                     f.grid, f.geom
              FROM _found f
              WHERE NOT EXISTS (SELECT 1 FROM {SCHEMA}.findings d WHERE d.parcels_layer = %(layer)s AND d.key = f.key)
              RETURNING id, state)
            INSERT INTO {SCHEMA}.finding_history (finding_id, event, state, actor)
            SELECT id, 'opened', state, %(actor)s FROM fresh""",
        params,
    )
    # no longer holding: closed
    closed = conn.execute(
        f"""WITH gone AS (
              UPDATE {SCHEMA}.findings d SET closed_at = now()
              WHERE d.parcels_layer = %(layer)s AND d.closed_at IS NULL {scope}
                AND (%(single)s::text IS NULL OR d.kind <> 'unapproved_building')
                AND NOT EXISTS (SELECT 1 FROM _found f WHERE f.key = d.key)
              RETURNING d.id, d.state)
            INSERT INTO {SCHEMA}.finding_history (finding_id, event, state, actor, note)
            SELECT id, 'closed', state, %(actor)s, '{_CLOSED_NOTE}' FROM gone""",
        params,
    ).rowcount
    update_verdicts(conn, layer, single)
    return max(closed, 0)


def update_verdicts(conn: psycopg.Connection, layer: str, parcel_id: str | None = None) -> None:
    """Each parcel's verdict from its open findings that are not 误报 (the rule in layers.land.rules'
    docstring: 违规 when one is 违规, else 预警 when one is 预警, else 合规)."""
    conn.execute(
        f"""UPDATE {SCHEMA}.parcels p SET verdict = coalesce(v.verdict, '合规')
            FROM (SELECT p2.parcel_id,
                         CASE WHEN bool_or(d.severity = '违规') THEN '违规'
                              WHEN bool_or(d.severity = '预警') THEN '预警' END AS verdict
                  FROM {SCHEMA}.parcels p2 LEFT JOIN {SCHEMA}.findings d
                    ON d.parcels_layer = p2.parcels_layer AND d.parcel_id = p2.parcel_id
                   AND d.closed_at IS NULL AND d.state <> '误报'
                  WHERE p2.parcels_layer = %(layer)s AND (%(pid)s::text IS NULL OR p2.parcel_id = %(pid)s)
                  GROUP BY p2.parcel_id) v
            WHERE p.parcels_layer = %(layer)s AND p.parcel_id = v.parcel_id""",
        {"layer": layer, "pid": parcel_id},
    )


def set_state(conn: psycopg.Connection, finding_id: int, state: str, actor: str, note: str = "") -> dict:
    """Change a finding's follow-up state; returns the finding (id, parcels_layer, parcel_id, kind, state)."""
    try:
        chosen = State(state)
    except ValueError:
        names = {s.name: s for s in State}
        if state not in names:
            raise InputError(
                "state", f"{state!r} is not a state", hint=f"one of {', '.join(s.value for s in State)}"
            ) from None
        chosen = names[state]
    if len(note) > MAX_NOTE:
        raise InputError("note", f"the note is longer than {MAX_NOTE} characters")
    with conn.transaction():
        row = conn.execute(
            f"""UPDATE {SCHEMA}.findings SET state = %s, state_by = %s, state_at = now(), note = %s
                WHERE id = %s RETURNING id, parcels_layer, parcel_id, kind, state""",
            (chosen.value, actor[:200], note, finding_id),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no finding {finding_id}", hint="GET /land/parcels/{parcel_id} lists its findings")
        conn.execute(
            f"INSERT INTO {SCHEMA}.finding_history (finding_id, event, state, actor, note) "
            "VALUES (%s, 'state', %s, %s, %s)",
            (finding_id, chosen.value, actor[:200], note),
        )
        if row[2] is not None:
            update_verdicts(conn, row[1], row[2])
    return dict(zip(("id", "parcels_layer", "parcel_id", "kind", "state"), row))
