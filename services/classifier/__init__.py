"""The classifier service: product category from title, description and image (Triton)."""
