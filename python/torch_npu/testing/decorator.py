"""``@Dtypes(...)``, ``@Formats(...)`` and ``@instantiate_tests``: one test per dtype and format
combination, named ``<test>_<format>_<dtype>``, as torch_npu's operator tests use them."""
import functools
import inspect
import itertools

import torch

__all__ = ["Dtypes", "Formats", "instantiate_tests"]


class Dtypes:
    def __init__(self, *args):
        if not args:
            raise RuntimeError("No dtypes given")
        if not all(isinstance(a, torch.dtype) for a in args):
            raise RuntimeError(f"Unknown dtype in {args}")
        self.args = args

    def __call__(self, fn):
        fn.dtypes = self.args
        return fn


class Formats:
    def __init__(self, *args):
        if not args:
            raise RuntimeError("No formats given")
        self.args = args

    def __call__(self, fn):
        fn.formats = self.args
        return fn


def _bind(func, name, kwargs):
    @functools.wraps(func)
    def test(self):
        return func(self, **kwargs)
    test.__name__ = name
    return test


def instantiate_tests(cls=None, **_):
    """Replaces each test decorated with Dtypes/Formats by one test per combination; the
    values go to the test's parameters whose names contain ``dtype`` / ``format``, and
    ``device="npu"`` to a ``device`` parameter."""
    def wrap(cls):
        for name, func in list(cls.__dict__.items()):
            axes = {k: getattr(func, attr) for k, attr in (("dtype", "dtypes"), ("format", "formats"))
                    if hasattr(func, attr)}
            if not axes:
                continue
            params = inspect.getfullargspec(func).args
            for values in itertools.product(*axes.values()):
                kwargs = {"device": "npu"} if "device" in params else {}
                test_name = name
                for key, value in zip(axes, values):
                    test_name += "_" + (str(value).split(".")[1] if key == "dtype" else str(value))
                    matches = [p for p in params if key in p]
                    if len(matches) > 1:
                        raise RuntimeError(f"Multiple matches for {key}")
                    if matches:
                        kwargs[matches[0]] = value
                setattr(cls, test_name, _bind(func, test_name, kwargs))
            delattr(cls, name)
        return cls
    return wrap(cls) if cls is not None else wrap
