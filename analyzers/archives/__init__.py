"""Containers: zip (PyTorch's lenient reading), tar/.nemo, 7z and single-stream compressors.

``members`` is where a container format plugs in: it describes each member as a
``Member`` and gets every member hazard (traversal, links, duplicates, bombs)
checked the same way; ``rules`` is the ``MLG-ARC`` catalogue; ``zip_reader`` and
``streams`` are the readers; ``zip_and_streams``, ``tar`` and ``sevenzip`` are the
registered analyzers, which hand each member back to the walker.
"""
