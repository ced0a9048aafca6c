"""Importers, one module per source kind, each filling one contract
(:class:`import_scripts.contract.Importer`):

    read -> normalise CRS -> write tiles and/or a layer -> report

Each module also has ``run(settings, source, name, options, progress) -> ImportReport``.
"""
