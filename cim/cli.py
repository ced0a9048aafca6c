"""The ``cim`` command line (typer + rich).

Errors the project raises on purpose (:class:`cim.errors.CimError`) are
printed as one line on stderr with what to do next, and exit non-zero.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from cim.config import get_settings
from cim.crs import Datum
from cim.errors import CimError
from cim.geoid import VerticalDatum
from cim.samples import Scale

if TYPE_CHECKING:
    from import_scripts.contract import Importer

app = typer.Typer(
    help="CIM twin: import city data into 3D Tiles and PostGIS layers, and serve the viewer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The PostgreSQL/PostGIS database (local cluster or CIM_DATABASE_URL).", no_args_is_help=True)
import_app = typer.Typer(help="Import a source into a layer and/or a tileset.", no_args_is_help=True)
samples_app = typer.Typer(help="Generate sample data.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
app.add_typer(samples_app, name="samples")
users_app = typer.Typer(help="Users and their roles (viewer, land_supervisor, operator, admin).", no_args_is_help=True)
tokens_app = typer.Typer(
    help="API tokens for services, devices and dashboards (Authorization: Bearer).", no_args_is_help=True
)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
devices_app = typer.Typer(
    help="Devices' MQTT users on the local broker (a device publishes only its own sensor's readings).",
    no_args_is_help=True,
)
app.add_typer(devices_app, name="devices")

console = Console()
err_console = Console(stderr=True)


def friendly_errors(fn: Callable) -> Callable:
    """Print a CimError as one line and exit with its code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CimError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except psycopg.Error as exc:  # a database failure no importer anticipated: still one line
            primary = exc.diag.message_primary if exc.diag and exc.diag.message_primary else str(exc).strip()
            err_console.print(
                f"[bold red]error:[/] database: {primary.splitlines()[0] if primary else exc!r} "
                "(check `cim db status`)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(3) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: nothing was changed by the unfinished step")
            raise typer.Exit(130) from None

    return wrapper


# --- db ------------------------------------------------------------------------------


@db_app.command("up")
@friendly_errors
def db_up() -> None:
    """Start the local PostGIS cluster (initialising it the first time)."""
    settings = get_settings()
    if not settings.uses_local_cluster:
        console.print("CIM_DATABASE_URL is set: using that server, no local cluster is started.")
        return
    from cim.cluster import LocalCluster

    cluster = LocalCluster(settings)
    with console.status("starting the local PostGIS cluster..."):
        cluster.up()
    console.print(f"local PostGIS cluster running on 127.0.0.1:{cluster.port()} ({cluster.home})")


@db_app.command("down")
@friendly_errors
def db_down() -> None:
    """Stop the local PostGIS cluster."""
    settings = get_settings()
    if not settings.uses_local_cluster:
        console.print("CIM_DATABASE_URL is set: the project never stops that server.")
        return
    from cim.cluster import LocalCluster

    stopped = LocalCluster(settings).down()
    console.print("stopped" if stopped else "was not running")


@db_app.command("status")
@friendly_errors
def db_status() -> None:
    """Say whether the database is up, and its PostgreSQL and PostGIS versions."""
    from cim.db import connect, server_versions

    settings = get_settings()
    if settings.uses_local_cluster:
        from cim.cluster import LocalCluster

        state = LocalCluster(settings).status()
        if not state.running:
            console.print(
                f"local cluster: [yellow]not running[/] ({state.data_dir}"
                f"{'' if state.initialised else ', not initialised'}); start it with: cim db up"
            )
            raise typer.Exit(1)
        console.print(f"local cluster: [green]running[/] on 127.0.0.1:{state.port} ({state.data_dir})")
    else:
        console.print("server: CIM_DATABASE_URL")
    with connect(settings) as conn:
        v = server_versions(conn)
    console.print(f"PostgreSQL {v.postgresql}")
    console.print(f"PostGIS {v.postgis}" if v.postgis else "PostGIS [red]not installed[/] in this database")


@db_app.command("url")
@friendly_errors
def db_url(
    read_only: bool = typer.Option(
        False, "--read-only", help="the read-only role's URL (cim_reader: layers and catalogue), for QGIS"
    ),
) -> None:
    """Print the connection URL (for psql, QGIS, TiPg)."""
    from cim.db import database_url, reader_url

    print(reader_url(get_settings()) if read_only else database_url(get_settings()))


layers_app = typer.Typer(
    help="The layers in the catalogue, and which of their columns they serve.", invoke_without_command=True
)
app.add_typer(layers_app, name="layers")


