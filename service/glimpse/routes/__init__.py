"""HTTP handlers, one module per surface; each stays thin and calls into plain classes."""
