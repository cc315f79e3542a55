// Compile-time values of shape arithmetic: when every input of a node holds a value known at
// compile time, its reference kernel computes the outputs' — whatever the op (Div, Mul,
// Equal, Where, Range, Cast, …) — so the Shape → … → Reshape/Slice/Expand chains of any
// exporter give static shapes.

extension Graph {
    /// The outputs' known values of `node` from its inputs' (`inputKnown`), by running its
    /// reference kernel; nil unless every given input is known and static and every output
    /// is a small integer or bool tensor (what `KnownInts` tracks).
    static func evaluatedKnownValues(_ node: Node, inputTypes: [TensorType?], inputKnown: [KnownInts?],
                                     outputTypes: [TensorType]) -> [KnownInts?]? {
        guard node.inputs.contains(where: { !$0.isEmpty }), !outputTypes.isEmpty else { return nil }
        var inputs: [HostTensor?] = []
        for (i, name) in node.inputs.enumerated() {
            if name.isEmpty { inputs.append(nil); continue }
            guard i < inputTypes.count, i < inputKnown.count, let t = inputTypes[i], let k = inputKnown[i], isTracked(t.dtype),
                  let shape = t.shape.staticSizes, shape.reduce(1, *) == k.count else { return nil }
            var values: [Int64] = []
            for d in k {
                guard let v = d.value else { return nil }
                values.append(Int64(v))
            }
            inputs.append(HostTensor(dtype: t.dtype, shape: shape, i: values))
        }
        var counts: [Int] = []
        for t in outputTypes {
            guard isTracked(t.dtype), let s = t.shape.staticSizes, s.count <= 1, s.reduce(1, *) <= ONNXLimits.knownValues else { return nil }
            counts.append(s.reduce(1, *))
        }
        guard let kernel = OpRegistry.definition(of: node)?.reference,
              let outs = try? kernel(RefContext(node: node, inputs: inputs, outputTypes: outputTypes)), outs.count >= outputTypes.count else { return nil }
        return outputTypes.indices.map { i in
            outs[i].isFloat || outs[i].i.count != counts[i] ? nil : outs[i].i.map { Dim(Int(clamping: $0)) }
        }
    }

    private static func isTracked(_ t: DType) -> Bool { t.isInteger || t == .bool }
}
