"""torch_npu.testing: the helpers torch_npu's own operator tests are written with
(``testcase.TestCase`` with ``assertRtolEqual``, ``common_utils.create_common_tensor``,
``decorator.Dtypes``/``Formats``), so such tests run unchanged."""
