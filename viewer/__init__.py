"""The viewer: the page shell, its small JS, and the deck built with pydeck.

In Jupyter::

    import viewer
    from cim.db import connect
    from layers.catalogue import list_layers

    with connect() as conn:
        viewer.deck(list_layers(conn), base_url="http://127.0.0.1:8000")   # a pydeck.Deck
"""

from viewer.deck import TilesetRef, deck

__all__ = ["TilesetRef", "deck"]
