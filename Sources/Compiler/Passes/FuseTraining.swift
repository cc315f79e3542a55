import Graph

extension Pass {
    /// Training-step fusions: ReLU into the training-mode BatchNorm before it, ReLU's
    /// backward mask into the BatchNorm backward after it, and a gradient sum into the ReLU
    /// backward after it — one pass over memory each.
    public static let fuseTraining = Pass("fuse-training", summary: "fuse ReLU into training BatchNorm and its mask into BatchNorm backward") { g in
        Rewriter.apply(trainingRules, to: g)
    }
}

private func isKiln(_ n: Node, _ op: String) -> Bool { n.domain == "kiln" && n.op == op }

/// `Relu(BatchNormTraining(x, …))` becomes `BatchNormTraining(x, …) {activation="Relu"}`
/// producing the ReLU's output (at the BatchNorm's place: its statistics outputs may be read
/// before the ReLU); `BatchNormGrad(ReluGrad(dy, y), …)` becomes `BatchNormGrad(dy, …, y)`;
/// `ReluGrad(Sum(a, b), y)` — the gradient of a ReLU after a residual Add, two contributions
/// summed first — becomes `ReluGrad(a, y, b)`; each when the intermediate has no other reader.
let trainingRules: [RewriteRule] = [
    RewriteRule("batchnorm-relu", root: { n, _ in isKiln(n, "BatchNormTraining") && n.attributes["activation"] == nil }, links: [
        .init { r, _, _ in r.domain.isEmpty && r.op == "Relu" && r.outputs.count == 1 },
    ], placement: .root, replace: { m, _ in
        var fused = m.root
        fused.outputs[0] = m.last.outputs[0]
        fused.attributes["activation"] = .string("Relu")
        return fused
    }),
    RewriteRule("relu-grad-into-batchnorm-grad", root: { n, _ in isKiln(n, "ReluGrad") && n.inputs.count == 2 }, links: [
        .init { grad, r, _ in isKiln(grad, "BatchNormGrad") && grad.inputs.count == 5 && grad.inputs[0] == r.outputs[0].name },
    ], replace: { m, _ in
        var fused = m.last
        fused.inputs = [m.root.inputs[0]] + Array(fused.inputs[1...]) + [m.root.inputs[1]]
        return fused
    }),
    RewriteRule("sum-into-relu-grad", root: { n, _ in n.domain.isEmpty && (n.op == "Sum" || n.op == "Add") && n.inputs.count == 2 }, links: [
        .init { r, sum, ctx in
            guard isKiln(r, "ReluGrad"), r.inputs.count == 2, r.inputs[0] == sum.outputs[0].name, let y = ctx.types[r.inputs[1]] else { return false }
            return ctx.types[sum.inputs[0]] == y && ctx.types[sum.inputs[1]] == y
        },
    ], replace: { m, _ in
        var fused = m.last
        fused.inputs = [m.root.inputs[0], fused.inputs[1], m.root.inputs[1]]
        return fused
    }),
]
