"""The 3D Tiles engine: tileset tree, bounding volumes, geometric error,
GLB writing with EXT_mesh_features / EXT_structural_metadata, extrusion.

Knows nothing of PostGIS: it takes numpy arrays and shapely geometries.
"""
