"""The pickle family: what unpickling would do, without unpickling.

``vm`` runs a pickle stream with CPython's semantics and executes nothing;
``names`` resolves a global the way ``find_class`` does and places it in a
policy tier; ``packs`` holds the allow packs and denied categories;
``analyzer`` is the registered pickle analyzer; ``pytorch``, ``numpy_arrays``
and ``joblib_arrays`` know the containers pickles come in.
"""
