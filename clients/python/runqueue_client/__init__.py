"""Python client for runqueued: length-prefixed runqueue.v1 protobuf frames over TCP."""
from .client import Client, RunQueueError, StatusCode, pb

__all__ = ["Client", "RunQueueError", "StatusCode", "pb"]
