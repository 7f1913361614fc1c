"""The sentence-embedding model (all-MiniLM-L6-v2) as a model of the Triton repository."""
