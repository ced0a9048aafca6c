"""``GET /screen/indicators``: the big screen's figures per area. Each topic's
figures at street level equal counts made here independently (in SQL, or in
Python with the SLA rule for tickets), totals are the sums of the areas, the
community and grid levels within a parent list exactly its children, the
outlines keep their areas, bad inputs are 4xx with messages, anonymous
readers may read it (the suite runs with anonymous_read) and nothing writes."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter, defaultdict

import pytest
import shapely
from shapely.geometry import shape

from cim.auth.store import create_token
from cim.live.sla import sla_of
from cim.live.store import Ticket
from cim.server.access import READ, ROUTES
from layers.land.checks import CheckOptions, run_check
from tests.conftest import client_of

URL = "/screen/indicators"
TOPICS = ("events", "sensing", "video", "components", "land", "buildings")


@pytest.fixture(scope="module")
def streets(sample, db_url) -> list[str]:
    import psycopg

    with psycopg.connect(db_url) as c:
        return [r[0] for r in c.execute("SELECT street FROM layers.streets ORDER BY street")]


def _get(http, **params):
    r = http.get(URL, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _by_area(answer: dict) -> dict[str, dict]:
    return {f["properties"]["area"]: f["properties"] for f in answer["areas"]["features"]}


def _check_totals(answer: dict, maxima: tuple[str, ...] = ()) -> None:
    """Totals are the sums (or the largest) of the areas' figures."""
    props = [f["properties"] for f in answer["areas"]["features"]]
    for name in answer["labels"]:
        if name.startswith("by_") or name == "online_rate":
            continue
        values = [p[name] for p in props]
        expected = max(values, default=0) if name in maxima else sum(values)
        assert answer["totals"][name] == pytest.approx(expected, abs=0.2), name


def _expect_streets(answer: dict, streets: list[str], figures: dict[str, dict[str, float]]) -> None:
    """Every street is listed (0s where nothing is counted), with the figures expected."""
    got = _by_area(answer)
    assert sorted(got) == streets
    for street in streets:
        for name, counts in figures.items():
            assert got[street][name] == pytest.approx(counts.get(street, 0), rel=1e-6, abs=0.1), (street, name)


def test_the_route_is_for_every_reader_and_nothing_writes():
    screen = {key: rule for key, rule in ROUTES.items() if key[1].startswith("/screen")}
    assert screen == {("GET", URL): READ}


def test_events_per_street_match_the_tickets_and_the_sla_rule(http, in_process, conn, streets):
    answer = _get(http, topic="events", level="street")
    assert (answer["topic"], answer["level"], answer["within"], answer["measure"]) == (
        "events",
        "street",
        None,
        "overdue_tickets",
    )
    assert answer["labels"]["overdue_tickets"] == {
        "zh": "超时工单",
        "en": "Overdue tickets",
        "unit_zh": "件",
        "unit_en": "tickets",
    }
    now = dt.datetime.now(dt.UTC)
    rule = in_process.app.state.hub.sla
    figures: dict[str, Counter] = defaultdict(Counter)
    channels, stages = Counter(), Counter()
    rows = conn.execute(
        """SELECT id, channel, category, created_at, acknowledged_at, contacted_at, resolved_at, street
           FROM live.ticket_records WHERE street IS NOT NULL"""
    ).fetchall()
    assert len(rows) > 1000
    for tid, channel, category, *times, street in rows:
        sla = sla_of(Ticket(tid, channel, category, 0.0, 0.0, *times), now, rule)
        figures["closed" if sla.stage == "closed" else "open_tickets"][street] += 1
        figures["overdue_tickets"][street] += sla.overdue and sla.stage != "closed"
        channels[channel] += 1
        stages[sla.stage] += 1
    assert sum(figures["overdue_tickets"].values()) > 0
    _expect_streets(answer, streets, figures)
    _check_totals(answer)
    assert answer["totals"]["by_channel"] == dict(channels)
    assert answer["totals"]["by_stage"] == {s: stages[s] for s in ("acknowledge", "contact", "resolve", "closed")}
    assert answer["missing"] == []
    # aggregates only: no ticket's id, address or place anywhere in the answer
    text = json.dumps(answer, ensure_ascii=False)
    assert rows[0][0] not in text and "address" not in text


