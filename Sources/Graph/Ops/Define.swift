// Helpers the op families (Ops/Conv, Ops/Elementwise, …) define their ops with.

/// An op's definition from its schema and reference kernel; its opsets follow from its domain.
func define(_ schema: OpSchema, _ reference: @escaping RefKernel, types: ElementTypes, flops: FlopRule, gradient: GradientRule,
            lowering: LoweringRule) -> OpDefinition {
    OpDefinition(schema, types: types, opsets: schema.domain.isEmpty ? onnxOpsets : kilnOpsets, flops: flops,
                 reference: reference, gradient: gradient, lowering: lowering)
}

/// Ops of the training step (gradients, losses, the optimizer): no gradient flows back
/// through them.
let trainingOnly = GradientRule.none("it is part of a training step")

/// The schema of a training-step op (domain "kiln") whose output takes the type of input
/// `like`.
func shapedLike(_ name: String, inputs: ClosedRange<Int>, like: Int, attributes: [AttributeSpec] = []) -> OpSchema {
    OpSchema(name, domain: "kiln", inputs: inputs, attributes: attributes) { ctx in
        let t = try ctx.input(like)
        try ctx.requireFloat(try ctx.input(0), "gradient")
        ctx.setOutput(0, t)
    }
}

extension Node {
    /// Attribute `k` as set on the node, or `d` (not the schema's default: callers name theirs).
    public func intAttribute(_ k: String, _ d: Int) -> Int { if case .int(let v)? = attributes[k] { return v }; return d }
    public func floatAttribute(_ k: String, _ d: Float) -> Float { if case .float(let v)? = attributes[k] { return v }; return d }
}
