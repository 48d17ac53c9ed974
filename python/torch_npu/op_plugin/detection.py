"""Boxes: npu_iou / npu_ptiou, npu_nms_v4, npu_batch_nms, npu_roi_align, npu_bounding_box_encode / decode
(boxes as x0, y0, x1, y1)."""
import math

import torch

from ._registry import composite, opaque


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


def _pairwise_iou(boxes):
    """IoU of every pair of boxes (corners in either order, as TensorFlow)."""
    b = boxes.float()
    lo, hi = torch.minimum(b[:, :2], b[:, 2:]), torch.maximum(b[:, :2], b[:, 2:])
    area = (hi - lo).prod(-1)
    inter = (torch.minimum(hi[:, None], hi[None]) - torch.maximum(lo[:, None], lo[None])).clamp(min=0).prod(-1)
    return inter / (area[:, None] + area[None] - inter).clamp(min=torch.finfo(torch.float32).tiny)


def _greedy_nms(boxes, scores, limit, iou_threshold, score_threshold):
    """Indices of the boxes greedy NMS keeps: by descending score (ties by index), scores above
    score_threshold, none overlapping a kept box by more than iou_threshold, at most limit."""
    over = (_pairwise_iou(boxes) > iou_threshold).cpu()
    host_scores = scores.float().cpu()
    kept = []
    for i in torch.argsort(host_scores, descending=True, stable=True).tolist():
        if len(kept) == limit or host_scores[i] <= score_threshold:
            break
        if not any(over[i, j] for j in kept):
            kept.append(i)
    return kept


def _nms_v4_fake(self, scores, max_output_size, iou_threshold, scores_threshold, pad_to_max_output_size=False):
    count = int(max_output_size) if pad_to_max_output_size else torch.library.get_ctx().new_dynamic_size()
    return self.new_empty((count,), dtype=torch.int32), self.new_empty((), dtype=torch.int32)


@opaque("npu_nms_v4(Tensor self, Tensor scores, Scalar max_output_size, Tensor iou_threshold, "
        "Tensor scores_threshold, bool pad_to_max_output_size=False) -> (Tensor, Tensor)", _nms_v4_fake)
def npu_nms_v4(self, scores, max_output_size, iou_threshold, scores_threshold, pad_to_max_output_size=False):
    """Greedy non-maximum suppression (TensorFlow's NonMaxSuppressionV4): (indices as int32,
    the number of them), padded with 0 to max_output_size on request."""
    limit = int(max_output_size)
    kept = _greedy_nms(self, scores, limit, float(iou_threshold), float(scores_threshold))
    count = len(kept)
    if pad_to_max_output_size:
        kept += [0] * (limit - count)
    return (torch.tensor(kept, dtype=torch.int32, device=self.device),
            torch.tensor(count, dtype=torch.int32, device=self.device))


def _batch_nms_fake(self, scores, score_threshold, iou_threshold, max_size_per_class, max_total_size,
                    change_coordinate_frame=False, transpose_box=False):
    batch = self.shape[0]
    return (self.new_empty((batch, max_total_size, 4)), scores.new_empty((batch, max_total_size)),
            scores.new_empty((batch, max_total_size)), self.new_empty((batch,), dtype=torch.int32))


@opaque("npu_batch_nms(Tensor self, Tensor scores, float score_threshold, float iou_threshold, "
        "int max_size_per_class, int max_total_size, bool change_coordinate_frame=False, "
        "bool transpose_box=False) -> (Tensor, Tensor, Tensor, Tensor)", _batch_nms_fake)
