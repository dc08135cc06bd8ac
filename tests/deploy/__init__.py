"""Deployment checks: manifests, RBAC against what the code calls, the image build steps."""