@layers_app.callback()
@friendly_errors
def layers_list(ctx: typer.Context) -> None:
    """List the layers in the catalogue (`cim layers columns NAME`: a layer's columns)."""
    if ctx.invoked_subcommand is not None:
        return
    from cim.db import connect
    from layers.catalogue import list_layers

    with connect(get_settings()) as conn:
        found = list_layers(conn)
    t = Table("name", "title", "type", "features", "columns served", "version", "imported", title="layers")
    for layer in found:
        t.add_row(
            layer.name,
            layer.title,
            layer.geometry_type,
            f"{layer.feature_count:,}",
            f"{len(layer.served_columns)} of {len(layer.columns)}",
            str(layer.version),
            f"{layer.imported_at:%Y-%m-%d %H:%M}" if layer.imported_at else "",
        )
    console.print(t if found else "no layers yet: `cim import layer SRC --name NAME` adds one")


def _names(text: str | None) -> tuple[str, ...]:
    """``a, b,,c`` -> (a, b, c)."""
    return tuple(n.strip() for n in (text or "").split(",") if n.strip())


def _column_list(text: str | None, current: tuple[str, ...] | None, every: list[str]) -> list[str] | None:
    """``a,b`` (exactly these), ``+c`` / ``-a`` (add to / take from the current list), ``all``; None: unchanged."""
    if text is None:
        return None
    text = text.strip()
    if text.lower() == "all":
        return list(every)
    names = _names(text)
    if not names or not all(n[0] in "+-" for n in names):
        return [n.lstrip("+") for n in names]
    result = list(every if current is None else current)
    for n in names:
        column = n[1:]
        if n[0] == "+" and column not in result:
            result.append(column)
        elif n[0] == "-" and column in result:
            result.remove(column)
    return result


@layers_app.command("columns")
@friendly_errors
def layers_columns(
    name: str = typer.Argument(..., help="the layer"),
    serve: str | None = typer.Option(
        None,
        "--serve",
        help="the allow-list: the columns the layer serves (`a,b`, `+c` to add, `-a` to take away, `all`)",
    ),
    sensitive: str | None = typer.Option(
        None,
        "--sensitive",
        help="the columns only operators and admins see, beyond those sensitive by name (`a,b`, `+c`, `-a`)",
    ),
) -> None:
    """Show a layer's columns: served or not, sensitive or not; change that with --serve / --sensitive."""
    from cim.auth.store import ensure_auth_schema, record
    from cim.db import connect
    from layers.catalogue import get_layer, set_column_policy
    from layers.sensitive import is_sensitive

    with connect(get_settings()) as conn:
        layer = get_layer(conn, name)
        if serve is not None or sensitive is not None:
            served = _column_list(serve, layer.served, list(layer.columns))
            marked = _column_list(sensitive, layer.sensitive, list(layer.columns))
            with conn.transaction():
                layer = set_column_policy(conn, name, served, marked)
                ensure_auth_schema(conn)
                record(conn, _cli_actor(), "layer.columns", name, detail={"served": served, "sensitive": marked})
    served_now = layer.served_columns
    t = Table("column", "type", "served", "sensitive", title=f"{layer.name}: {layer.title}")
    for column, pgtype in layer.columns.items():
        why = "marked" if column in layer.sensitive else "by name" if is_sensitive(column) else ""
        t.add_row(column, pgtype, "yes" if column in served_now else "no", why)
    console.print(t)
    console.print(
        f"{len(served_now)} of {len(layer.columns)} columns served; sensitive ones only to operators and admins"
    )


# --- users and tokens -------------------------------------------------------------------


def _cli_actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name (a container): still an actor
        return "cli"


def _auth_conn():
    from cim.auth.store import ensure_auth_schema
    from cim.db import connect

    conn = connect(get_settings(), autocommit=True)
    ensure_auth_schema(conn)
    return conn


def _new_password(name: str) -> str:
    return typer.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True)


@users_app.command("add")
@friendly_errors
def users_add(
    name: str = typer.Argument(..., help="sign-in name: lower-case letters, digits, '.', '_', '-'"),
    role: str = typer.Option(
        ..., "--role", help="one or more roles, comma-separated: viewer, land_supervisor, operator, admin, device"
    ),
    display_name: str = typer.Option("", help="the name shown to people (e.g. 张三)"),
) -> None:
    """Add a user; the password is asked for (twice) and stored as an Argon2id hash."""
    from cim.auth.store import add_user, parse_roles, record

    roles = parse_roles(role)
    password = _new_password(name)
    with _auth_conn() as conn:
        add_user(conn, name, password, roles, display_name)
        record(conn, _cli_actor(), "user.add", name, detail={"roles": roles})
    console.print(f"user {name!r} added with roles {', '.join(roles)}")


