"""HTTP handlers, one module per surface: each parses, calls one service method and shapes the response."""
