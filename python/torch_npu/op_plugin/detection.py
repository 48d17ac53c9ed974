"""Box geometry: npu_iou / npu_ptiou (IoU or IoF of boxes given as x0, y0, x1, y1)."""
import torch

from ._registry import composite


def _iou(bboxes, gtboxes, mode):
    if mode not in (0, 1):
        raise RuntimeError(f"npu_iou: mode must be 0 (IoU) or 1 (IoF), got {mode}")
    b, g = bboxes.float(), gtboxes.float()
    # rows: ground truths, columns: boxes (torch_npu's [gt, box] order)
    lt = torch.maximum(g[:, None, :2], b[None, :, :2])
    rb = torch.minimum(g[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    area_g = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1])
    denom = area_g[:, None] + area_b[None, :] - inter if mode == 0 else area_g[:, None].expand_as(inter)
    return (inter / denom.clamp(min=torch.finfo(torch.float32).tiny)).to(bboxes.dtype)


@composite("npu_iou(Tensor bboxes, Tensor gtboxes, int mode=0) -> Tensor")
def npu_iou(bboxes, gtboxes, mode=0):
    return _iou(bboxes, gtboxes, mode)


@composite("npu_ptiou(Tensor bboxes, Tensor gtboxes, int mode=0) -> Tensor")
def npu_ptiou(bboxes, gtboxes, mode=0):
    return _iou(bboxes, gtboxes, mode)
