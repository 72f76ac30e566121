"""mlgate.analyzers: pure static analysis of model files. No network, no I/O outside the artifact read.

The scanner never imports TensorFlow, PyTorch or Keras and never executes model content.
"""