@users_app.command("list")
@friendly_errors
def users_list() -> None:
    """List the users and their roles."""
    from cim.auth.store import list_users

    with _auth_conn() as conn:
        found = list_users(conn)
    t = Table("name", "display name", "roles", "disabled", "created", title="users")
    for u in found:
        t.add_row(u.name, u.display_name, ", ".join(u.roles), "yes" if u.disabled else "", f"{u.created_at:%Y-%m-%d}")
    console.print(t if found else "no users yet: `cim users add NAME --role admin` adds one")


@users_app.command("passwd")
@friendly_errors
def users_passwd(name: str = typer.Argument(..., help="the user")) -> None:
    """Set a user's password (asked for twice)."""
    from cim.auth.store import record, set_password

    password = _new_password(name)
    with _auth_conn() as conn:
        set_password(conn, name, password)
        record(conn, _cli_actor(), "user.passwd", name)
    console.print(f"password of {name!r} changed")


@users_app.command("disable")
@friendly_errors
def users_disable(
    name: str = typer.Argument(..., help="the user"),
    enable: bool = typer.Option(False, "--enable", help="enable the user again instead"),
) -> None:
    """Disable a user (their sessions stop at once); --enable undoes it."""
    from cim.auth.store import record, set_disabled

    with _auth_conn() as conn:
        set_disabled(conn, name, not enable)
        record(conn, _cli_actor(), "user.enable" if enable else "user.disable", name)
    console.print(f"user {name!r} {'enabled' if enable else 'disabled'}")


@tokens_app.command("create")
@friendly_errors
def tokens_create(
    name: str = typer.Option(..., "--name", help="what the token is for (e.g. dashboard, gateway-01)"),
    role: str = typer.Option(..., "--role", help="roles, comma-separated (a sensor gateway: device)"),
    layers: str | None = typer.Option(None, help="comma-separated layers it may read (default: every layer)"),
) -> None:
    """Create an API token and print it once (only its hash is kept)."""
    from cim.auth.store import create_token, record

    layer_list = list(_names(layers)) if layers else None
    with _auth_conn() as conn:
        token = create_token(conn, name, role.split(","), _cli_actor(), layer_list)
        record(
            conn,
            _cli_actor(),
            "token.create",
            f"{token.id}:{name}",
            detail={"roles": token.roles, "layers": token.layers},
        )
    console.print(f"token {token.id} ({name}, roles {', '.join(token.roles)}); it is shown only now, keep it:")
    print(token.secret)


@tokens_app.command("list")
@friendly_errors
def tokens_list() -> None:
    """List the tokens (never their secrets)."""
    from cim.auth.store import list_tokens

    with _auth_conn() as conn:
        found = list_tokens(conn)
    t = Table("id", "name", "roles", "layers", "created", "last used", "revoked", title="tokens")
    for k in found:
        t.add_row(
            str(k.id),
            k.name,
            ", ".join(k.roles),
            ", ".join(k.layers or ["all"]),
            f"{k.created_at:%Y-%m-%d}",
            f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "",
            f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "",
        )
    console.print(t if found else "no tokens yet: `cim tokens create --name N --role R` makes one")


@tokens_app.command("revoke")
@friendly_errors
def tokens_revoke(token_id: int = typer.Argument(..., help="the token's id (cim tokens list)")) -> None:
    """Revoke a token: it stops working at once."""
    from cim.auth.store import record, revoke_token

    with _auth_conn() as conn:
        revoke_token(conn, token_id)
        record(conn, _cli_actor(), "token.revoke", str(token_id))
    console.print(f"token {token_id} revoked")


# --- devices (the local broker's MQTT users) -------------------------------------------


def _local_broker_only() -> Path:
    settings = get_settings()
    if settings.mqtt_url:
        console.print(
            "[yellow]CIM_MQTT_URL is set: devices are users of that broker, managed there; "
            "this changes only the local mosquitto's password file[/]"
        )
    return settings.data_dir


@devices_app.command("add")
@friendly_errors
def devices_add(sensor_id: str = typer.Argument(..., help="the sensor id: the device's MQTT user name")) -> None:
    """Give a device an MQTT user and a new password (printed once; adding it again replaces it)."""
    from cim.live.broker import add_device

    password = add_device(_local_broker_only(), sensor_id)
    console.print(
        f"device {sensor_id!r}: MQTT user {sensor_id!r}, may publish to cim/sensors/{sensor_id}/reading; "
        "its password is shown only now, keep it:"
    )
    print(password)


@devices_app.command("list")
@friendly_errors
def devices_list() -> None:
    """List the devices that have an MQTT user (never their passwords)."""
    from cim.live.broker import devices

    found = devices(_local_broker_only())
    for sensor_id in found:
        print(sensor_id)
    if not found:
        console.print("no devices yet: `cim devices add SENSOR_ID` makes one")


