// Quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, and the integer
// products MatMulInteger, ConvInteger, QLinearMatMul and QLinearConv (uint8 and int8), and
// kiln.QuantizeDequantize (a Q → DQ pair, on the compiled activation kernel).
// Schemas: Quantize+Schemas.swift; reference kernels: Quantize+Reference.swift.

private let quantizedGradient = GradientRule.none("Kiln does not train through quantized values")

let quantizeDefinitions: [OpDefinition] = [
    define(quantizeLinearSchema, quantizeLinearReference, types: .all, flops: .perOutput(2), gradient: quantizedGradient,
           lowering: .reference),
    define(dequantizeLinearSchema, dequantizeLinearReference, types: .all, flops: .perOutput(2), gradient: quantizedGradient,
           lowering: .reference),
    define(dynamicQuantizeLinearSchema, dynamicQuantizeLinearReference, types: .all, flops: .perInput, gradient: quantizedGradient,
           lowering: .reference),
    define(matMulIntegerSchema, matMulIntegerReference, types: .all, flops: matMulFlops, gradient: quantizedGradient, lowering: .reference),
    define(qLinearMatMulSchema, qLinearMatMulReference, types: .all, flops: matMulFlops, gradient: quantizedGradient, lowering: .reference),
    define(convIntegerSchema, convIntegerReference, types: .all, flops: convolutionFlops(weight: 1), gradient: quantizedGradient,
           lowering: .reference),
    define(quantizeDequantizeSchema, quantizeDequantizeReference, types: .floats, flops: .perOutput(4), gradient: quantizedGradient,
           lowering: .kernel(.activation)),
    define(qLinearConvSchema, qLinearConvReference, types: .all, flops: convolutionFlops(weight: 3), gradient: quantizedGradient,
           lowering: .reference),
]
