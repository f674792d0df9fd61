"""The native prefetching row gather equals ``weight[idx]`` and refuses what it cannot do."""
import pytest
import torch

from cogsim.engram import native_gather
from cogsim.engram.tables import gather_rows

pytestmark = pytest.mark.skipif(native_gather.library() is None, reason="no C compiler: native gather unavailable")


@pytest.mark.parametrize("dim,dtype", [(64, torch.float32), (3, torch.float32), (16, torch.float64), (8, torch.int64)])
def test_rows_equal_index_select_any_order_and_repeats(dim, dtype):
    g = torch.Generator().manual_seed(0)
    weight = (torch.randn(1000, dim, generator=g) * 100).to(dtype)
    for idx in (torch.randint(0, 1000, (257,), generator=g), torch.tensor([999, 0, 5, 5, 999]),
                torch.arange(1000).flip(0), torch.zeros(0, dtype=torch.int64)):
        out = torch.full((len(idx), dim), -1).to(dtype)
        assert native_gather.gather(weight, idx, out)
        assert torch.equal(out, weight[idx])
        assert torch.equal(gather_rows(weight, idx), weight[idx])


def test_out_of_range_rows_raise_instead_of_reading_memory():
    weight = torch.randn(10, 4)
    with pytest.raises(IndexError, match="10 rows"):
        native_gather.gather(weight, torch.tensor([3, 10]), torch.empty(2, 4))
    with pytest.raises(IndexError):
        native_gather.gather(weight, torch.tensor([-1]), torch.empty(1, 4))


def test_layouts_it_does_not_handle_fall_back_to_torch():
    weight = torch.randn(10, 8)
    assert not native_gather.gather(weight.t(), torch.tensor([1]), torch.empty(1, 10))  # not contiguous
    assert not native_gather.gather(weight, torch.tensor([1], dtype=torch.int32), torch.empty(1, 8))
    assert not native_gather.gather(weight, torch.tensor([1, 2]), torch.empty(3, 8))  # wrong out shape
    strided = torch.randn(10, 16)[:, ::2]
    assert torch.equal(gather_rows(strided, torch.tensor([4, 1])), strided[[4, 1]])