@devices_app.command("remove")
@friendly_errors
def devices_remove(sensor_id: str = typer.Argument(..., help="the sensor id")) -> None:
    """Remove a device's MQTT user: it can no longer connect."""
    from cim.live.broker import remove_device

    if not remove_device(_local_broker_only(), sensor_id):
        console.print(f"[red]no device {sensor_id!r}[/]")
        raise typer.Exit(1)
    console.print(f"device {sensor_id!r} removed (a connection it has open ends when it disconnects)")


# --- samples ------------------------------------------------------------------------


@samples_app.command("futian")
@friendly_errors
def samples_futian(
    out: Path = typer.Option(..., "--out", help="folder to write one GeoPackage per layer into"),
    scale: Scale = typer.Option(Scale.small, help="small (about 2,000 buildings) or full (20,000+)"),
    seed: int = typer.Option(42, help="the same seed gives the same data"),
) -> None:
    """Generate the synthetic Futian sample inside the real district boundary."""
    import time

    from cim.samples import futian

    t0 = time.perf_counter()
    table = Table("layer", "features", title=f"Futian sample ({scale.value}, seed {seed}) -> {out}")
    with console.status("generating...") as status:

        def on_layer(layer: str, count: int) -> None:
            status.update(f"generating... {layer} done")
            table.add_row(layer, f"{count:,}")

        futian.generate(out, scale=scale.value, seed=seed, on_layer=on_layer)
    console.print(table)
    console.print(f"done in {time.perf_counter() - t0:.1f} s")


# --- import ---------------------------------------------------------------------------


