"""torch.npu.Stream and torch.npu.Event: PyTorch's generic torch.Stream / torch.Event on the
npu device, with torch.cuda's extra conveniences."""
from typing import Any, Optional

import torch

from .. import _C
from ._utils import _get_device_index


class Stream(torch.Stream):
    """An in-order queue of device work. ``Stream(device=None, priority=0)`` takes a stream
    from the device's pool; priority < 0 selects the high-priority pool."""

    def __new__(cls, device: Any = None, priority: int = 0, **kwargs):
        if "stream_id" in kwargs:  # wrap an existing stream
            return super().__new__(cls, **kwargs)
        idx = _get_device_index(device, optional=True)
        return super().__new__(cls, device=torch.device("npu", idx), priority=priority)

    @classmethod
    def _wrap(cls, s: torch.Stream) -> "Stream":
        return cls(stream_id=s.stream_id, device_index=s.device_index, device_type=s.device_type)

    @property
    def priority(self) -> int:
        return _C.stream_priority(self.device_index, self.stream_id)

    @staticmethod
    def priority_range() -> tuple:
        """(lowest, highest) priority, as torch.cuda.Stream.priority_range()."""
        return (0, -1)

    def record_event(self, event: Optional["Event"] = None) -> "Event":
        event = Event() if event is None else event
        event.record(self)
        return event

    def wait_stream(self, stream: torch.Stream) -> None:
        self.wait_event(stream.record_event())

    def __repr__(self) -> str:
        return f"<torch.npu.Stream device=npu:{self.device_index} stream_id={self.stream_id}>"


class Event(torch.Event):
    """A marker in a stream: record, wait, synchronize, query, elapsed_time."""

    def __new__(cls, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False, device: Any = None):
        if interprocess:
            raise NotImplementedError("torch.npu.Event: interprocess events are not supported by the software NPU")
        return super().__new__(cls, device=torch.device("npu", _get_device_index(device, optional=True)),
                               enable_timing=enable_timing, blocking=blocking)

    def record(self, stream: Optional[torch.Stream] = None) -> None:
        if stream is None:
            stream = torch.accelerator.current_stream()
        super().record(stream)

    def wait(self, stream: Optional[torch.Stream] = None) -> None:
        if stream is None:
            stream = torch.accelerator.current_stream()
        super().wait(stream)

    def elapsed_time(self, end_event: torch.Event) -> float:
        """Milliseconds from this event to ``end_event`` (both recorded, timing enabled)."""
        if not isinstance(end_event, torch.Event):
            raise TypeError("elapsed_time expects a torch.Event")
        return _C.event_elapsed_time(self.event_id, end_event.event_id)

    def __repr__(self) -> str:
        return f"<torch.npu.Event event_id={self.event_id}>"
