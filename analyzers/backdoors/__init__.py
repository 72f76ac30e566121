"""Architectural-backdoor heuristics over a format-neutral graph, and the two adapters that build it.

``heuristics`` holds the graph model (``Graph``, ``Node``, ``Dialect``) and the
taint analysis (``MLG-BD`` rules); ``savedmodel_adapter`` and ``onnx_adapter``
turn a parsed SavedModel or ONNX model into that graph.
"""
