"""mlgate.analyzers: pure static analysis of model files. No network, no I/O outside the artifact read.

The scanner never imports TensorFlow, PyTorch or Keras and never executes model content.
"""

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it)
