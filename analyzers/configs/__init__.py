"""Model configs: JSON and YAML files loaders act on, and the references they make.

``analyzer`` is the registered analyzer; ``parsing`` reads JSON/YAML the way
loaders do; ``sites`` records references (other models, code, paths, URLs);
``huggingface``, ``hydra``, ``mlflow_model`` and ``shards`` (sharded-checkpoint indexes) know one
family of files each.
"""
