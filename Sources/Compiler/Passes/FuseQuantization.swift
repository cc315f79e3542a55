import Graph

extension Pass {
    /// A QuantizeLinear whose only reader is a DequantizeLinear of the same per-tensor scale
    /// and zero point (how QDQ models carry an activation's quantization, as onnxruntime's
    /// quantizer and `kiln quantize` write them) becomes one kiln.QuantizeDequantize: the
    /// values rounded to the quantization grid in one pass over memory on the compiled
    /// activation kernel. Weights' DequantizeLinear nodes (on constants) are folded by
    /// fold-constants before this pass.
    public static let fuseQuantization = Pass("fuse-quantization", summary: "turn QuantizeLinear → DequantizeLinear pairs into one step") { g in
        eliminateDeadCode(Rewriter.apply(quantizeDequantizeRule, to: g))
    }
}

/// The per-tensor scale and zero point of a QuantizeLinear or DequantizeLinear (inputs 1 and
/// 2) and its 8-bit type, when they are constants.
private func perTensorQuantization(_ n: Node, type: DType, _ ctx: RewriteContext) -> (scale: Float, zero: Int, type: DType)? {
    guard n.inputs.count >= 2, n.intAttribute("block_size", 0) == 0, let scale = ctx.scalar(n.inputs[1]) else { return nil }
    guard n.inputs.count > 2, !n.inputs[2].isEmpty else { return (scale, 0, type) }
    guard let z = ctx.parameters[n.inputs[2]]?.initializer.tensor, z.count == 1, z.dtype == type else { return nil }
    return (scale, Int(z.int64s[0]), type)
}

let quantizeDequantizeRule = RewriteRule("quantize-dequantize", root: { n, ctx in
    guard n.domain.isEmpty, n.op == "QuantizeLinear", ctx.types[n.inputs[0]]?.dtype == .f32, let t = n.outputs.first?.type.dtype,
          let q = perTensorQuantization(n, type: t, ctx) else { return false }
    return q.scale.isFinite && q.scale > 0
}, links: [
    .init(.one) { d, q, ctx in
        guard d.domain.isEmpty, d.op == "DequantizeLinear", d.inputs.first == q.outputs[0].name, d.outputs.first?.type.dtype == .f32,
              d.intAttribute("output_dtype", 0) == 0 || d.intAttribute("output_dtype", 0) == Int(DType.f32.onnxCode),
              let t = q.outputs.first?.type.dtype, let a = perTensorQuantization(q, type: t, ctx), let b = perTensorQuantization(d, type: t, ctx)
        else { return false }
        return a == b
    },
], replace: { m, ctx in
    guard let t = m.root.outputs.first?.type.dtype, let q = perTensorQuantization(m.root, type: t, ctx) else { return nil }
    let range = t == .i8 ? (-128, 127) : (0, 255)
    return Node(name: m.root.name, op: "QuantizeDequantize", domain: "kiln", inputs: [m.root.inputs[0]], outputs: m.last.outputs,
                attributes: ["scale": .float(q.scale), "zero_point": .int(q.zero), "qmin": .int(range.0), "qmax": .int(range.1)])
})
