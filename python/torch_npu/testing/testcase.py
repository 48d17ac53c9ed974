"""``TestCase`` and ``run_tests`` for npu operator tests, with torch_npu's comparison rules:

* ``assertRtolEqual(x, y, prec=1e-4, prec16=1e-3)`` compares NumPy arrays (or tensors,
  numbers, sequences of them) of one shape and dtype. NaNs must sit at the same places. An
  element passes the relative test when ``|x - y| / (max(|x|, |y|) + tiny) <= prec`` and the
  absolute one when ``|x - y| <= prec`` (``prec16`` and a tiny of 6e-8 for float16, else
  ``prec`` and 1e-9). The check fails only if both tests fail for more than ``prec * size``
  elements. bfloat16 tensors use ``torch.allclose(rtol=prec16, atol=prec16)``; bools must be
  equal.
* ``assertEqual(x, y, prec=None)`` compares tensors by their largest absolute difference
  (``prec``, default ``self.precision`` = 1e-5), numbers by their difference, and containers
  element by element.
"""
import inspect
import os
import random
import re
import sys
import unittest
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import contextmanager
from numbers import Number

import expecttest
import numpy as np
import torch

from .common_utils import is_iterable, iter_indices, set_npu_device

__all__ = ["TestCase", "run_tests"]


def run_tests():
    """unittest.main for the calling test file (an XML report under TEST_REPORT_PATH when
    IN_CI=1 and xmlrunner is installed)."""
    argv = sys.argv
    if os.getenv("IN_CI") == "1":
        try:
            import xmlrunner
        except ImportError:
            xmlrunner = None
        if xmlrunner is not None:
            path = re.sub(r"\.py$", "", inspect.getfile(sys._getframe(1))).replace("/", ".")
            out = os.path.join(os.getenv("TEST_REPORT_PATH", "test-reports"), path)
            unittest.main(argv=argv, testRunner=xmlrunner.XMLTestRunner(output=out))
            return
    unittest.main(argv=argv)


_RTOL_DTYPES = (np.bool_, np.uint16, np.int16, np.int32, np.float16, np.float32, np.int8, np.uint8, np.int64,
                np.float64)


