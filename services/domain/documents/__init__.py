"""Documents for the chatbot: PDFs and catalogue products, chunked, embedded and stored in pgvector.

Shared by the chatbot service (retrieval, ``POST /v1/documents``) and the ingestion job
(``modelfleet ingest``); services never import each other, both import this package.

- ``store.py``: the schema (``migrations/``, applied as service ``documents``), ``search_chunks``
  (vector, full-text or hybrid retrieval in one statement), document status, the one
  transaction that replaces a document's chunks
- ``pdf.py``: PDF bytes -> text per page (``InvalidDocument`` for bad or encrypted files)
- ``chunking.py``: text -> overlapping chunks on sentence boundaries, with character offsets
- ``ingest.py``: ``ingest_pdf``, ``ingest_products`` (idempotent by content hash)
"""
