"""The HCCL_* environment variables the hccl backend honours, as Gloo settings.

- ``HCCL_CONNECT_TIMEOUT`` (seconds): how long connecting to the other ranks may take; without it,
  the group's ``timeout``.
- ``HCCL_EXEC_TIMEOUT`` (seconds): how long a collective waits for the other ranks; the group's
  ``timeout`` when that is shorter.
- ``HCCL_IF_IP``: the host address to communicate on; else ``HCCL_SOCKET_IFNAME`` picks the network
  interface (``eth,enp`` by prefix, ``=eth0`` by name, ``^`` in front to exclude); else Gloo's choice
  (``GLOO_SOCKET_IFNAME``, or the address of the host's name).

Ascend's hardware rounds and bounds the timeouts (e.g. HCCL_EXEC_TIMEOUT to a multiple of 68 s);
the software NPU takes any positive number of seconds as given."""
import datetime
import os
import socket
from typing import List, Optional

import torch.distributed as dist


def _seconds(name: str) -> Optional[datetime.timedelta]:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) == 0:
        raise ValueError(f"{name}={text!r}: expected a positive whole number of seconds")
    return datetime.timedelta(seconds=int(text))


def connect_timeout(timeout: datetime.timedelta) -> datetime.timedelta:
    return _seconds("HCCL_CONNECT_TIMEOUT") or timeout


def exec_timeout(timeout: datetime.timedelta) -> datetime.timedelta:
    env = _seconds("HCCL_EXEC_TIMEOUT")
    return min(timeout, env) if env else timeout


def pick_interface(spec: str, names: List[str]) -> str:
    """The first of ``names`` that HCCL_SOCKET_IFNAME's ``spec`` selects."""
    rule = spec
    exclude = rule.startswith("^")
    rule = rule[1:] if exclude else rule
    exact = rule.startswith("=")
    rule = rule[1:] if exact else rule
    wanted = [w.strip() for w in rule.split(",") if w.strip()]
    if not wanted:
        raise ValueError(f"HCCL_SOCKET_IFNAME={spec!r}: names no interface")
    for name in names:
        listed = any(name == w if exact else name.startswith(w) for w in wanted)
        if listed != exclude:
            return name
    raise ValueError(f"HCCL_SOCKET_IFNAME={spec!r}: no network interface of this host matches "
                     f"(it has {', '.join(names) or 'none'})")


def gloo_devices() -> Optional[list]:
    """The Gloo devices HCCL_IF_IP or HCCL_SOCKET_IFNAME ask for, or None for Gloo's default."""
    ip = os.environ.get("HCCL_IF_IP", "").strip()
    if ip:
        return [dist.ProcessGroupGloo.create_device(hostname=ip)]
    spec = os.environ.get("HCCL_SOCKET_IFNAME", "").strip()
    if spec:
        names = [name for _, name in socket.if_nameindex()]
        return [dist.ProcessGroupGloo.create_device(interface=pick_interface(spec, names))]
    return None


def gloo_group(store, rank: int, size: int, timeout: datetime.timedelta) -> dist.ProcessGroupGloo:
    """The Gloo group under an hccl group: connected within the connect timeout, on the chosen
    interface."""
    devices = gloo_devices()
    if devices is None:  # Gloo picks the interface (and honours GLOO_SOCKET_IFNAME)
        return dist.ProcessGroupGloo(store, rank, size, connect_timeout(timeout))
    opts = dist.ProcessGroupGloo._Options()
    opts._devices = devices
    opts._timeout = connect_timeout(timeout)
    opts._threads = 2 * len(devices)
    return dist.ProcessGroupGloo(store, rank, size, opts)
