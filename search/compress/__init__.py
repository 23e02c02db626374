"""Compression: structured pruning, weight quantization, packing, int8 kernels, latency.

Pruning removes channels for real (torch-pruning), quantization is fake-quant with a
straight-through estimator while training and attacking, packing stores sub-8-bit
weights at their width (the size objective), int8 kernels time the deployable form,
the ONNX files a member ships (float, and int8 in QDQ form with the trial's own codes)
run in onnxruntime sessions, and `load_model` rebuilds an exported member from its
safetensors file.
"""

from typing import TYPE_CHECKING

from search.core._lazy import lazy_exports

if TYPE_CHECKING:
    from search.compress._file_names import WEIGHTS
    from search.compress._int8 import (
        FORM,
        form_name,
        int8_applicable,
        int8_engine,
        to_int8,
    )
    from search.compress._latency import (
        FLOAT_FORM,
        LatencyStats,
        calibration_batches,
        deployable,
        measure_latency,
        measure_onnx_latency,
        time_module,
        time_session,
    )
    from search.compress._loading import load_model, load_model_with_info
    from search.compress._onnx import (
        FLOAT_ONNX,
        INT8_ONNX,
        ORT_FLOAT_FORM,
        ORT_INT8_FORM,
        OrtModule,
        float_onnx,
        ort_session,
        save_onnx,
        shipped_onnx,
    )
    from search.compress._packing import (
        PACKED,
        SCALE,
        load_packed,
        pack_codes,
        packed_tensors,
        save_packed,
        size_bytes,
        unpack_codes,
    )
    from search.compress._pruning import (
        PRUNABLE,
        layer_widths,
        out_width,
        prunable_layers,
        prune,
        prune_to_widths,
        weighted_layers,
    )
    from search.compress._qdq import fold_batchnorm, int8_onnx, weight_codes
    from search.compress._quantization import (
        FLOAT_BITS,
        FakeQuantWeight,
        bake,
        channel_scale,
        layer_bits,
        quant_range,
        quantize_tensor,
        quantize_weights,
    )

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
