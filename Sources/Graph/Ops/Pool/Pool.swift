// Pooling: MaxPool, AveragePool, the global pools, and their gradients.
// Schemas: Pool+Schemas.swift; reference kernels: Pool+Reference.swift.

/// Outputs · window size.
private let windowFlops = FlopRule.custom { n, _, out in
    if case .ints(let k)? = n.attributes["kernel_shape"] { return sat(out, k.reduce(1, sat)) }
    return out
}

let poolDefinitions: [OpDefinition] = [
    define(maxPoolSchema, pool(max: true), types: .numbers, flops: windowFlops, gradient: .rule { ctx, n, dy, _ in
        guard n.outputs.count == 1 else { throw ctx.unsupported(n, "MaxPool with an Indices output") }
        let x = n.inputs[0]
        try ctx.add(x, ctx.emit("MaxPoolGrad", [dy, x], [ctx.part(x)], attributes: n.attributes.filter { $0.key != "storage_order" },
                            name: "\(n.name).grad")[0])
    }, lowering: .kernel(.pool)),
    define(averagePoolSchema, pool(max: false), types: .floats, flops: windowFlops, gradient: .rule { ctx, n, dy, _ in
        let x = n.inputs[0]
        try ctx.add(x, ctx.emit("AveragePoolGrad", [dy, x], [ctx.part(x)], attributes: n.attributes, name: "\(n.name).grad")[0])
    }, lowering: .kernel(.pool)),
    define(globalPool("GlobalAveragePool"), globalPool(max: false), types: .floats, flops: .perInput, gradient: .rule { ctx, n, dy, _ in
        let x = n.inputs[0]
        try ctx.add(x, ctx.emit("GlobalAveragePoolGrad", [dy, x], [ctx.part(x)], name: "\(n.name).grad")[0])
    }, lowering: .kernel(.globalAveragePool)),
    define(globalPool("GlobalMaxPool"), globalPool(max: true),
           types: .numbers, flops: .perInput, gradient: .none("Kiln has no backward rule for it yet"), lowering: .reference),
    define(maxPoolGradSchema, maxPoolGrad, types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .reference),
    define(averagePoolGradSchema, averagePoolGrad, types: .floats, flops: .perOutput(1), gradient: trainingOnly, lowering: .reference),
    // dy [N, C, 1, …], x → dx = dy / (spatial size) everywhere
    define(shapedLike("GlobalAveragePoolGrad", inputs: 2...2, like: 1), globalAveragePoolGrad,
           types: .floats, flops: .perOutput(1), gradient: trainingOnly,
           lowering: .kernel(.globalAveragePoolGrad)),
]
