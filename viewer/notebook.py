"""The viewer in Jupyter: a ``pydeck.Deck`` of what a running server has, and
an HTML export that draws offline (on an intranet: no CDN).

    from viewer.notebook import from_server, to_html
    deck = from_server("http://127.0.0.1:8000")   # shows in Jupyter as it is
    to_html(deck, "futian.html")                    # one file: deck.gl inlined, data from the server

pydeck's own ``to_html`` loads deck.gl from a CDN, so it draws nothing on a
machine without the internet; :func:`to_html` inlines the deck.gl bundles the
project installs (node_modules) instead. The data (vector tiles, 3D Tiles)
still come from the server: a page opened from another origin needs that
origin in the server's ``CIM_CORS_ORIGINS``.
"""

from __future__ import annotations

import html
import json
import urllib.request
from datetime import datetime
from pathlib import Path

import pydeck as pdk

from layers.catalogue import LayerInfo
from viewer.assets import STATIC_DIR, VENDOR
from viewer.deck import TilesetRef, deck
from viewer.styles import ViewerStyles

NODE_MODULES = Path(__file__).resolve().parent.parent / "node_modules"
#: the bundles an export inlines, in load order (the vector-tile worker is fetched from the server)
_INLINED = ("deck.gl.js", "deck-json.js", "loaders-3d-tiles.js")


def _get(url: str, timeout: float) -> object:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def _layer(row: dict) -> LayerInfo:
    imported = row.get("imported_at")
    return LayerInfo(
        name=row["name"],
        title=row.get("title") or row["name"],
        table_schema="",  # not published: the deck needs the layer's URLs only
        table_name="",
        geometry_type=row["geometry_type"],
        srid=row.get("srid", 4326),
        feature_count=row.get("feature_count", 0),
        bbox=tuple(row["bbox"]),  # type: ignore[arg-type]  # four numbers from the catalogue
        columns=row.get("columns") or {},
        version=row.get("version", 1),
        imported_at=datetime.fromisoformat(imported) if imported else None,
    )


def from_server(url: str, *, timeout: float = 30.0) -> pdk.Deck:
    """The deck of the server at ``url`` (its layers, tilesets and styles), with
    absolute URLs: the same deck the ``/viewer`` page draws."""
    base = url.rstrip("/")
    layers = [_layer(row) for row in _get(f"{base}/layers", timeout)]  # type: ignore[union-attr]
    names = {layer.name for layer in layers}
    tilesets = [
        TilesetRef(
            t["name"],
            f"{base}{t['url']}",
            layer=t["name"] if t["name"] in names else None,
            storeys=tuple((s["name"], f"{base}/tilesets/{t['name']}/{s['url']}") for s in t.get("storeys", [])
                          if isinstance(s, dict)),
            kind=str(t.get("kind", "")),
        )
        for t in _get(f"{base}/tilesets", timeout)  # type: ignore[union-attr]
    ]  # fmt: skip
    styles = ViewerStyles.from_dict(_get(f"{base}/viewer/styles.json", timeout))  # type: ignore[arg-type]
    return deck(layers, tilesets, base_url=base, styles=styles)


def to_html(
    the_deck: pdk.Deck, path: str | Path, *, title: str = "城市信息模型", node_modules: Path = NODE_MODULES
) -> Path:
    """Write ``the_deck`` as one HTML file that draws without the internet:
    deck.gl, its JSON converter and the 3D Tiles loader inlined from
    ``node_modules``; ``window.__cimDone`` is set once every layer has loaded."""
    scripts = []
    for name in _INLINED:
        source = node_modules / VENDOR[name]
        if not source.is_file():
            raise FileNotFoundError(f"{source}: not installed (run scripts/bootstrap.sh, which runs npm ci)")
        scripts.append(source.read_text(encoding="utf-8").replace("</script", "<\\/script"))
    # when a layer has drawn what it will: the viewer page's own test (a 3D Tiles layer out of view never
    # says it is loaded)
    scripts.append((STATIC_DIR / "settled.js").read_text(encoding="utf-8"))
    spec = json.loads(the_deck.to_json())
    data = json.dumps(spec, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    page = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>{html.escape(title)}</title>
<style>html,body{{margin:0;height:100%;background:#0b1220}}#map{{position:absolute;inset:0}}</style></head>
<body><div id="map"></div>
<script>{scripts[0]}</script>
<script>window.__deckCore = window.deck;</script>
<script>{scripts[1]}</script>
<script>window.deck = Object.assign({{}}, window.__deckCore, window.deck);</script>
<script>{scripts[2]}</script>
<script>{scripts[3]}</script>
<script id="cim-deck" type="application/json">{data}</script>
<script>
(function () {{
  const spec = JSON.parse(document.getElementById("cim-deck").textContent);
  const converter = new deck.JSONConverter({{ configuration: new deck.JSONConfiguration({{
    classes: deck, constants: {{ Tiles3DLoader: loaders.Tiles3DLoader }},
    enumerations: {{ COORDINATE_SYSTEM: deck.COORDINATE_SYSTEM }} }}) }});
  const layers = converter.convert({{ layers: spec.layers }}).layers;
  const result = window.__cimResult = {{ errors: [], layers: layers.map((l) => l.id), rendered: 0 }};
  const view = spec.initialViewState;
  const deckgl = new deck.Deck({{
    parent: document.getElementById("map"), views: [new deck.MapView({{ repeat: false }})],
    initialViewState: view, controller: true, layers,
    onError: (e, layer) => {{ result.errors.push(`${{layer ? layer.id : "deck"}}: ${{e && e.message || e}}`); }},
    onAfterRender: () => {{
      result.rendered += 1;
      const drawn = deckgl.props.layers || [];
      if (!window.__cimDone && result.rendered > 2 && drawn.every(window.cimSettled)) {{
        setTimeout(() => {{ window.__cimDone = true; }}, 500);
      }}
    }},
  }});
}})();
</script></body></html>"""
    out = Path(path)
    out.write_text(page, encoding="utf-8")
    return out
