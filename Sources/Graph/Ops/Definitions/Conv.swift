// Convolutions: Conv, the fused kiln.FusedConv, and the training step's data, weight and
// bias gradients. Schemas: Ops/Ops+NN.swift, Ops+Kiln.swift, Ops+Train.swift; reference
// kernels: Reference/Kernels+NN.swift, Kernels+Train.swift.

/// 2 · outputs · (C/group · kernel size): the multiply-adds of a convolution.
let convFlops = FlopRule.dense { _, inShapes, out in
    guard inShapes.count >= 2, inShapes[1].count >= 2 else { return 0 }
    return sat(2, sat(out, inShapes[1].dropFirst().reduce(1, sat)))
}

let convDefinitions: [OpDefinition] = [
    define("Conv", types: .floats, flops: convFlops, gradient: .rule { ctx, n, dy, wants in
        let x = n.inputs[0], w = n.inputs[1]
        if wants[0] {
            ctx.add(x, ctx.emit("ConvGradData", [dy, w, x], [(ctx.part(x), ctx.type(x))], attributes: n.attributes, name: "\(n.name).grad.data")[0])
        }
        if wants[1] {
            ctx.add(w, ctx.emit("ConvGradWeight", [x, dy, w], [(ctx.part(w), ctx.type(w))], attributes: n.attributes, name: "\(n.name).grad.weight")[0])
        }
        if wants.count > 2 && wants[2] {
            let b = n.inputs[2]
            ctx.add(b, ctx.emit("ConvGradBias", [dy], [(ctx.part(b), ctx.type(b))], name: "\(n.name).grad.bias")[0])
        }
    }, lowering: .kernel(.conv)),
    define("FusedConv", domain: "kiln", types: .floats, flops: convFlops, gradient: .none("the compiler forms it after differentiation"),
           lowering: .kernel(.conv), reference: { ctx in
               // Conv on the first three inputs with Conv's attributes, then the epilogue.
               let convAttributes = ctx.node.attributes.filter { ["auto_pad", "kernel_shape", "pads", "strides", "dilations", "group"].contains($0.key) }
               let y = try runPart(ctx, "Conv", Array(ctx.inputs.prefix(3)), attributes: convAttributes)
               return [try fusedEpilogue(ctx, y)]
           }),
    define("ConvGradData", domain: "kiln", types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .kernel(.convGradData)),
    define("ConvGradWeight", domain: "kiln", types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .kernel(.convGradWeight)),
    define("ConvGradBias", domain: "kiln", types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .kernel(.convGradBias)),
]
