// Convolutions: Conv, the fused kiln.FusedConv, and the training step's data, weight and bias
// gradients.
// Schemas: Conv+Schemas.swift; reference kernels: Conv+Reference.swift.

/// 2 · outputs · (C/group · kernel size): the multiply-adds of a convolution whose weight is
/// input `weight`.
func convolutionFlops(weight: Int) -> FlopRule {
    .dense { _, inShapes, out in
        guard inShapes.count > weight, inShapes[weight].count >= 2 else { return 0 }
        return sat(2, sat(out, inShapes[weight].dropFirst().reduce(1, sat)))
    }
}

let convFlops = convolutionFlops(weight: 1)

let convDefinitions: [OpDefinition] = [
    define(convSchema, conv, types: .floats, flops: convFlops, gradient: .rule { ctx, n, dy, wants in
        let x = n.inputs[0], w = n.inputs[1]
        if wants[0] {
            try ctx.add(x, ctx.emit("ConvGradData", [dy, w, x], [ctx.part(x)], attributes: n.attributes, name: "\(n.name).grad.data")[0])
        }
        if wants[1] {
            try ctx.add(w, ctx.emit("ConvGradWeight", [x, dy, w], [ctx.part(w)], attributes: n.attributes, name: "\(n.name).grad.weight")[0])
        }
        if wants.count > 2 && wants[2] {
            let b = n.inputs[2]
            try ctx.add(b, ctx.emit("ConvGradBias", [dy], [ctx.part(b)], name: "\(n.name).grad.bias")[0])
        }
    }, lowering: .kernel(.conv)),
    define(fusedConvSchema, fusedConvReference, types: .floats, flops: convFlops, gradient: .none("the compiler forms it after differentiation"),
           lowering: .kernel(.conv)),
    define(convGradDataSchema, convGradData,
           types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .kernel(.convGradData)),
    define(convGradWeightSchema, convGradWeight,
           types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .kernel(.convGradWeight)),
    define(convGradBiasSchema, convGradBias,
           types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .kernel(.convGradBias)),
]