def npu_batch_nms(self, scores, score_threshold, iou_threshold, max_size_per_class, max_total_size,
                  change_coordinate_frame=False, transpose_box=False):
    """Per image and class, greedy NMS (at most max_size_per_class boxes), then the
    max_total_size best of the image: (boxes, scores, classes as floats, count), zero-padded.
    Boxes are (batch, anchors, q, 4) with q = 1 (shared by the classes) or q = classes."""
    if change_coordinate_frame or transpose_box:
        raise NotImplementedError("npu_batch_nms: change_coordinate_frame and transpose_box are not supported yet")
    batch, anchors, q, _ = self.shape
    classes = scores.shape[-1]
    out_boxes = self.new_zeros((batch, max_total_size, 4))
    out_scores = scores.new_zeros((batch, max_total_size))
    out_classes = scores.new_zeros((batch, max_total_size))
    counts = []
    for b in range(batch):
        found = []  # (score, class, anchor)
        for c in range(classes):
            boxes = self[b, :, 0 if q == 1 else c]
            for a in _greedy_nms(boxes, scores[b, :, c], max_size_per_class, iou_threshold, score_threshold):
                found.append((float(scores[b, a, c]), c, a))
        found.sort(key=lambda f: -f[0])
        found = found[:max_total_size]
        for slot, (score, c, a) in enumerate(found):
            out_boxes[b, slot] = self[b, a, 0 if q == 1 else c]
            out_scores[b, slot] = score
            out_classes[b, slot] = c
        counts.append(len(found))
    return out_boxes, out_scores, out_classes, torch.tensor(counts, dtype=torch.int32, device=self.device)


def _roi_align_fake(self, rois, spatial_scale, pooled_height, pooled_width, sample_num, roi_end_mode):
    return self.new_empty((rois.shape[0], self.shape[1], pooled_height, pooled_width))


@opaque("npu_roi_align(Tensor self, Tensor rois, float spatial_scale, int pooled_height, int pooled_width, "
        "int sample_num, int roi_end_mode) -> Tensor", _roi_align_fake, differentiable=(0,))
def npu_roi_align(self, rois, spatial_scale, pooled_height, pooled_width, sample_num, roi_end_mode):
    """RoIAlign of Faster R-CNN: rois are (batch index, x0, y0, x1, y1); each output bin averages
    sample_num x sample_num bilinear samples (adaptive, ceil(bin size), when 0). roi_end_mode 1
    adds 1 to the end corner before scaling (the legacy convention), 0 does not."""
    n, c, h, w = self.shape
    x = self.float()
    outs = []
    for roi in rois.float().unbind(0):
        b = int(roi[0])
        x0, y0 = roi[1] * spatial_scale, roi[2] * spatial_scale
        x1 = (roi[3] + (1 if roi_end_mode == 1 else 0)) * spatial_scale
        y1 = (roi[4] + (1 if roi_end_mode == 1 else 0)) * spatial_scale
        rw, rh = torch.clamp(x1 - x0, min=1.0), torch.clamp(y1 - y0, min=1.0)
        bw, bh = rw / pooled_width, rh / pooled_height
        sy = sample_num if sample_num > 0 else int(torch.ceil(bh))
        sx = sample_num if sample_num > 0 else int(torch.ceil(bw))
        iy = (torch.arange(pooled_height, device=x.device)[:, None] * bh
              + (torch.arange(sy, device=x.device)[None, :] + 0.5) * bh / sy + y0).reshape(-1)
        ix = (torch.arange(pooled_width, device=x.device)[:, None] * bw
              + (torch.arange(sx, device=x.device)[None, :] + 0.5) * bw / sx + x0).reshape(-1)
        samples = _bilinear(x[b], iy, ix, h, w)  # (c, ph*sy, pw*sx)
        outs.append(samples.reshape(c, pooled_height, sy, pooled_width, sx).mean((2, 4)))
    if not outs:
        return self.new_empty((0, c, pooled_height, pooled_width))
    return torch.stack(outs).to(self.dtype)


