// Helpers the family files (this folder) define their ops with.

/// Every schema, by key (the family schema lists in Ops/).
let catalogueSchemas: [OpKey: OpSchema] = {
    var t: [OpKey: OpSchema] = [:]
    for s in elementwiseOps + nnOps + tensorOps + kilnOps + kilnElementwiseOps + trainOps {
        precondition(t[OpKey(s.name, domain: s.domain)] == nil, "two schemas for \(s.domain).\(s.name)")
        t[OpKey(s.name, domain: s.domain)] = s
    }
    return t
}()

/// The definition of op `name`: its schema and reference kernel found by key (missing ones
/// stop the registry from being built, naming the op), the rest as given.
func define(_ name: String, domain: String = "", types: ElementTypes, flops: FlopRule, gradient: GradientRule,
            lowering: LoweringRule, reference: RefKernel? = nil) -> OpDefinition {
    let key = OpKey(name, domain: domain)
    guard let schema = catalogueSchemas[key] else { preconditionFailure("op \(key) has no schema") }
    guard let kernel = reference ?? referenceKernels[key.description] else { preconditionFailure("op \(key) has no reference kernel") }
    return OpDefinition(schema, types: types, opsets: key.domain.isEmpty ? onnxOpsets : kilnOpsets, flops: flops,
                        reference: kernel, gradient: gradient, lowering: lowering)
}

/// Ops of the training step (gradients, losses, the optimizer): no gradient flows back
/// through them.
let trainingOnly = GradientRule.none("it is part of a training step")

extension Node {
    /// Attribute `k` as set on the node, or `d` (not the schema's default: callers name theirs).
    public func intAttribute(_ k: String, _ d: Int) -> Int { if case .int(let v)? = attributes[k] { return v }; return d }
    public func floatAttribute(_ k: String, _ d: Float) -> Float { if case .float(let v)? = attributes[k] { return v }; return d }
}
