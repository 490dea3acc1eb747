"""The REST faces: thin FastAPI routers over the service layer."""

from memos.api.app import create_app

__all__ = ["create_app"]
