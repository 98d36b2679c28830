"""The HTTP layer: middlewares (errors, CORS, observation), body reading, the OpenAPI document, routes.

Only this package (and `app.py`, `server.py`) knows about aiohttp requests and responses.
"""
