// Shapes and data movement: Constant, ConstantOfShape, Shape, Cast, the reshapes, Transpose,
// Slice, Pad, Concat, Gather, Expand, Tile, Range, Split, Resize (Resize.swift), and the training step's ReshapeLike,
// SliceGrad and PadGrad.
// Schemas: Movement+Schemas.swift; reference kernels: Movement+Reference.swift.

/// The gradient of a reshape: dy reshaped back to x's shape.
private let reshapeGradient = GradientRule.rule { ctx, n, dy, _ in
    let x = n.inputs[0]
    try ctx.add(x, ctx.emit("ReshapeLike", [dy, x], [ctx.part(x)], name: "\(n.name).grad")[0])
}

private let constantGradient = GradientRule.none("its value does not depend on the trained parameters")

let movementDefinitions: [OpDefinition] = [
    define(constantSchema, constantReference, types: .all, flops: .none, gradient: constantGradient, lowering: .reference),
    define(constantOfShapeSchema, constantOfShapeReference, types: .all, flops: .none, gradient: constantGradient, lowering: .reference),
    define(shapeSchema, shapeReference, types: .all, flops: .none, gradient: constantGradient, lowering: .reference),
    define(castSchema, castReference,
           types: .all, flops: .none, gradient: .none("Kiln has no backward rule for it yet"), lowering: .reference),
    define(reshapeSchema, reshapeLike, types: .all, flops: .none, gradient: reshapeGradient, lowering: .view),
    define(flattenSchema, reshapeLike, types: .all, flops: .none, gradient: reshapeGradient, lowering: .view),
    define(squeezeSchema, reshapeLike, types: .all, flops: .none, gradient: reshapeGradient, lowering: .view),
    define(unsqueezeSchema, reshapeLike, types: .all, flops: .none, gradient: reshapeGradient, lowering: .view),
    define(transposeSchema, transpose, types: .all, flops: .none, gradient: .rule { ctx, n, dy, _ in
        let x = n.inputs[0], rank = ctx.type(x).rank
        var perm = Array((0..<rank).reversed())
        if case .ints(let p)? = n.attributes["perm"] { perm = p }
        var inverse = [Int](repeating: 0, count: rank)
        for (i, p) in perm.enumerated() { inverse[p] = i }
        try ctx.add(x, ctx.emit("Transpose", domain: "", [dy], [ctx.part(x)], attributes: ["perm": .ints(inverse)], name: "\(n.name).grad")[0])
    }, lowering: .kernel(.dataMovement)),
    define(sliceSchema, slice, types: .all, flops: .none, gradient: .rule { ctx, n, dy, _ in
        let x = n.inputs[0]
        try ctx.add(x, ctx.emit("SliceGrad", [dy] + n.inputs, [ctx.part(x)], name: "\(n.name).grad")[0])
    }, lowering: .kernel(.dataMovement)),
    define(padSchema, pad, types: .all, flops: .none, gradient: .rule { ctx, n, dy, _ in
        if case .string(let mode)? = n.attributes["mode"], mode != "constant" { throw ctx.unsupported(n, "Pad mode '\(mode)'") }
        guard n.inputs.count <= 3 || n.inputs[3].isEmpty else { throw ctx.unsupported(n, "Pad with axes") }
        let x = n.inputs[0]
        try ctx.add(x, ctx.emit("PadGrad", [dy, x, n.inputs[1]], [ctx.part(x)], name: "\(n.name).grad")[0])
    }, lowering: .kernel(.dataMovement)),
    define(concatSchema, concat, types: .all, flops: .none, gradient: .rule { ctx, n, dy, wants in
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
            try ctx.add(v, ctx.emit("Slice", domain: "", [dy, s, e, a], [ctx.part(v)], name: "\(n.name).grad.\(k)")[0])
        }
    }, lowering: .kernel(.concat)),
    define(gatherSchema, gather,
           types: .all, flops: .none, gradient: .none("Kiln has no backward rule for it yet"), lowering: .kernel(.dataMovement)),
    define(expandSchema, expandReference, types: .all, flops: .none, gradient: .none("Kiln has no backward rule for it yet"),
           lowering: .kernel(.dataMovement)),
    define(tileSchema, tileReference, types: .all, flops: .none, gradient: .none("Kiln has no backward rule for it yet"),
           lowering: .kernel(.dataMovement)),
    define(rangeSchema, rangeReference, types: .numbers, flops: .none, gradient: .none("its value does not depend on the trained parameters"),
           lowering: .reference),
    define(resizeSchema, resizeReference, types: .numbers, flops: .perOutput(4), gradient: .none("Kiln has no backward rule for it yet"),
           lowering: .kernel(.dataMovement)),
    define(splitSchema, splitReference, types: .all, flops: .none, gradient: .none("Kiln has no backward rule for it yet"),
           lowering: .kernel(.split)),
    // dy, x → dy with x's shape (the gradient of Reshape, Flatten, Squeeze, Unsqueeze)
    define(shapedLike("ReshapeLike", inputs: 2...2, like: 1), reshapeLikeReference,
           types: .all, flops: .perOutput(1), gradient: trainingOnly, lowering: .view),
    // dy, x, starts, ends, axes?, steps? → dx: dy scattered back to where Slice read it, 0 elsewhere
    define(shapedLike("SliceGrad", inputs: 4...6, like: 1), sliceGrad,
           types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .kernel(.scatter)),
    // dy, x, pads → dx: the part of dy that was not padding (constant-mode Pad)
    define(shapedLike("PadGrad", inputs: 3...3, like: 1), padGrad,
           types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .kernel(.scatter)),
]
