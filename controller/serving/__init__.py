"""Serving HTTP: gunicorn, admission TLS, what both Flask apps share, and the HTTP error classes."""