def _bilinear(img, ys, xs, h, w):
    """img (c, h, w) sampled at the grid ys x xs; points outside [-1, size] read 0, others are
    clamped into the image (RoIAlign's rule)."""
    valid_y = ((ys >= -1.0) & (ys <= h)).to(img.dtype)
    valid_x = ((xs >= -1.0) & (xs <= w)).to(img.dtype)
    y = ys.clamp(min=0)
    x = xs.clamp(min=0)
    y_lo = y.floor().clamp(max=h - 1)
    x_lo = x.floor().clamp(max=w - 1)
    y = torch.where(y_lo >= h - 1, y_lo, y)
    x = torch.where(x_lo >= w - 1, x_lo, x)
    y_hi = (y_lo + 1).clamp(max=h - 1)
    x_hi = (x_lo + 1).clamp(max=w - 1)
    ly, lx = y - y_lo, x - x_lo
    hy, hx = 1 - ly, 1 - lx
    yl, yh, xl, xh = y_lo.long(), y_hi.long(), x_lo.long(), x_hi.long()
    v = (img[:, yl][:, :, xl] * (hy[:, None] * hx[None]) + img[:, yl][:, :, xh] * (hy[:, None] * lx[None])
         + img[:, yh][:, :, xl] * (ly[:, None] * hx[None]) + img[:, yh][:, :, xh] * (ly[:, None] * lx[None]))
    return v * (valid_y[:, None] * valid_x[None])


def _centers(boxes):
    """(cx, cy, w, h) of (x0, y0, x1, y1) boxes, widths counting both end pixels (+1)."""
    b = boxes.float()
    return (b[:, 0] + b[:, 2]) * 0.5, (b[:, 1] + b[:, 3]) * 0.5, b[:, 2] - b[:, 0] + 1.0, b[:, 3] - b[:, 1] + 1.0


@composite("npu_bounding_box_encode(Tensor anchor_box, Tensor ground_truth_box, float means0, float means1, "
           "float means2, float means3, float stds0, float stds1, float stds2, float stds3) -> Tensor")
def npu_bounding_box_encode(anchor_box, ground_truth_box, means0, means1, means2, means3, stds0, stds1, stds2, stds3):
    """Faster R-CNN deltas of ground truths from anchors: ((gx - px) / pw, (gy - py) / ph,
    log(gw / pw), log(gh / ph)), normalized as (delta - mean) / std."""
    px, py, pw, ph = _centers(anchor_box)
    gx, gy, gw, gh = _centers(ground_truth_box)
    deltas = torch.stack([(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], 1)
    means = torch.tensor([means0, means1, means2, means3], device=deltas.device)
    stds = torch.tensor([stds0, stds1, stds2, stds3], device=deltas.device)
    return ((deltas - means) / stds).to(anchor_box.dtype)


@composite("npu_bounding_box_decode(Tensor rois, Tensor deltas, float means0, float means1, float means2, "
           "float means3, float stds0, float stds1, float stds2, float stds3, int[] max_shape, "
           "float wh_ratio_clip) -> Tensor")
def npu_bounding_box_decode(rois, deltas, means0, means1, means2, means3, stds0, stds1, stds2, stds3, max_shape,
                            wh_ratio_clip):
    """Boxes from rois and deltas (the inverse of npu_bounding_box_encode), with dw, dh clipped
    to |log(wh_ratio_clip)| and the corners clamped into an image of max_shape = (h, w)."""
    means = torch.tensor([means0, means1, means2, means3], device=deltas.device)
    stds = torch.tensor([stds0, stds1, stds2, stds3], device=deltas.device)
    d = deltas.float() * stds + means
    limit = abs(math.log(wh_ratio_clip))
    dw, dh = d[:, 2].clamp(-limit, limit), d[:, 3].clamp(-limit, limit)
    px, py, pw, ph = _centers(rois)
    gw, gh = pw * torch.exp(dw), ph * torch.exp(dh)
    gx, gy = px + pw * d[:, 0], py + ph * d[:, 1]
    h, w = max_shape[0], max_shape[1] if len(max_shape) > 1 else max_shape[0]
    boxes = torch.stack([(gx - gw * 0.5 + 0.5).clamp(0, w - 1), (gy - gh * 0.5 + 0.5).clamp(0, h - 1),
                         (gx + gw * 0.5 - 0.5).clamp(0, w - 1), (gy + gh * 0.5 - 0.5).clamp(0, h - 1)], 1)
    return boxes.to(rois.dtype)
