"""npu_fusion_attention and npu_fusion_attention_grad as registered operators
(``torch.ops.npu.*``): CompositeImplicitAutograd over the blocked attention kernel (see
``torch_npu.fusion_attention``), so autograd flows through the forward and FakeTensor traces it."""
from .. import fusion_attention as _fa
from ._registry import composite

_COMMON = ("int pre_tockens=2147483647, int next_tockens=2147483647, int inner_precise=0, int[]? prefix=None, "
           "int[]? actual_seq_qlen=None, int[]? actual_seq_kvlen=None, int sparse_mode=0, "
           "bool gen_mask_parallel=True, bool sync=False, str softmax_layout=\"\"")


@composite("npu_fusion_attention(Tensor query, Tensor key, Tensor value, int head_num, str input_layout, "
           "Tensor? pse=None, Tensor? padding_mask=None, Tensor? atten_mask=None, float scale=1.0, "
           f"float keep_prob=1.0, {_COMMON}) -> (Tensor, Tensor, Tensor, Tensor, int, int, int)")
def npu_fusion_attention(*args, **kwargs):
    return _fa.npu_fusion_attention(*args, **kwargs)


@composite("npu_fusion_attention_grad(Tensor query, Tensor key, Tensor value, Tensor dy, int head_num, "
           "str input_layout, *, Tensor? pse=None, Tensor? padding_mask=None, Tensor? atten_mask=None, "
           "Tensor? softmax_max=None, Tensor? softmax_sum=None, Tensor? softmax_in=None, Tensor? attention_in=None, "
           "float scale_value=1.0, float keep_prob=1.0, int pre_tockens=2147483647, int next_tockens=2147483647, "
           "int inner_precise=0, int seed=0, int offset=0, int numels=0, int[]? prefix=None, "
           "int[]? actual_seq_qlen=None, int[]? actual_seq_kvlen=None, int sparse_mode=0, "
           "bool gen_mask_parallel=True, bool sync=False, str softmax_layout=\"\", Tensor? sink=None) "
           "-> (Tensor, Tensor, Tensor, Tensor, Tensor)")
def npu_fusion_attention_grad(*args, **kwargs):
    return _fa.npu_fusion_attention_grad(*args, **kwargs)
