"""The controller runtime: the ``Source`` contract, the work queue and workers, leader election,
the HTTP server, metrics and JSON logs.

``interface`` is where a source plugs in (``Source``, ``ScanRequest``,
``Scanned``, ``SourceUnavailable``); ``engine`` runs sources.
"""
