"""ONNX models: custom-op domains, external-data paths, nested graphs (``analyzer``)."""
