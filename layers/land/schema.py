"""Where land supervision keeps its results (schema ``land``).

- ``land.runs``: one row per check (parcels layer, buildings layers, epoch, as-of date, who, counts).
- ``land.parcels``: the latest figures and verdict of every checked parcel (per parcels layer).
- ``land.parcel_buildings``: the buildings on each parcel, with their part inside and outside.
- ``land.findings``: one row per finding (a parcel and a kind, or an unapproved
  building), open or closed, with its follow-up state; kept across checks.
- ``land.finding_history``: every change of a finding (opened, state, closed, reopened), append-only.
- ``land.epochs`` / ``land.epoch_buildings``: the buildings of each survey epoch, to compare epochs.
- ``land.changes``: what changed per parcel between the last two epochs.

A check writes ``parcels``, ``parcel_buildings`` and ``changes`` of its parcels
layer in one transaction: readers see the previous results or the new ones, never a mix.
"""

from __future__ import annotations

import psycopg

from layers.schema import create_schema_once

SCHEMA = "land"

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.runs (
    id               bigserial PRIMARY KEY,
    parcels_layer    text NOT NULL,
    buildings_layers text[] NOT NULL,
    epoch            text,
    previous_epoch   text,
    as_of            date NOT NULL,
    actor            text NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    seconds          double precision,
    options          jsonb NOT NULL DEFAULT '{{}}',
    summary          jsonb NOT NULL DEFAULT '{{}}'
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.parcels (
    parcels_layer       text NOT NULL,
    parcel_id           text NOT NULL,
    fid                 bigint NOT NULL,
    use                 text,
    street              text,
    community           text,
    grid                text,
    area_m2             double precision NOT NULL,
    footprint_area      double precision NOT NULL,
    floor_area          double precision NOT NULL,
    far                 double precision NOT NULL,
    coverage            double precision NOT NULL,
    max_height          double precision,
    building_count      integer NOT NULL,
    approved_far        double precision,
    coverage_limit      double precision,
    height_limit        double precision,
    approval_date       date,
    start_deadline      date,
    completion_deadline date,
    status              text,
    verdict             text NOT NULL,
    changed             boolean NOT NULL DEFAULT false,
    run_id              bigint NOT NULL,
    checked_at          timestamptz NOT NULL DEFAULT now(),
    geom                geometry(MultiPolygon, 4326) NOT NULL,
    PRIMARY KEY (parcels_layer, parcel_id)
);
CREATE INDEX IF NOT EXISTS parcels_geom ON {SCHEMA}.parcels USING gist (geom);
CREATE TABLE IF NOT EXISTS {SCHEMA}.parcel_buildings (
    parcels_layer   text NOT NULL,
    parcel_id       text NOT NULL,
    layer           text NOT NULL,
    fid             bigint NOT NULL,
    key             text NOT NULL,
    name            text,
    height          double precision,
    floors          integer,
    inside_m2       double precision NOT NULL,
    outside_m2      double precision NOT NULL,
    home            boolean NOT NULL,
    geom            geometry(Geometry, 4326)
);
CREATE INDEX IF NOT EXISTS parcel_buildings_parcel ON {SCHEMA}.parcel_buildings (parcels_layer, parcel_id);
CREATE TABLE IF NOT EXISTS {SCHEMA}.findings (
    id              bigserial PRIMARY KEY,
    parcels_layer   text NOT NULL,
    key             text NOT NULL,
    parcel_id       text,
    kind            text NOT NULL,
    severity        text NOT NULL,
    evidence        jsonb NOT NULL,
    state           text NOT NULL DEFAULT '待核查',
    state_by        text,
    state_at        timestamptz,
    note            text,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    closed_at       timestamptz,
    last_run        bigint NOT NULL,
    street          text,
    community       text,
    grid            text,
    geom            geometry(Geometry, 4326),
    UNIQUE (parcels_layer, key)
);
CREATE INDEX IF NOT EXISTS findings_parcel ON {SCHEMA}.findings (parcels_layer, parcel_id);
CREATE TABLE IF NOT EXISTS {SCHEMA}.finding_history (
    id          bigserial PRIMARY KEY,
    finding_id  bigint NOT NULL REFERENCES {SCHEMA}.findings (id) ON DELETE CASCADE,
    event       text NOT NULL,
    state       text NOT NULL,
    actor       text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    note        text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS finding_history_finding ON {SCHEMA}.finding_history (finding_id);
CREATE TABLE IF NOT EXISTS {SCHEMA}.epochs (
    epoch        text PRIMARY KEY,
    layers       text[] NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.epoch_buildings (
    epoch    text NOT NULL REFERENCES {SCHEMA}.epochs (epoch) ON DELETE CASCADE,
    layer    text NOT NULL,
    key      text NOT NULL,
    name     text,
    height   double precision,
    floors   integer,
    area_m2  double precision NOT NULL,
    geom     geometry(Geometry, 4326) NOT NULL
);
CREATE INDEX IF NOT EXISTS epoch_buildings_epoch ON {SCHEMA}.epoch_buildings (epoch);
CREATE INDEX IF NOT EXISTS epoch_buildings_geom ON {SCHEMA}.epoch_buildings USING gist (geom);
CREATE TABLE IF NOT EXISTS {SCHEMA}.changes (
    parcels_layer  text NOT NULL,
    parcel_id      text NOT NULL,
    kind           text NOT NULL,
    layer          text NOT NULL,
    key            text NOT NULL,
    name           text,
    before         jsonb,
    after          jsonb,
    epoch_from     text NOT NULL,
    epoch_to       text NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_parcel ON {SCHEMA}.changes (parcels_layer, parcel_id);
"""

#: the object the DDL makes last: when it is there, so is the rest
_LAST = "epoch_buildings_geom"

_COMMENTS = {
    "runs": "土地批后监管: 每次核查一行",
    "parcels": "土地批后监管: 宗地核查结果 (指标与结论)",
    "parcel_buildings": "土地批后监管: 宗地上的建筑 (地内与越界面积)",
    "findings": "土地批后监管: 问题 (发现、证据、督促状态)",
    "finding_history": "土地批后监管: 问题的督促记录 (只增不改)",
    "epochs": "土地批后监管: 建筑普查期次",
    "epoch_buildings": "土地批后监管: 各期次的建筑",
    "changes": "土地批后监管: 两期之间宗地上的变化 (新增、拆除、加高、扩建)",
}


def ensure_land_schema(conn: psycopg.Connection) -> None:
    """Create what is missing (serialised: two first checks at once do not race)."""
    create_schema_once(conn, SCHEMA, _LAST, _DDL, _COMMENTS)
