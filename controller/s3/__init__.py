"""S3 buckets: listing and SQS events, ranged-GET reads, model grouping, signed object tags, quarantine.

``source`` is the ``Source``; ``object_tags`` reads verdicts back (no writes);
``actions`` writes tags and quarantines; ``grouping``, ``reader``, ``scan``,
``events`` and ``claims`` do one job each.
"""
