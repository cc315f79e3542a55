// Shapes and data movement: constants, Shape, Cast, the reshapes, Transpose, Slice, Pad,
// Concat, Gather, and the training step's ReshapeLike, SliceGrad and PadGrad. Schemas:
// Ops/Ops+Tensor.swift, Ops+Train.swift; reference kernels: Reference/Kernels+Tensor.swift,
// Kernels+Elementwise.swift (Cast), Kernels+Train.swift.

/// The gradient of a reshape: dy reshaped back to x's shape.
private let reshapeGradient = GradientRule.rule { ctx, n, dy, _ in
    let x = n.inputs[0]
    ctx.add(x, ctx.emit("ReshapeLike", [dy, x], [(ctx.part(x), ctx.type(x))], name: "\(n.name).grad")[0])
}

private let constantGradient = GradientRule.none("its value does not depend on the trained parameters")

let movementDefinitions: [OpDefinition] = [
    define("Constant", types: .all, flops: .none, gradient: constantGradient, lowering: .reference),
    define("ConstantOfShape", types: .all, flops: .none, gradient: constantGradient, lowering: .reference),
    define("Shape", types: .all, flops: .none, gradient: constantGradient, lowering: .reference),
    define("Cast", types: .all, flops: .none, gradient: .none("Kiln has no backward rule for it yet"), lowering: .reference),
    define("Reshape", types: .all, flops: .none, gradient: reshapeGradient, lowering: .view),
    define("Flatten", types: .all, flops: .none, gradient: reshapeGradient, lowering: .view),
    define("Squeeze", types: .all, flops: .none, gradient: reshapeGradient, lowering: .view),
    define("Unsqueeze", types: .all, flops: .none, gradient: reshapeGradient, lowering: .view),
    define("Transpose", types: .all, flops: .none, gradient: .rule { ctx, n, dy, _ in
        let x = n.inputs[0], rank = ctx.type(x).rank
        var perm = Array((0..<rank).reversed())
        if case .ints(let p)? = n.attributes["perm"] { perm = p }
        var inverse = [Int](repeating: 0, count: rank)
        for (i, p) in perm.enumerated() { inverse[p] = i }
        ctx.add(x, ctx.emit("Transpose", domain: "", [dy], [(ctx.part(x), ctx.type(x))], attributes: ["perm": .ints(inverse)], name: "\(n.name).grad")[0])
    }, lowering: .kernel(.dataMovement)),
    define("Slice", types: .all, flops: .none, gradient: .rule { ctx, n, dy, _ in
        let x = n.inputs[0]
        ctx.add(x, ctx.emit("SliceGrad", [dy] + n.inputs, [(ctx.part(x), ctx.type(x))], name: "\(n.name).grad")[0])
    }, lowering: .kernel(.dataMovement)),
    define("Pad", types: .all, flops: .none, gradient: .rule { ctx, n, dy, _ in
        if case .string(let mode)? = n.attributes["mode"], mode != "constant" { throw ctx.unsupported(n, "Pad mode '\(mode)'") }
        guard n.inputs.count <= 3 || n.inputs[3].isEmpty else { throw ctx.unsupported(n, "Pad with axes") }
        let x = n.inputs[0]
        ctx.add(x, ctx.emit("PadGrad", [dy, x, n.inputs[1]], [(ctx.part(x), ctx.type(x))], name: "\(n.name).grad")[0])
    }, lowering: .kernel(.dataMovement)),
    define("Concat", types: .all, flops: .none, gradient: .rule { ctx, n, dy, wants in
        var axis = 0
        if case .int(let a)? = n.attributes["axis"] { axis = a < 0 ? a + ctx.type(dy).rank : a }
        var start = 0
        for (k, v) in n.inputs.enumerated() {
            guard let size = ctx.type(v).shape[axis].value else { throw ctx.unsupported(n, "Concat with a symbolic size along its axis") }
            defer { start += size }
            guard wants[k] else { continue }
            let s = ctx.constant("\(n.name).grad.start", TensorData(int64s: [Int64(start)], shape: [1]))
            let e = ctx.constant("\(n.name).grad.end", TensorData(int64s: [Int64(start + size)], shape: [1]))
            let a = ctx.constant("\(n.name).grad.axis", TensorData(int64s: [Int64(axis)], shape: [1]))
            ctx.add(v, ctx.emit("Slice", domain: "", [dy, s, e, a], [(ctx.part(v), ctx.type(v))], name: "\(n.name).grad.\(k)")[0])
        }
    }, lowering: .kernel(.concat)),
    define("Gather", types: .all, flops: .none, gradient: .none("Kiln has no backward rule for it yet"), lowering: .kernel(.dataMovement)),
    define("ReshapeLike", domain: "kiln", types: .all, flops: .perOutput(1), gradient: trainingOnly, lowering: .view),
    define("SliceGrad", domain: "kiln", types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .kernel(.scatter)),
    define("PadGrad", domain: "kiln", types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .kernel(.scatter)),
]