class _ProgressBars:
    """Maps an importer's (stage, done, total) calls onto rich progress bars."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            for other in self.tasks.values():  # a new stage means the earlier ones are finished
                task = self.progress.tasks[other]
                self.progress.update(other, completed=task.total or 1, total=task.total or 1)
            self.tasks[stage] = self.progress.add_task(stage, total=total or None)
        self.progress.update(self.tasks[stage], completed=done, total=total or None)

    def finish(self) -> None:
        for task_id in self.tasks.values():
            task = self.progress.tasks[task_id]
            self.progress.update(task_id, completed=task.total or 1, total=task.total or 1)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def print_report(report) -> None:
    from import_scripts.report import ImportReport

    assert isinstance(report, ImportReport)
    t = Table(show_header=False, title=f"imported {report.kind} {report.name!r}", title_justify="left")
    t.add_row("features", f"{report.feature_count:,} {report.geometry_type}")
    t.add_row("extent", "{:.6f}, {:.6f} .. {:.6f}, {:.6f}".format(*report.bbox))
    t.add_row("output", f"{report.output} (version {report.version})")
    t.add_row("source CRS", report.crs)
    t.add_row("repaired", f"{report.repaired:,} invalid geometries")
    t.add_row(
        "skipped", f"{report.skipped_count:,}" + (f" ({'; '.join(report.skipped[:5])})" if report.skipped else "")
    )
    t.add_row("time", f"{report.seconds:.2f} s ({report.rate:,.0f} features/s)")
    for note in report.notes:
        t.add_row("note", note)
    console.print(t)


# options every vector importer takes, defined once
_SOURCE = typer.Argument(..., help="Shapefile, GeoPackage, GeoJSON, FlatGeobuf or CSV (lon/lat or WKT)")
_NAME = typer.Option(..., "--name", help="layer name (lower-case letters, digits, single _)")
_TITLE = typer.Option(None, help="title shown to users (default: the name)")
_LAYER = typer.Option(None, help="the layer to read from a multi-layer file")
_SRC_CRS = typer.Option(None, "--src-crs", help="source CRS: EPSG code, WKT, or a .prj file")
_DATUM = typer.Option(Datum.wgs84, help="lon/lat datum of the source: wgs84, gcj02 (Amap) or bd09 (Baidu)")
_GRID_JOIN = typer.Option(True, help="place each feature in its street/community/grid")
_ENCODING = typer.Option(
    None,
    "--encoding",
    help="text encoding of a CSV or Shapefile, e.g. gbk, gb18030, big5 "
    "(default: as the file declares, else UTF-8, else GB18030, said in the summary)",
)


def _run_import(importer: type[Importer[Any]], source: Path, name: str, options: Any) -> None:
    """Run an import with progress bars and its summary; the audit says who imported what, and how it ended."""
    try:
        with _progress() as progress:
            bars = _ProgressBars(progress)
            report = importer(get_settings(), source, name, options, progress=bars).run()
            bars.finish()
    except BaseException as exc:
        _audit_import(importer.kind, name, source, ok=False, detail={"error": str(exc)[:500]})
        raise
    _audit_import(
        importer.kind, name, source, ok=True, detail={"features": report.feature_count, "version": report.version}
    )
    print_report(report)


def _audit_import(kind: str, name: str, source: Path, *, ok: bool, detail: dict) -> None:
    from cim.auth.store import record

    try:
        with _auth_conn() as conn:
            record(conn, _cli_actor(), f"import.{kind}", name, ok=ok, detail={"source": source.name, **detail})
    except Exception:  # the database is the import's own failure: said already, in one line
        pass


_VERTICAL_DATUM = typer.Option(
    VerticalDatum.egm96,
    "--vertical-datum",
    help="what the source's heights are measured from: egm96 (orthometric, above the geoid, as the 1985 national "
    "height datum; made ellipsoidal on import) or ellipsoidal",
)


@import_app.command("layer")
@friendly_errors
def import_layer(
    source: Path = _SOURCE,
    name: str = _NAME,
    title: str | None = _TITLE,
    layer: str | None = _LAYER,
    src_crs: str | None = _SRC_CRS,
    datum: Datum = _DATUM,
    grid_join: bool = _GRID_JOIN,
    encoding: str | None = _ENCODING,
) -> None:
    """Import a vector file into a PostGIS layer (replacing its previous version only on success)."""
    from import_scripts.layer import LayerImporter, LayerOptions

    options = LayerOptions(
        title=title, layer=layer, src_crs=src_crs, datum=datum, grid_join=grid_join, encoding=encoding
    )
    _run_import(LayerImporter, source, name, options)


@import_app.command("buildings")
@friendly_errors
def import_buildings(
    source: Path = _SOURCE,
    name: str = _NAME,
    title: str | None = _TITLE,
    layer: str | None = _LAYER,
    src_crs: str | None = _SRC_CRS,
    datum: Datum = _DATUM,
    grid_join: bool = _GRID_JOIN,
    encoding: str | None = _ENCODING,
    height_field: str | None = typer.Option(
        None, help="field with the height in metres (default: a field named height/高度)"
    ),
    floors_field: str | None = typer.Option(None, help="field with the number of floors (default: floors/层数)"),
    floor_height: float = typer.Option(3.0, help="metres per floor, with --floors-field"),
    base_height_field: str | None = typer.Option(None, help="field with the base height in metres (default 0)"),
    default_height: float = typer.Option(9.0, help="height given to a building without a usable one"),
) -> None:
    """Import building footprints into a PostGIS layer and a 3D Tiles 1.1 tileset (the white model)."""
    from import_scripts.buildings import BuildingOptions, BuildingsImporter
    from import_scripts.layer import LayerOptions

    if height_field and floors_field:
        raise CimError("give --height-field or --floors-field, not both")
    options = BuildingOptions(
        layer=LayerOptions(
            title=title, layer=layer, src_crs=src_crs, datum=datum, grid_join=grid_join, encoding=encoding
        ),
        height_field=height_field,
        floors_field=floors_field,
        floor_height=floor_height,
        base_height_field=base_height_field,
        default_height=default_height,
    )
    _run_import(BuildingsImporter, source, name, options)


@import_app.command("components")
@friendly_errors
def import_components(
    source: Path = _SOURCE,
    name: str = _NAME,
    title: str | None = _TITLE,
    layer: str | None = _LAYER,
    src_crs: str | None = _SRC_CRS,
    datum: Datum = _DATUM,
    grid_join: bool = _GRID_JOIN,
    encoding: str | None = _ENCODING,
    class_field: str | None = typer.Option(
        None, help="field with the class code, e.g. 0101 (default: class_code/部件代码/小类代码 ...)"
    ),
    models: Path | None = typer.Option(
        None, help="folder with one model per class named after its code (0101.glb, 0102.obj ...)"
    ),
    heading_field: str | None = typer.Option(
        None, help="field with the heading, degrees clockwise from north (default: heading/朝向)"
    ),
    scale_field: str | None = typer.Option(None, help="field with a scale of the class's model (default 1)"),
    height_field: str | None = typer.Option(None, help="field with the base height in metres (default 0)"),
    unclassified: bool = typer.Option(
        False, "--unclassified", help="import components of unknown classes as 未分类 instead of leaving them out"
    ),
) -> None:
    """Import city components (points with a class code) into a PostGIS layer and an instanced 3D Tiles tileset."""
    from import_scripts.components import ComponentOptions, ComponentsImporter
    from import_scripts.layer import LayerOptions

    options = ComponentOptions(
        layer=LayerOptions(
            title=title, layer=layer, src_crs=src_crs, datum=datum, grid_join=grid_join, encoding=encoding
        ),
        class_field=class_field,
        models=models,
        heading_field=heading_field,
        scale_field=scale_field,
        height_field=height_field,
        unclassified=unclassified,
    )
    _run_import(ComponentsImporter, source, name, options)


@import_app.command("raster")
@friendly_errors
def import_raster(
    source: Path = typer.Argument(
        ..., help="a GeoTIFF, JPEG 2000, ERDAS IMG or VRT, or a folder of tiles (one mosaic)"
    ),
    name: str = _NAME,
    kind: str = typer.Option(..., "--kind", help="dom (an orthophoto) or dem (a terrain model)"),
    epoch: str | None = typer.Option(None, "--epoch", help="YYYY-MM-DD: when it was taken (default: today)"),
    src_crs: str | None = _SRC_CRS,
    nodata: float | None = typer.Option(None, "--nodata", help="the value that means 'no data' (default: the file's)"),
    vertical_datum: VerticalDatum = _VERTICAL_DATUM,
    title: str | None = _TITLE,
) -> None:
    """Import an orthophoto (DOM) or a terrain model (DEM) as a Cloud-Optimized GeoTIFF, by name and epoch."""
    import datetime as dt

    from import_scripts.raster import RasterImporter, RasterOptions

    try:
        day = dt.date.fromisoformat(epoch) if epoch else None
    except ValueError:
        raise CimError(f"--epoch {epoch!r} is not a date YYYY-MM-DD") from None
    if day is not None and not dt.date(1900, 1, 1) <= day <= dt.date.today() + dt.timedelta(days=366):
        raise CimError(f"--epoch {epoch}: not a date a survey was taken on")
    options = RasterOptions(
        kind=kind, epoch=day, src_crs=src_crs, nodata=nodata, vertical_datum=vertical_datum, title=title
    )
    _run_import(RasterImporter, source, name, options)


@import_app.command("bim")
@friendly_errors
def import_bim(
    source: Path = typer.Argument(..., help="an IFC file (IFC2X3, IFC4, IFC4.3)"),
    name: str = _NAME,
    title: str | None = _TITLE,
    anchor: str | None = typer.Option(
        None,
        help="LON,LAT,HEIGHT[,ROTATION_DEG]: where the model's origin stands "
        "(and the compass bearing of its +Y axis); overrides the file's "
        "georeference, required without one",
    ),
    jobs: int | None = typer.Option(None, help="processes for triangulation (default: all cores)"),
    grid_join: bool = _GRID_JOIN,
    vertical_datum: VerticalDatum = _VERTICAL_DATUM,
) -> None:
    """Import a BIM model: 3D Tiles (one feature per element), an element layer and the building outline."""
    from import_scripts.bim import BimImporter, BimOptions
    from import_scripts.bim.georef import Anchor

    options = BimOptions(
        title=title,
        anchor=Anchor.parse(anchor) if anchor else None,
        jobs=jobs,
        grid_join=grid_join,
        vertical_datum=vertical_datum,
    )
    _run_import(BimImporter, source, name, options)


@import_app.command("oblique")
@friendly_errors
def import_oblique(
    source: Path = typer.Argument(
        ..., help="a production folder (metadata.xml + Data/Tile_*/Tile_*.osgb, or .obj tiles), or one tile file"
    ),
    name: str = _NAME,
    title: str | None = _TITLE,
    srs: str | None = typer.Option(
        None,
        help="the production's SRS when metadata.xml has none or is wrong: EPSG code, WKT, .prj file, or ENU:LAT,LON",
    ),
    origin: str | None = typer.Option(
        None, help="X,Y,Z: the SRS origin the vertices are offsets from (default: metadata.xml's SRSOrigin, else 0,0,0)"
    ),
    jobs: int | None = typer.Option(None, help="worker processes (default: all cores)"),
    grid_join: bool = _GRID_JOIN,
    vertical_datum: VerticalDatum = _VERTICAL_DATUM,
) -> None:
    """Import oblique photography (OSGB/OBJ) into 3D Tiles, keeping its LOD pyramid; its footprints into a layer.
    An interrupted import resumes where it stopped when run again."""
    from import_scripts.oblique import ObliqueImporter, ObliqueOptions
    from import_scripts.oblique.production import parse_origin

    options = ObliqueOptions(
        srs=srs,
        origin=parse_origin(origin, "--origin") if origin else None,
        jobs=jobs,
        title=title,
        grid_join=grid_join,
        vertical_datum=vertical_datum,
    )
    _run_import(ObliqueImporter, source, name, options)


# --- serve / demo -------------------------------------------------------------------------


# --- land supervision ------------------------------------------------------------------

components_app = typer.Typer(help="City components (城市部件): the class catalogue.", no_args_is_help=True)
app.add_typer(components_app, name="components")


def _triple(text: str | None, what: str, kind: type) -> tuple | None:
    if text is None:
        return None
    try:
        values = tuple(kind(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise CimError(f"--{what} {text!r}: give three comma-separated numbers")
    return values


@components_app.command("classes")
@friendly_errors
def components_classes() -> None:
    """List the component classes: the built-in ones (GB/T 30428.2) and the user classes."""
    from cim.components.catalogue import major_of
    from cim.db import connect
    from layers.components.classes import catalogue

    with connect(get_settings()) as conn:
        found = catalogue(conn)
    t = Table("code", "大类", "name", "English", "size (m)", "department", "kind", title=f"{len(found)} classes")
    for code, cls in sorted(found.items()):
        size = " x ".join(f"{v:g}" for v in cls.size)
        kind = "built-in" if cls.builtin else "user"
        t.add_row(code, major_of(code).name_zh, cls.name_zh, cls.name_en, size, cls.department, kind)
    console.print(t)


@components_app.command("add-class")
@friendly_errors
def components_add_class(
    code: str = typer.Argument(..., help="four digits: 大类 (2) + 小类 (2), e.g. 0199; not a built-in code"),
    name_zh: str = typer.Option(..., "--name-zh", help="the Chinese name"),
    name_en: str | None = typer.Option(None, "--name-en", help="the English name"),
    size: str | None = typer.Option(None, help="W,D,H in metres (the built-in box model's size)"),
    colour: str | None = typer.Option(None, help="R,G,B 0-255"),
    department: str | None = typer.Option(None, help="the department in charge (主管部门)"),
) -> None:
    """Add (or change) a user component class."""
    from cim.components.catalogue import user_class
    from cim.db import connect
    from layers.components.classes import save_user_class

    try:
        sizes = _triple(size, "size", float)
        colours = _triple(colour, "colour", int)
        if sizes is not None and not all(0 < v <= 500 for v in sizes):
            raise ValueError(f"--size {size!r}: each between 0 and 500 m")
        if colours is not None and not all(0 <= v <= 255 for v in colours):
            raise ValueError(f"--colour {colour!r}: each between 0 and 255")
        if not 1 <= len(name_zh) <= 64 or (name_en is not None and not 1 <= len(name_en) <= 64):
            raise ValueError("a name has 1 to 64 characters")
        cls = user_class(code, name_zh, name_en, sizes, colours, department)
        with connect(get_settings()) as conn:
            save_user_class(conn, cls, "cli")
            conn.commit()
    except ValueError as exc:
        raise CimError(str(exc)) from exc
    console.print(f"class {cls.code} {cls.name_zh} saved: `cim import components` now takes it")


land_app = typer.Typer(
    help="Land supervision (土地批后监管): parcels checked against what is built.", no_args_is_help=True
)
app.add_typer(land_app, name="land")


def _pairs(text: str | None, option: str) -> dict[str, str]:
    """``a=b,c=d`` -> {a: b, c: d}."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise CimError(f"{option}: {part.strip()!r} is not FIELD=COLUMN", hint=f"e.g. {option} approved_far=RJL")
        out[key.strip()] = value.strip()
    return out


