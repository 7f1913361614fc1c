"""The chatbot service: questions over the product catalogue and uploaded PDFs, cited answers."""
