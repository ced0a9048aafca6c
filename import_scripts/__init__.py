"""Importers, one module per source kind, each the same shape:

    run(settings, source, name, options, progress) -> ImportReport

read -> normalise CRS -> write tiles and/or a layer -> report.
"""
