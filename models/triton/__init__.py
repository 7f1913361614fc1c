"""Triton helpers: the generic Python-backend ONNX Runtime model (``onnx_model.py``)."""