def test_sensing_per_street_with_live_state_and_alarms(http, conn, streets):
    """Offline: the live state (else the layer's status) or an open offline alarm; in alarm: an open alarm
    of another kind. Two alarms are raised here (and cleared after) so that both rules are exercised."""
    rule = conn.execute("SELECT id FROM live.rules ORDER BY id LIMIT 1").fetchone()
    picked = conn.execute(
        """SELECT x.id FROM layers.sensors x WHERE x.street IS NOT NULL AND x.status = 'normal'
           AND NOT EXISTS (SELECT 1 FROM live.alarms a WHERE a.sensor_id = x.id AND a.cleared_at IS NULL)
           ORDER BY x.id LIMIT 2"""
    ).fetchall()
    added = []
    if rule is not None:
        for (sid,), kind in zip(picked, ("above", "offline")):
            added.append(
                conn.execute(
                    """INSERT INTO live.alarms (sensor_id, rule_id, kind, severity, message, raised_at)
                       VALUES (%s, %s, %s, 'warning', 'test', now()) RETURNING id""",
                    (sid, rule[0], kind),
                ).fetchone()[0]
            )
    try:
        answer = _get(http, topic="sensing", level="street")
        rows = conn.execute(
            """SELECT x.street, count(*),
                      count(*) FILTER (WHERE coalesce((SELECT st.status FROM live.sensor_state st
                                                        WHERE st.sensor_id = x.id), x.status) = 'offline'
                                          OR EXISTS (SELECT 1 FROM live.alarms a WHERE a.sensor_id = x.id
                                                     AND a.cleared_at IS NULL AND a.kind = 'offline')),
                      count(*) FILTER (WHERE EXISTS (SELECT 1 FROM live.alarms a WHERE a.sensor_id = x.id
                                                     AND a.cleared_at IS NULL AND a.kind <> 'offline'))
               FROM layers.sensors x WHERE x.street IS NOT NULL GROUP BY 1"""
        ).fetchall()
        categories = dict(
            conn.execute(
                "SELECT coalesce(category_name, category), count(*) FROM layers.sensors "
                "WHERE street IS NOT NULL GROUP BY 1"
            )
        )
    finally:
        if added:
            conn.execute("DELETE FROM live.alarms WHERE id = ANY(%s)", (added,))
    sensors = {s: n for s, n, _, _ in rows}
    offline = {s: o for s, _, o, _ in rows}
    alarms = {s: a for s, _, _, a in rows}
    online = {s: sensors[s] - offline[s] for s in sensors}
    rate = {s: round(100 * online[s] / sensors[s], 1) for s in sensors}
    if added:
        assert sum(alarms.values()) >= 1 and sum(offline.values()) > 0
    _expect_streets(
        answer,
        streets,
        {"sensors": sensors, "offline": offline, "alarms": alarms, "online": online, "online_rate": rate},
    )
    _check_totals(answer)
    total = sum(sensors.values())
    assert answer["totals"]["online_rate"] == round(100 * sum(online.values()) / total, 1)
    assert 0 < answer["totals"]["online_rate"] < 100
    assert answer["totals"]["by_category"] == categories
    assert answer["measure"] == "alarms"


def test_video_per_street(http, conn, streets):
    answer = _get(http, topic="video", level="street")
    rows = conn.execute(
        "SELECT street, count(*), count(*) FILTER (WHERE status = 'online') FROM layers.cameras "
        "WHERE street IS NOT NULL GROUP BY 1"
    ).fetchall()
    _expect_streets(answer, streets, {"cameras": {s: n for s, n, _ in rows}, "online": {s: o for s, _, o in rows}})
    _check_totals(answer)
    assert answer["totals"]["cameras"] == sum(n for _, n, _ in rows) > 0


