"""Tensor files whose headers are all there is to check: safetensors and GGUF."""
