"""Controller configuration: typed settings from a YAML/TOML file and the environment.

``interface`` holds ``ConfigError`` and the typed construction every settings
dataclass uses; ``settings`` is the controller's configuration; ``buckets`` is
one watched S3 bucket's.
"""
