"""PostGIS layers: schema, fast loading, catalogue, queries, vector tiles, grid placement.

Knows nothing of 3D Tiles.
"""