def test_components_per_street_over_every_component_layer(http, conn, streets):
    names = [
        r[0]
        for r in conn.execute(
            "SELECT c.name FROM components.layers c JOIN cim.layers l ON l.name = c.name ORDER BY c.name"
        )
    ]
    assert "components" in names
    per_street: Counter = Counter()
    majors: Counter = Counter()
    for name in names:
        schema, table = conn.execute(
            "SELECT table_schema, table_name FROM cim.layers WHERE name = %s", (name,)
        ).fetchone()
        for street, major, n in conn.execute(
            f'SELECT street, substr(class_code, 1, 2), count(*) FROM "{schema}"."{table}" '
            "WHERE street IS NOT NULL GROUP BY 1, 2"
        ):
            per_street[street] += n
            majors[major] += n
    answer = _get(http, topic="components", level="street")
    _expect_streets(answer, streets, {"components": per_street})
    _check_totals(answer)
    assert answer["totals"]["by_major"] == dict(majors)
    assert answer["totals"]["components"] == sum(majors.values()) > 0


def test_land_is_0_before_a_check_then_the_latest_checks_verdicts(http, conn, db_url, streets):
    runs = conn.execute("SELECT to_regclass('land.runs') IS NOT NULL").fetchone()[0]
    if not runs or conn.execute("SELECT count(*) FROM land.runs").fetchone()[0] == 0:
        before = _get(http, topic="land", level="street")
        assert before["missing"] == ["land_check"]
        assert all(
            f["properties"][k] == 0
            for f in before["areas"]["features"]
            for k in ("parcels", "compliant", "warning", "violation")
        )
        assert sorted(_by_area(before)) == streets
    import psycopg

    # the sample's first survey, as `cim demo` checks it: the latest check (other modules check layers of their own)
    with psycopg.connect(db_url) as c:
        run_check(c, CheckOptions("parcels", ("buildings",), as_of=dt.date(2026, 11, 1), actor="tests"))
    latest = conn.execute(
        "SELECT parcels_layer FROM land.runs GROUP BY parcels_layer ORDER BY max(id) DESC LIMIT 1"
    ).fetchone()[0]
    rows = conn.execute(
        "SELECT street, verdict, count(*) FROM land.parcels WHERE parcels_layer = %s AND street IS NOT NULL "
        "GROUP BY 1, 2",
        (latest,),
    ).fetchall()
    figures: dict[str, Counter] = defaultdict(Counter)
    for street, verdict, n in rows:
        figures["parcels"][street] += n
        figures[{"合规": "compliant", "预警": "warning", "违规": "violation"}[verdict]][street] += n
    answer = _get(http, topic="land", level="street")
    assert answer["missing"] == [] and answer["measure"] == "violation"
    _expect_streets(answer, streets, figures)
    _check_totals(answer)
    assert answer["totals"]["parcels"] == sum(n for _, _, n in rows) > 0


def test_buildings_per_street_floor_area_on_the_spheroid(http, conn, streets):
    """Floor area: footprint × floors (checked here on the spheroid, the route uses the local
    Gauss-Krüger zone: within 0.1 %); the tallest is the largest height."""
    rows = conn.execute(
        """SELECT street, count(*), sum(ST_Area(geom::geography) * floors), max(height)
           FROM layers.buildings WHERE street IS NOT NULL GROUP BY 1"""
    ).fetchall()
    answer = _get(http, topic="buildings", level="street")
    got = _by_area(answer)
    _expect_streets(answer, streets, {"buildings": {s: n for s, n, _, _ in rows}})
    for street, _, floor_area, tallest in rows:
        assert got[street]["floor_area_m2"] == pytest.approx(floor_area, rel=1e-3)
        assert got[street]["tallest_m"] == pytest.approx(tallest, abs=0.05)
    _check_totals(answer, maxima=("tallest_m",))
    assert answer["totals"]["tallest_m"] == pytest.approx(max(r[3] for r in rows), abs=0.05)


