"""Python client for runqueued: length-prefixed runqueue.v1 protobuf frames over TCP."""
from .client import (Client, EnvironmentType, ExpirySubscription, MessageSource, RunQueueError, RunStatus,
                     StatusCode, parse_address, pb)

__all__ = ["Client", "ExpirySubscription", "RunQueueError", "StatusCode", "EnvironmentType", "RunStatus",
           "MessageSource", "parse_address", "pb"]
