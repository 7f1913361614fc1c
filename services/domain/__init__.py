"""Domains shared by training (models/) and serving (services/): what a taxi ride, a product
catalogue and a chatbot document are, and how they become features, chunks and vectors.

A domain module may use the plumbing of :mod:`services.common`; nothing in
:mod:`services.common` imports a domain. See docs/architecture.md.
"""