@land_app.command("check")
@friendly_errors
def land_check(
    parcels: str = typer.Option("parcels", "--parcels", help="the parcels layer"),
    buildings: str = typer.Option(..., "--buildings", help="the buildings layers, comma-separated"),
    epoch: str | None = typer.Option(
        None, "--epoch", help="the survey epoch of these buildings (e.g. 2026): changes since the previous epoch"
    ),
    as_of: str | None = typer.Option(None, "--as-of", help="the check's date for deadlines (default: today)"),
    fields: str | None = typer.Option(
        None, "--fields", help="parcel fields under other names: approved_far=RJL,coverage=JZMD,..."
    ),
    farmland: str | None = typer.Option(None, "--farmland", help="farmland layer (default: farmland; '' for none)"),
    forest: str | None = typer.Option(None, "--forest", help="forest layer (default: forest; '' for none)"),
    eco_redline: str | None = typer.Option(
        None, "--eco-redline", help="ecological red line layer (default: eco_redline; '' for none)"
    ),
    exempt: str | None = typer.Option(
        None, "--exempt", help="layers where buildings need no parcel (roads, public or existing construction land)"
    ),
    parcel: str | None = typer.Option(None, "--parcel", help="re-check this parcel only"),
) -> None:
    """Check every parcel: figures, findings, verdicts (合规 / 预警 / 违规), changes since the last epoch."""
    import datetime as dt

    from cim.auth.store import ensure_auth_schema, record
    from cim.db import connect
    from layers.land.checks import CheckOptions, parse_date, run_check
    from layers.land.rules import CHANGES, KINDS, thresholds_of

    try:
        day = parse_date(as_of) if as_of else None
    except ValueError as exc:
        raise CimError(f"--as-of: {exc}", hint="e.g. --as-of 2026-06-30") from None
    options = CheckOptions(
        parcels=parcels,
        buildings=_names(buildings),
        epoch=(epoch or "").strip()[:40] or None,
        as_of=day,
        fields=_pairs(fields, "--fields"),
        protected={"on_farmland": farmland, "on_forest": forest, "on_eco_redline": eco_redline},
        exempt=_names(exempt),
        parcel_id=parcel,
        thresholds=thresholds_of(get_settings()),
        actor=_cli_actor(),
    )
    with connect(get_settings()) as conn:
        with console.status("checking parcels") as status:
            result = run_check(conn, options, progress=lambda stage: status.update(f"checking parcels: {stage}"))
        ensure_auth_schema(conn)
        record(conn, _cli_actor(), "land.check", parcels, detail={"run": result.run_id, "parcel": parcel})
        conn.commit()
    t = Table(show_header=False, title=f"land check of {parcels!r} (run {result.run_id})", title_justify="left")
    t.add_row("parcels", f"{result.checked:,} checked, {result.skipped_count:,} skipped")
    t.add_row("verdicts", ", ".join(f"{v} {n:,}" for v, n in sorted(result.verdicts.items())) or "-")
    t.add_row("as of", str(day or dt.date.today()))
    if result.previous_epoch:
        t.add_row(
            "changes",
            f"since {result.previous_epoch}: "
            + ", ".join(f"{CHANGES[k]} {k} {n:,}" for k, n in result.changes.items()),
        )
    elif options.epoch:
        t.add_row("changes", f"epoch {options.epoch} recorded; no earlier epoch to compare with")
    t.add_row("closed", f"{result.closed:,} findings no longer hold")
    t.add_row("time", f"{result.seconds:.2f} s")
    for problem in result.skipped:
        t.add_row("skipped", problem)
    for note in result.notes:
        t.add_row("note", note)
    console.print(t)
    kinds = Table("finding", "kind", "open", title="open findings by kind", title_justify="left")
    for kind, n in result.findings.items():
        kinds.add_row(KINDS[kind][1], kind, f"{n:,}")
    console.print(kinds)
    streets = Table("street", "parcels", "预警", "违规", title="by street", title_justify="left")
    for name, n, warn, bad in result.by_street:
        streets.add_row(name, f"{n:,}", f"{warn:,}", f"{bad:,}")
    console.print(streets)
    console.print("next: `cim serve`, then the viewer's 土地监管 panel or GET /land/parcels?verdict=违规")


