"""Certificates: issuing the development CA and serving pair, and publishing the CA to the webhooks."""
