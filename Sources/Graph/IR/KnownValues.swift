// Compile-time values of shape arithmetic: when every input of a node holds a value known at
// compile time, its reference kernel computes the outputs' — whatever the op (Div, Mul,
// Equal, Where, Range, Cast, …) — so the Shape → … → Reshape/Slice/Expand chains of any
// exporter give static shapes.

extension Graph {
    /// The outputs' known values of `node` from its inputs' (`inputKnown`), by running its
    /// reference kernel; nil unless every given input is known and static and every output
    /// is a small integer or bool tensor of any rank (what `KnownInts` tracks, row-major:
    /// Swin's pads go through Reshape [−1, 2] → Slice → Transpose).
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
            guard isTracked(t.dtype), let s = t.shape.staticSizes, s.reduce(1, *) <= ONNXLimits.knownValues else { return nil }
            counts.append(s.reduce(1, *))
        }
        guard let kernel = OpRegistry.definition(of: node)?.reference,
              let outs = try? kernel(RefContext(node: node, inputs: inputs, outputTypes: outputTypes)), outs.count >= outputTypes.count else { return nil }
        return outputTypes.indices.map { i in
            outs[i].isFloat || outs[i].i.count != counts[i] ? nil : outs[i].i.map { Dim(Int(clamping: $0)) }
        }
    }

    private static func isTracked(_ t: DType) -> Bool { t.isInteger || t == .bool }

    /// Known values through Equal, Where, Mul and Div when some are symbolic (a batch `N`),
    /// as the exporters' shape arithmetic needs before the batch is bound: a dimension is never
    /// negative, so N = −1 is false (ViT's Where(Equal(shape, −1), 1, shape) → Expand).
    static func symbolicKnownValues(_ node: Node, inputKnown: [KnownInts?]) -> [KnownInts?]? {
        guard node.domain.isEmpty, ["Equal", "Where", "Mul", "Div"].contains(node.op), node.outputs.count == 1,
              node.inputs.indices.allSatisfy({ $0 < inputKnown.count && inputKnown[$0] != nil }) else { return nil }
        let values = node.inputs.indices.map { inputKnown[$0]! }
        let count = values.map(\.count).max() ?? 0
        guard values.allSatisfy({ $0.count == count || $0.count == 1 }) else { return nil }
        func at(_ v: KnownInts, _ k: Int) -> Dim { v.count == 1 ? v[0] : v[k] }
        var out: KnownInts = []
        for k in 0..<count {
            switch node.op {
            case "Equal":
                let (a, b) = (at(values[0], k), at(values[1], k))
                if a == b { out.append(Dim(1)); continue }
                if let x = a.value, let y = b.value { out.append(Dim(x == y ? 1 : 0)); continue }
                // A symbolic dimension against a negative constant: never equal.
                guard (a.isSymbolic && (b.value ?? 0) < 0) || (b.isSymbolic && (a.value ?? 0) < 0) else { return nil }
                out.append(Dim(0))
            case "Where":
                guard let c = at(values[0], k).value else { return nil }
                out.append(c != 0 ? at(values[1], k) : at(values[2], k))
            case "Mul":
                out.append(at(values[0], k) * at(values[1], k))
            default:
                guard let q = Dim.divide(at(values[0], k), by: at(values[1], k)) else { return nil }
                out.append(q)
            }
        }
        return [out]
    }
}