def test_community_level_within_a_street_lists_exactly_its_communities(http, conn):
    street, code = conn.execute(
        "SELECT street, street_code FROM layers.streets ORDER BY street_code LIMIT 1 OFFSET 2"
    ).fetchone()
    rows = conn.execute("SELECT community FROM layers.communities WHERE street = %s", (street,)).fetchall()
    expected = sorted(r[0] for r in rows)
    assert expected
    for within in (street, code):
        answer = _get(http, topic="events", level="community", within=within)
        assert answer["within"] == within
        assert sorted(_by_area(answer)) == expected
        assert {f["properties"]["parent"] for f in answer["areas"]["features"]} == {street}
        assert {f["properties"]["level"] for f in answer["areas"]["features"]} == {"community"}
        _check_totals(answer)
    # the communities' figures are the street's
    whole = _by_area(_get(http, topic="events", level="street"))[street]
    assert answer["totals"]["open_tickets"] == whole["open_tickets"]
    per_community = dict(
        conn.execute(
            "SELECT community, count(*) FROM live.ticket_records WHERE street = %s AND resolved_at IS NULL GROUP BY 1",
            (street,),
        ).fetchall()
    )
    for name, props in _by_area(answer).items():
        assert props["open_tickets"] == per_community.get(name, 0)
    # all communities of the district without within
    everyone = _get(http, topic="video", level="community")
    assert len(everyone["areas"]["features"]) == conn.execute("SELECT count(*) FROM layers.communities").fetchone()[0]


def test_grid_level_within_a_community_lists_exactly_its_grids(http, conn):
    community, code = conn.execute(
        "SELECT community, community_code FROM layers.communities ORDER BY community_code LIMIT 1 OFFSET 5"
    ).fetchone()
    rows = conn.execute("SELECT grid_code FROM layers.grids WHERE community_code = %s", (code,)).fetchall()
    expected = sorted(r[0] for r in rows)
    assert len(expected) > 1
    answer = _get(http, topic="sensing", level="grid", within=code)
    assert sorted(f["properties"]["code"] for f in answer["areas"]["features"]) == expected
    assert {f["properties"]["parent"] for f in answer["areas"]["features"]} == {community}
    per_grid = dict(
        conn.execute("SELECT grid, count(*) FROM layers.sensors WHERE grid = ANY(%s) GROUP BY 1", (expected,))
    )
    for f in answer["areas"]["features"]:
        assert f["properties"]["sensors"] == per_grid.get(f["properties"]["code"], 0)
    by_name = _get(http, topic="sensing", level="grid", within=community)
    assert sorted(f["properties"]["code"] for f in by_name["areas"]["features"]) == expected


def test_district_level_is_one_area_summing_the_streets(http):
    district = _get(http, topic="components", level="district")
    assert len(district["areas"]["features"]) == 1
    props = district["areas"]["features"][0]["properties"]
    assert props["area"] == "福田区" and props["parent"] is None
    assert props["components"] == _get(http, topic="components", level="street")["totals"]["components"]
    streets = _get(http, topic="components", level="street")
    assert {f["properties"]["parent"] for f in streets["areas"]["features"]} == {"福田区"}