@app.command("serve")
@friendly_errors
def serve(
    host: str | None = typer.Option(None, help="address to listen on (default 127.0.0.1)"),
    port: int | None = typer.Option(None, help="port (default 8000)"),
) -> None:
    """Serve the layers, tiles and viewer over HTTP."""
    import uvicorn

    from cim.db import database_url
    from cim.server.app import create_app

    settings = get_settings()
    database_url(settings)  # start the local cluster now, not on the first request
    host = host or settings.host
    port = port or settings.port
    console.print(f"serving on http://{host}:{port}/viewer  (API docs: http://{host}:{port}/docs)")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


@app.command("demo")
@friendly_errors
def demo(
    scale: Scale = typer.Option(
        Scale.small, help="small: the committed sample; full: generate 20,000+ buildings first"
    ),
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="serve the viewer when the imports are done"),
    port: int | None = typer.Option(None, help="port (default 8000)"),
) -> None:
    """Import the Futian sample and serve the viewer: the whole chain in one command."""
    from cim.demo import check_sample_land, import_sample

    settings = get_settings()
    with _progress() as progress:
        reports = import_sample(settings, scale=scale.value, progress=progress)
    t = Table("layer", "features", "type", "time", title="Futian sample imported")
    for r in reports:
        t.add_row(r.name, f"{r.feature_count:,}", r.geometry_type, f"{r.seconds:.2f} s")
    console.print(t)
    with console.status("land supervision: checking the parcels against both survey epochs"):
        checks = check_sample_land(settings)
    last = checks[-1]
    console.print(
        f"land supervision: {last.checked:,} parcels checked ("
        + ", ".join(f"{v} {n:,}" for v, n in sorted(last.verdicts.items()))
        + f"), changes since {last.previous_epoch}: "
        + ", ".join(f"{k} {n}" for k, n in last.changes.items())
        + "; the viewer's 土地监管 panel shows them"
    )
    if serve_after:
        host = settings.host
        if host in ("127.0.0.1", "localhost", "::1") and not settings.anonymous_read:
            os.environ["CIM_ANONYMOUS_READ"] = "true"  # the demo on this machine only: browse without signing in
            get_settings.cache_clear()
            console.print(
                "read-only anonymous mode on 127.0.0.1: this machine browses without signing in; changes need a "
                "user (`cim users add NAME --role admin`, then /auth/login) or a token (`cim tokens create`)"
            )
        serve(host=None, port=port)


def main() -> None:  # pragma: no cover
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
