"""The viewer's deck, built in Python with pydeck.

``deck(...)`` returns a ``pydeck.Deck``: in Jupyter it renders as it is; the
``/viewer`` page sends its JSON to the browser, where deck.gl's JSON
converter (served locally) turns it into layers. The styles of named layers
and the layer the view opens on come from a viewer file, if any::

    from viewer.styles import ViewerStyles
    viewer.deck(layers, base_url="http://127.0.0.1:8000", styles=ViewerStyles.load(".cim/viewer.json"))
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pydeck as pdk

from layers.catalogue import LayerInfo
from viewer.styles import NO_STYLES, ViewerStyles


def literal(text: str) -> str:
    """A string prop as a string: pydeck makes any other string an @@= expression."""
    return f'"{text}"'


#: loaders.gl fetches its workers from a CDN unless told otherwise: vector tiles
#: parse in the worker this server hands out, 3D Tiles on the main thread
NO_WORKERS = {"worker": False}


def mvt_load_options(base_url: str) -> dict:
    return {"mvt": {"workerUrl": f"{base_url}/viewer/vendor/mvt-worker.js"}}


PICK_SUFFIX = "__pick"  # the extruded-footprint layer that makes single buildings pickable


@dataclass(frozen=True)
class TilesetRef:
    name: str
    url: str  # of tileset.json
    layer: str | None = None  # the PostGIS layer of the same features, if any
    storeys: tuple[tuple[str, str], ...] = ()  # BIM: (storey, URL of its own tileset), switched one by one
    kind: str = ""  # what the importer made it from ("oblique", ...), from the tileset's asset.extras

    @property
    def has_pick_layer(self) -> bool:
        """Buildings are picked one by one through their extruded footprints;
        a BIM model's elements are drawn by its storeys; an oblique
        production's layer (its extent and folder footprints) is drawn as it is."""
        return bool(self.layer) and not self.storeys and self.kind not in ("oblique", "components")

    def layer_ids(self) -> list[str]:
        if self.storeys:
            return [storey_layer_id(self.name, i) for i in range(len(self.storeys))]
        return [f"tileset:{self.name}"]


def storey_layer_id(model: str, index: int) -> str:
    return f"tileset:{model}:storey{index}"


def initial_view(layers: Iterable[LayerInfo], home: str | None = None) -> pdk.ViewState:
    """The ``home`` layer's extent (a viewer file's ``home``), or every layer's."""
    layers = list(layers)
    chosen = [layer for layer in layers if layer.name == home] if home is not None else []
    chosen = chosen or layers
    if not chosen:
        return pdk.ViewState(longitude=114.05, latitude=22.54, zoom=12, pitch=45, bearing=0)
    west = min(layer.bbox[0] for layer in chosen)
    south = min(layer.bbox[1] for layer in chosen)
    east = max(layer.bbox[2] for layer in chosen)
    north = max(layer.bbox[3] for layer in chosen)
    view = pdk.data_utils.compute_view([[west, south], [east, north]], view_proportion=1)
    return pdk.ViewState(longitude=view.longitude, latitude=view.latitude, zoom=view.zoom + 0.3, pitch=45, bearing=0)


def _mvt_layer(layer: LayerInfo, base_url: str, styles: ViewerStyles, kind: str = "") -> pdk.Layer:
    style = styles.style_of(layer.name, layer.geometry_type, kind)
    points = "Point" in layer.geometry_type
    return pdk.Layer(
        "MVTLayer",
        id=layer.name,
        data=f"{base_url}/layers/{layer.name}/tiles/{{z}}/{{x}}/{{y}}.mvt",
        min_zoom=0,
        max_zoom=16,
        load_options=mvt_load_options(base_url),
        get_fill_color=list(style.fill),
        get_line_color=list(style.line),
        line_width_units=literal("pixels"),
        get_line_width=style.line_width_px,
        point_type=literal("circle"),
        get_point_radius=4,
        point_radius_units=literal("pixels"),
        filled=True,
        stroked=not points,
        pickable=True,
        auto_highlight=True,
        highlight_color=[255, 220, 0, 120],
        visible=style.visible,
    )


def _pick_layer(layer: LayerInfo, base_url: str) -> pdk.Layer:
    """Buildings' footprints extruded to their height, nearly transparent: a
    Tile3DLayer picks whole tiles, this picks and highlights one building."""
    return pdk.Layer(
        "MVTLayer",
        id=layer.name + PICK_SUFFIX,
        data=f"{base_url}/layers/{layer.name}/tiles/{{z}}/{{x}}/{{y}}.mvt",
        min_zoom=12,
        max_zoom=16,
        load_options=mvt_load_options(base_url),
        extruded=True,
        # from 0 to the roof: a building stands on the terrain (base_height, when a DEM was there at its import)
        get_elevation="(properties.base_height > 0 ? properties.base_height : 0) + properties.height + 0.3",
        get_fill_color=[255, 255, 255, 1],
        stroked=False,
        filled=True,
        pickable=True,
        auto_highlight=True,
        highlight_color=[255, 200, 0, 200],
    )


def _tileset_layers(tileset: TilesetRef) -> list[pdk.Layer]:
    """One Tile3DLayer, or one per storey for a BIM model (so storeys can be hidden)."""
    urls = [url for _, url in tileset.storeys] or [tileset.url]
    return [
        pdk.Layer(
            "Tile3DLayer",
            id=layer_id,
            data=url,
            loader='"@@#Tiles3DLoader"',
            load_options={**NO_WORKERS, "tileset": {"maximumScreenSpaceError": 4}},
            pickable=False,
        )
        for layer_id, url in zip(tileset.layer_ids(), urls)
    ]


def deck(
    layers: Iterable[LayerInfo],
    tilesets: Iterable[TilesetRef] = (),
    *,
    base_url: str = "",
    view: pdk.ViewState | None = None,
    styles: ViewerStyles | None = None,
) -> pdk.Deck:
    """The deck: vector layers as MVT (drawn in style order), each tileset as a
    Tile3DLayer, and per-building picking where a tileset has its PostGIS layer.
    ``styles``: a viewer file's (:meth:`ViewerStyles.load`); none, every layer
    in the default style and the view on every layer's extent."""
    styles = NO_STYLES if styles is None else styles
    layers = list(layers)
    tilesets = list(tilesets)
    with_tiles = {t.layer: t for t in tilesets if t.layer}
    deck_layers: list[pdk.Layer] = []
    for layer in sorted(layers, key=lambda info: (styles.style_of(info.name, info.geometry_type).order, info.name)):
        tileset = with_tiles.get(layer.name)
        if tileset is not None and tileset.storeys:
            continue  # a BIM model: its elements are drawn by the storeys' tilesets
        if tileset is not None and tileset.has_pick_layer:
            deck_layers.append(_pick_layer(layer, base_url))
        else:
            deck_layers.append(_mvt_layer(layer, base_url, styles, tileset.kind if tileset else ""))
    # an instanced components tileset is not drawn whole: deck.gl 9.4's Tile3DLayer draws one instance
    # of each of its meshes; its points are drawn here, the page's components.js draws its models
    deck_layers[:0] = [layer for t in tilesets if t.kind != "components" for layer in _tileset_layers(t)]
    return pdk.Deck(
        layers=deck_layers,
        initial_view_state=view or initial_view(layers, styles.home),
        map_style=None,
        map_provider=None,
        views=[pdk.View("MapView", controller=True)],
    )
