"""OpenAI's Responses API (``POST /v1/responses``): schemas, translation, routes, store.

The folder is not ``api/responses``: that name is taken by the JSON response module.
"""
