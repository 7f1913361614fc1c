"""Chatbot data: generated manuals (PDF) and questions with known answers (evaluation, tests)."""