class TestCase(expecttest.TestCase):
    _precision = 1e-5
    maxDiff = None
    exact_dtype = False

    @property
    def precision(self):
        return self._precision

    @precision.setter
    def precision(self, prec):
        self._precision = prec

    @classmethod
    def setUpClass(cls):
        cls.npu_device = set_npu_device()

    def setUp(self):
        seed = int(os.getenv("SEED", "666"))
        torch.manual_seed(seed)
        random.seed(seed)

    # ---- torch_npu's relative comparison ----
    def assertRtolEqual(self, x, y, prec=1.0e-4, prec16=1.0e-3, auto_trans_dtype=False, message=None):
        if isinstance(x, Sequence) and isinstance(y, Sequence) and not isinstance(x, (str, bytes)):
            for a, b in zip(x, y):
                self.assertRtolEqual(a, b, prec, prec16, auto_trans_dtype, message)
            return
        if isinstance(x, torch.Tensor) and isinstance(y, Sequence):
            y = torch.as_tensor(y, dtype=x.dtype, device=x.device)
        elif isinstance(x, Sequence) and isinstance(y, torch.Tensor):
            x = torch.as_tensor(x, dtype=y.dtype, device=y.device)
        if torch.is_tensor(x) and torch.is_tensor(y):
            if auto_trans_dtype:
                x = x.to(y.dtype)
            if x.dtype == torch.bfloat16 and y.dtype == torch.bfloat16:
                if x.shape != y.shape:
                    self.fail(message or f"shape error: {tuple(x.shape)} vs {tuple(y.shape)}")
                if not torch.allclose(x.detach().cpu(), y.detach().cpu(), rtol=prec16, atol=prec16):
                    self.fail(message or "result error")
                return
            x, y = x.detach().cpu().numpy(), y.detach().cpu().numpy()
        elif isinstance(x, Number) and isinstance(y, Number):
            x, y = np.array(x), np.array(y)
        if x.shape != y.shape:
            self.fail(message or f"shape error: {x.shape} vs {y.shape}")
        if x.dtype != y.dtype:
            self.fail(message or f"dtype error: {x.dtype} vs {y.dtype}")
        if x.dtype.type not in _RTOL_DTYPES:
            self.fail(message or f"assertRtolEqual does not compare {x.dtype}")
        if x.dtype == np.bool_:
            if not np.equal(x, y).all():
                self.fail(message or "result error")
            return
        bound, tiny = (prec16, 6e-8) if x.dtype == np.float16 else (prec, 1e-9)
        self._compare_rtol(x, y, bound, tiny, message)

    def _compare_rtol(self, x, y, bound, tiny, message):
        x, y = np.atleast_1d(x), np.atleast_1d(y)
        nan = np.isnan(x) if np.issubdtype(x.dtype, np.floating) else np.zeros(x.shape, dtype=bool)
        if not np.equal(nan, np.isnan(y) if np.issubdtype(y.dtype, np.floating) else False).all():
            self.fail(message or "NaNs at different places")
        diff = np.abs(y.astype(np.float64) - x.astype(np.float64))
        diff[nan] = 0
        scale = np.maximum(np.abs(x.astype(np.float64)), np.abs(y.astype(np.float64)))
        abs_bad = np.count_nonzero(~(diff <= bound))
        rel_bad = np.count_nonzero(~(diff / (scale + tiny) <= bound))
        allowed = x.size * bound
        if rel_bad and abs_bad and rel_bad > allowed and abs_bad > allowed:
            worst = np.unravel_index(np.argmax(diff), diff.shape) if diff.size else ()
            self.fail(message or f"result error: {rel_bad} of {x.size} elements differ beyond {bound} "
                                 f"(largest difference {diff[worst] if diff.size else 0} at {worst})")

    # ---- torch_npu's absolute comparison ----
    def assertEqual(self, x, y, prec=None, message="", allow_inf=False, exact_dtype=None):
        if exact_dtype is None:
            exact_dtype = self.exact_dtype
        if isinstance(prec, str) and message == "":
            message, prec = prec, None
        if prec is None:
            prec = self.precision
        self._equal(x, y, prec, message, allow_inf, exact_dtype)

    def _equal(self, x, y, prec, message, allow_inf, exact_dtype):
        if isinstance(x, Number) or isinstance(y, Number):
            self._equal_numbers(x, y, prec, message, allow_inf)
        elif isinstance(x, np.bool_) or isinstance(y, np.bool_):
            x = x.item() if isinstance(x, torch.Tensor) else x
            y = y.item() if isinstance(y, torch.Tensor) else y
            unittest.TestCase.assertEqual(self, x, y, message)
        elif isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            self._equal_tensors(x, y, prec, message, allow_inf, exact_dtype)
        elif isinstance(x, (str, bytes)) and isinstance(y, (str, bytes)):
            unittest.TestCase.assertEqual(self, x, y, message)
        elif type(x) is set and type(y) is set:
            unittest.TestCase.assertEqual(self, x, y, message)
        elif isinstance(x, dict) and isinstance(y, dict):
            if isinstance(x, OrderedDict) and isinstance(y, OrderedDict):
                self._equal(list(x.items()), list(y.items()), prec, message, allow_inf, exact_dtype)
            else:
                self._equal(set(x), set(y), prec, message, allow_inf, exact_dtype)
                self._equal([x[k] for k in x], [y[k] for k in x], prec, message, allow_inf, exact_dtype)
        elif is_iterable(x) and is_iterable(y):
            unittest.TestCase.assertEqual(self, len(x), len(y), message)
            for a, b in zip(x, y):
                self._equal(a, b, prec, message, allow_inf, exact_dtype)
        else:
            unittest.TestCase.assertEqual(self, x, y, message)

    def _equal_numbers(self, x, y, prec, message, allow_inf):
        x = x.item() if isinstance(x, torch.Tensor) else x
        y = y.item() if isinstance(y, torch.Tensor) else y
        if abs(x) == float("inf") or abs(y) == float("inf"):
            if not allow_inf:
                self.fail(f"Expected finite numeric values - x={x}, y={y}")
            unittest.TestCase.assertEqual(self, x, y, message)
            return
        self.assertLessEqual(abs(x - y), prec, message)

    def _equal_tensors(self, a, b, prec, message, allow_inf, exact_dtype):
        unittest.TestCase.assertEqual(self, a.is_sparse, b.is_sparse, message)
        if a.is_sparse:
            a, b = a.coalesce(), b.coalesce()
            self._equal_tensors(a._indices(), b._indices(), prec, message, allow_inf, exact_dtype)
            self._equal_tensors(a._values(), b._values(), prec, message, allow_inf, exact_dtype)
            return
        unittest.TestCase.assertEqual(self, a.size(), b.size(), message)
        if exact_dtype:
            unittest.TestCase.assertEqual(self, a.dtype, b.dtype, message)
        if a.numel() == 0:
            return
        if (a.dtype == torch.bool) != (b.dtype == torch.bool):
            raise TypeError("Was expecting both tensors to be bool type.")
        a = a.detach().cpu()
        b = b.detach().cpu()
        if a.dtype in (torch.float16, torch.bfloat16):
            a = a.float()
        b = b.to(a.dtype)
        if a.dtype == torch.bool:
            a, b = a.int(), b.int()
        diff = a - b
        if a.is_floating_point() or a.is_complex():
            nan = torch.isnan(a)
            self.assertTrue(torch.equal(nan, torch.isnan(b)), message)
            diff[nan] = 0
            if allow_inf:
                inf = torch.isinf(a)
                self.assertTrue(torch.equal(inf, torch.isinf(b)) and torch.equal(a[inf], b[inf]), message)
                diff[inf] = 0
        if diff.is_signed() and diff.dtype != torch.int8:
            diff = diff.abs()
            if diff.is_complex():
                diff = diff.real
        self.assertLessEqual(diff.max().item(), prec, message)

    def assertAlmostEqual(self, x, y, places=None, msg=None, delta=None, allow_inf=None):
        prec = 10 ** (-places) if places else delta
        self.assertEqual(x, y, prec, msg or "", bool(allow_inf))

    def assertNotEqual(self, x, y, prec=None, message=""):
        if isinstance(prec, str) and message == "":
            message, prec = prec, None
        if prec is None:
            prec = self.precision
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            if x.size() != y.size():
                return
            self.assertGreater(x.numel(), 0)
            x, y = x.detach().cpu(), y.detach().cpu().type_as(x.detach().cpu())
            if x.dtype == torch.bool:
                x, y = x.int(), y.int()
            nan = x != x
            if torch.equal(nan, y != y):
                diff = (x - y).abs() if (x - y).is_signed() else x - y
                diff[nan] = 0
                self.assertGreaterEqual(diff.max().item(), prec, message)
        elif isinstance(x, str) and isinstance(y, str) or is_iterable(x) and is_iterable(y):
            unittest.TestCase.assertNotEqual(self, x, y)
        else:
            try:
                self.assertGreaterEqual(abs(x - y), prec, message)
                return
            except (TypeError, AssertionError):
                pass
            unittest.TestCase.assertNotEqual(self, x, y, message)

    def assertTensorsSlowEqual(self, x, y, prec=None, message=""):
        self.assertEqual(x.size(), y.size())
        self.assertEqual(x.dtype, y.dtype)
        y = y.type_as(x)
        if x.dtype == torch.bool:
            self.assertEqual(x, y)
            return
        worst = max((abs(x[i] - y[i]) for i in iter_indices(x)), default=0)
        self.assertLessEqual(worst, prec, message)

    def assertObjectIn(self, obj, iterable):
        if not any(id(obj) == id(e) for e in iterable):
            raise AssertionError("object not found in iterable")

    def assertExpectedRaises(self, exc_type, call_fn, *args, **kwargs):
        subname = kwargs.pop("subname", None)
        try:
            call_fn(*args, **kwargs)
        except exc_type as e:
            self.assertExpected(str(e), subname)
            return
        self.fail(msg="Did not raise when expected to")

    def assertNotWarn(self, call_fn, msg=""):
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter("always")
            call_fn()
        self.assertTrue(len(ws) == 0, msg)

    def assertWarns(self, call_fn, msg=""):
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter("always")
            call_fn()
        self.assertTrue(len(ws) > 0, msg)

    @contextmanager
    def maybeWarnsRegex(self, category, regex=""):
        """Fails on any warning raised inside except those of ``category`` matching ``regex``."""
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter("always")
            warnings.filterwarnings("ignore", message=regex, category=category)
            try:
                yield
            finally:
                if ws:
                    self.fail("Caught unexpected warnings:\n" + "".join(
                        warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line) for w in ws))

    def assertExpectedStripMangled(self, s, subname=None):
        self.assertExpected(re.sub(r"__torch__[^ ]+", "", s), subname)
