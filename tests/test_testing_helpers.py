"""torch_npu.testing: a test written the way torch_npu's operator tests are (TestCase,
create_common_tensor, assertRtolEqual, Dtypes/Formats, run_tests) runs unchanged, and the
comparison rules pass and fail where torch_npu's do."""
import unittest

import numpy as np
import pytest
import torch

import torch_npu
from torch_npu.testing.common_utils import SupportedDevices, create_common_tensor, create_dtype_tensor
from torch_npu.testing.decorator import Dtypes, Formats, instantiate_tests
from torch_npu.testing.testcase import TestCase

from conftest import run_python


class TestAddLikeTorchNpu(TestCase):
    """The shape of a torch_npu operator test."""

    def cpu_op_exec(self, a, b):
        return torch.add(a, b).numpy()

    def npu_op_exec(self, a, b):
        return torch.add(a, b).to("cpu").numpy()

    def test_add_shape_format(self):
        for item in [[np.float32, 0, (4, 3, 5, 5)], [np.float32, 2, (64, 10)], [np.float16, -1, (7, 9)],
                     [np.int32, -1, (3, 3)]]:
            cpu_a, npu_a = create_common_tensor(item, -10, 10)
            cpu_b, npu_b = create_common_tensor(item, -10, 10)
            if item[0] == np.float16:
                cpu_a, cpu_b = cpu_a.float(), cpu_b.float()
                self.assertRtolEqual(self.cpu_op_exec(cpu_a, cpu_b).astype(np.float16), self.npu_op_exec(npu_a, npu_b))
            else:
                self.assertRtolEqual(self.cpu_op_exec(cpu_a, cpu_b), self.npu_op_exec(npu_a, npu_b))

    @Dtypes(torch.float, torch.half)
    @Formats(0, 2)
    def test_mul(self, dtype, npu_format, device):
        cpu, npu = create_dtype_tensor((4, 5, 2, 2), dtype, npu_format, device=device)
        self.assertEqual((npu * 2).cpu(), cpu * 2)

    @SupportedDevices(["Ascend910B"])
    def test_only_on_910b(self):
        self.assertEqual(torch.ones(2, device="npu").sum(), 2)

    @SupportedDevices(["Ascend310P"])
    def test_only_on_310p(self):
        raise AssertionError("must be skipped on the default SoC")


instantiate_tests(TestAddLikeTorchNpu)


def test_instantiated_names():
    names = {n for n in dir(TestAddLikeTorchNpu) if n.startswith("test_mul")}
    assert names == {"test_mul_float32_0", "test_mul_float32_2", "test_mul_float16_0", "test_mul_float16_2"}


def test_supported_devices_skips():
    result = unittest.TestResult()
    TestAddLikeTorchNpu("test_only_on_310p").run(result)
    assert len(result.skipped) == 1 and not result.failures and "Ascend310P" in result.skipped[0][1]


class Rules(TestCase):
    def runTest(self):
        pass


@pytest.fixture
def tc():
    return Rules()


def test_rtol_rules(tc):
    a = np.linspace(1, 2, 10000).astype(np.float32)
    tc.assertRtolEqual(a, a * (1 + 5e-5))                      # within prec
    b = a.copy()
    b[:1] *= 1.5                                                 # 1 of 10000: within prec * size
    tc.assertRtolEqual(a, b)
    b[:5] *= 1.5                                                 # 5 > 1e-4 * 10000
    with pytest.raises(AssertionError, match="result error"):
        tc.assertRtolEqual(a, b)
    h = np.linspace(1, 2, 100).astype(np.float16)
    tc.assertRtolEqual(h, np.nextafter(h, np.float16(3)))     # one ulp: within prec16 for float16
    with pytest.raises(AssertionError):
        tc.assertRtolEqual(h.astype(np.float32), np.nextafter(h, np.float16(3)).astype(np.float32))
    with pytest.raises(AssertionError, match="dtype error"):
        tc.assertRtolEqual(a, a.astype(np.float64))
    with pytest.raises(AssertionError, match="shape error"):
        tc.assertRtolEqual(a, a[:10])
    n = a.copy()
    n[3] = np.nan
    with pytest.raises(AssertionError, match="NaN"):
        tc.assertRtolEqual(a, n)
    tc.assertRtolEqual(n, n.copy())
    x = torch.randn(100, dtype=torch.bfloat16)
    tc.assertRtolEqual(x.npu(), x)                               # bf16: allclose
    with pytest.raises(AssertionError):
        tc.assertRtolEqual(x, x + 1)
    tc.assertRtolEqual([1.0, torch.ones(3)], [1.0, torch.ones(3)])
    with pytest.raises(AssertionError):
        tc.assertRtolEqual(np.array([True, False]), np.array([True, True]))


def test_equal_rules(tc):
    tc.assertEqual(torch.ones(3, device="npu"), torch.ones(3) + 5e-6)       # default precision 1e-5
    with pytest.raises(AssertionError):
        tc.assertEqual(torch.ones(3), torch.ones(3) + 1e-3)
    tc.assertEqual(torch.ones(3), torch.ones(3) + 1e-3, prec=1e-2)
    tc.assertEqual({"a": torch.zeros(2), "b": [1, 2.0]}, {"a": torch.zeros(2), "b": [1, 2.0]})
    with pytest.raises(AssertionError, match="Expected finite"):
        tc.assertEqual(float("inf"), float("inf"))
    tc.assertEqual(float("inf"), float("inf"), allow_inf=True)
    with pytest.raises(TypeError, match="bool"):
        tc.assertEqual(torch.ones(2, dtype=torch.bool), torch.ones(2))
    tc.assertNotEqual(torch.ones(3), torch.zeros(3))
    with pytest.raises(AssertionError):
        tc.assertNotEqual(torch.ones(3), torch.ones(3))


def test_create_common_tensor_formats_and_ranges():
    prev = torch.npu.config.allow_internal_format
    torch.npu.config.allow_internal_format = True
    try:
        cpu, npu = create_common_tensor([np.float16, 29, (5, 33)], -2, 3)
        assert cpu.dtype == npu.dtype == torch.float16 and npu.device.type == "npu"
        assert torch_npu.get_npu_format(npu) == torch_npu.Format.FRACTAL_NZ
        # drawn in [-2, 3) in float64; rounding to float16 can reach 3.0 (as in torch_npu)
        assert torch.equal(npu.cpu(), cpu) and cpu.min() >= -2 and cpu.max() <= 3
        cpu, npu = create_dtype_tensor((6, 7), torch.int32, no_zero=True, min_value=-1, max_value=1)
        assert npu.dtype == torch.int32 and (cpu != 0).all() and torch.equal(npu.cpu(), cpu)
    finally:
        torch.npu.config.allow_internal_format = prev


def test_run_tests_runs_a_test_file():
    out = run_python("""
        import torch, torch_npu
        from torch_npu.testing.testcase import TestCase, run_tests
        class T(TestCase):
            def test_ok(self):
                self.assertRtolEqual(torch.ones(2, device="npu").cpu().numpy(), torch.ones(2).numpy())
            def test_bad(self):
                self.assertRtolEqual(torch.ones(2).numpy(), torch.zeros(2).numpy())
        if __name__ == "__main__":
            run_tests()
    """)
    assert out.returncode == 1 and "Ran 2 tests" in out.stderr and "failures=1" in out.stderr, out.stderr
