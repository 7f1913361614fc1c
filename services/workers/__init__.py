"""Streaming workers of the taxi app: tip, cost and dynamic duration (durable JetStream consumers).

Run one with ``python -m services.workers tip`` (or ``modelfleet worker tip``); see ``app.py``.
"""