@pytest.mark.parametrize(("level", "layer", "key"), [("street", "streets", "street"), ("grid", "grids", "grid_code")])
def test_outlines_keep_their_area_and_sit_in_their_bbox(http, conn, level, layer, key):
    r = http.get(URL, params={"topic": "video", "level": level})
    if level == "street":
        assert len(r.content) < 300_000, len(r.content)
    answer = r.json()
    areas = dict(conn.execute(f"SELECT {key}, ST_Area(geom) FROM layers.{layer}").fetchall())
    features = answer["areas"]["features"]
    assert len(features) == len(areas)
    for f in features:
        geometry = shape(f["geometry"])
        assert geometry.is_valid
        ident = f["properties"]["area"] if level == "street" else f["properties"]["code"]
        assert geometry.area == pytest.approx(areas[ident], rel=0.02), ident
        w, s, e, n = f["properties"]["bbox"]
        gw, gs, ge, gn = geometry.bounds
        assert w - 1e-7 <= gw and s - 1e-7 <= gs and ge <= e + 1e-7 and gn <= n + 1e-7
        lon, lat = f["properties"]["centroid"]
        assert w <= lon <= e and s <= lat <= n
    if level == "grid":  # the whole district's grids: still small enough to draw at once
        assert len(r.content) < 3_000_000
        total = sum(shapely.area(shape(f["geometry"])) for f in features)
        assert total == pytest.approx(sum(areas.values()), rel=0.005)


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"topic": "weather", "level": "street"}, 400, ("weather", "events, sensing")),
        ({"topic": "events", "level": "province"}, 400, ("province", "district, street")),
        ({"level": "street"}, 422, ("topic",)),
        ({"topic": "events", "level": "community", "within": "无此街道"}, 404, ("无此街道", "street")),
        ({"topic": "events", "level": "grid", "within": "无此社区"}, 404, ("无此社区", "community")),
        ({"topic": "events", "level": "street", "within": "福田街道"}, 400, ("within",)),
        ({"topic": "events", "level": "community", "within": "x" * 101}, 422, ("100",)),
    ],
)
def test_bad_inputs_are_4xx_with_messages(http, params, status, words):
    r = http.get(URL, params=params)
    assert r.status_code == status, r.text
    for word in words:
        assert word in r.text


def test_anonymous_reads_and_a_token_without_the_layer_gets_0s_and_missing(in_process, db_url, sample):
    anonymous = client_of(in_process)
    r = anonymous.get(URL, params={"topic": "video", "level": "street"})
    assert r.status_code == 200 and r.json()["totals"]["cameras"] > 0
    assert anonymous.post(URL, params={"topic": "video"}).status_code in (403, 405)
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as c:  # a reader whose token reads the area layers only
        secret = create_token(c, "test-screen-scoped", ["viewer"], "tests", layers=["streets", "grids"]).secret
    scoped = client_of(in_process, secret)
    answer = scoped.get(URL, params={"topic": "video", "level": "street"}).json()
    assert answer["missing"] == ["cameras"]
    assert len(answer["areas"]["features"]) == 10
    assert all(f["properties"]["cameras"] == 0 for f in answer["areas"]["features"])
    assert answer["totals"]["cameras"] == 0
    events = scoped.get(URL, params={"topic": "events", "level": "street"}).json()
    assert events["missing"] == ["tickets"] and events["totals"]["open_tickets"] == 0
    # the communities' outlines are not the token's: no areas, and said so
    communities = scoped.get(URL, params={"topic": "video", "level": "community"}).json()
    assert communities["areas"]["features"] == [] and "communities" in communities["missing"]


def test_every_topic_answers_fast(http):
    """The small sample; the full one (x50 tickets and sensors) is measured in the report."""
    for topic in TOPICS:
        for level in ("street", "grid"):
            _get(http, topic=topic, level=level)  # warm
            t0 = time.perf_counter()
            _get(http, topic=topic, level=level)
            elapsed = time.perf_counter() - t0
            assert elapsed < 1.0, (topic, level, elapsed)


def test_every_reading_role_reads_and_a_device_is_refused(in_process, tokens):
    for role, status in (("viewer", 200), ("land_supervisor", 200), ("operator", 200), ("device", 403)):
        r = client_of(in_process, tokens[role]).get(URL, params={"topic": "land", "level": "street"})
        assert r.status_code == status, (role, r.text[:200])


def test_a_community_name_two_streets_share_needs_its_code(http, conn):
    """Names may repeat across streets: ``within`` then asks for the code (the sample's names may be unique)."""
    shared = conn.execute(
        "SELECT community FROM layers.communities GROUP BY 1 HAVING count(DISTINCT street) > 1 LIMIT 1"
    ).fetchone()
    if shared is None:
        pytest.skip("every community name of the sample is unique")
    r = http.get(URL, params={"topic": "events", "level": "grid", "within": shared[0]})
    assert r.status_code == 400 and "code" in r.json()["detail"]
