"""Tip-amount and total-cost models of the taxi app (same trips and features as ride-duration)."""
