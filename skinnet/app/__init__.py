"""The web app and JSON API (``skinnet serve``): upload a dermoscopy image, see the lesion outlined and measured.

Import :mod:`skinnet.app.server` only where the app is wanted: FastAPI and uvicorn are not needed elsewhere.
"""
