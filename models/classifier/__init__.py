"""Product classifier: catalogue data, training (text + image -> category), ONNX export."""
