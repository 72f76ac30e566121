"""Keras models: one config walker for every container (``.keras``, ``.h5``, ``keras_metadata.pb``).

``containers`` pulls the JSON config out of its container (registered
analyzers); ``config_walker`` reads it the way Keras' deserializer would.
"""
