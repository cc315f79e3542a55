import Graph

extension Pass {
    /// SiLU as exporters write it, Sigmoid(x) → Mul(x, ·), becomes one Swish node (ONNX's
    /// Swish-24 with alpha 1), an activation the epilogue and elementwise fusions then take:
    /// one pass over memory instead of two, and none when a convolution's epilogue takes it.
    public static let fuseSwish = Pass("fuse-swish", summary: "turn Sigmoid(x) · x into Swish (SiLU)") { g in
        eliminateDeadCode(Rewriter.apply(swishRule, to: g))
    }
}

/// Sigmoid(x) read once, by a Mul whose other operand is x.
let swishRule = RewriteRule("swish", root: { n, _ in
    n.domain.isEmpty && n.op == "Sigmoid" && n.inputs.count == 1 && n.outputs.first?.type.dtype == .f32
}, links: [
    .init(.one) { m, previous, _ in
        guard m.domain.isEmpty, m.op == "Mul", m.inputs.count == 2 else { return false }
        let s = previous.outputs[0].name, x = previous.inputs[0]
        return Set(m.inputs) == [s, x] && m.outputs.first?.type == previous.outputs.first?.type
    },
], replace: { m, _ in
    Node(name: m.root.name, op: "Swish", inputs: m.root.inputs, outputs: m.last.outputs)
})
