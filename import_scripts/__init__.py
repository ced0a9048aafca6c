"""Importers, one module per source kind, each filling one contract
(:class:`import_scripts.contract.Importer`):

    read -> normalise CRS -> write tiles and/or a layer -> report

    SomeImporter(settings, source, name, options, progress).run() -> ImportReport
"""
