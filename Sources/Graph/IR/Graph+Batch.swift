/// How a graph's inputs declare their batch (leading) dimension.
public enum BatchDimension: Sendable, Equatable, CustomStringConvertible {
    /// A symbol (`N`): any batch binds it.
    case symbolic(String)
    /// A fixed size written into the model (exporters' default is 1).
    case fixed(Int)

    public var description: String {
        switch self {
        case .symbolic(let s): return "symbolic (\(s))"
        case .fixed(let n): return "fixed at \(n)"
        }
    }
}

extension Graph {
    /// The leading dimension the graph's inputs share, or nil when there is none to batch over
    /// (no inputs, a rank-0 input, or inputs whose leading dimensions differ).
    public var batchDimension: BatchDimension? {
        guard let first = inputs.first?.type.shape.first else { return nil }
        for v in inputs {
            guard let d = v.type.shape.first, d == first else { return nil }
        }
        if let n = first.value { return .fixed(n) }
        if first.coefficient == 1, first.symbols.count == 1 { return .symbolic(first.symbols[0]) }
        return nil
    }

    /// The graph with its inputs' fixed leading dimension replaced by a symbol, when the graph
    /// allows it: it verifies with the symbol, and every output's leading dimension is exactly
    /// that symbol. A constant that bakes the batch in — `Reshape` to `[1, -1]`, a `Concat`
    /// with a `[1, …]` constant along the batch, an `Expand` to a fixed shape — makes
    /// verification fail or leaves an output without the symbol, and the answer is nil; such
    /// a graph can only run in groups of its fixed batch.
    public func rebindingBatch() -> Graph? {
        guard case .fixed = batchDimension else { return nil }
        let used = Set(inputs.flatMap { $0.type.shape.flatMap(\.symbols) })
        var symbol = "N"
        while used.contains(symbol) { symbol += "_" }
        var g = self
        for k in g.inputs.indices { g.inputs[k].type.shape[0] = Dim(symbol: symbol) }
        // Declared types (ONNX value_info, typed outputs) carry the old batch: infer them anew.
        let undeclared = Set(nodes.flatMap { $0.outputs.map(\.name) })
        guard let checked = try? g.verified(undeclared: undeclared, undeclaredOutputs: Set(outputs.map(\.name))) else { return nil }
        for v in checked.outputs {
            guard v.type.shape.first == Dim(symbol: symbol) else { return nil }
        }
        return checked
    }
}

extension TensorData {
    /// Images `range` of the leading axis, zero-padded to `padTo` images when given.
    public func images(_ range: Range<Int>, padTo: Int? = nil) -> TensorData {
        precondition(!shape.isEmpty && range.lowerBound >= 0 && range.upperBound <= shape[0], "image range out of bounds")
        let per = shape[0] == 0 ? 0 : bytes.count / shape[0]
        let n = max(range.count, padTo ?? 0)
        var out = [UInt8](repeating: 0, count: n * per)
        out.replaceSubrange(0..<(range.count * per), with: bytes[(range.lowerBound * per)..<(range.upperBound * per)])
        return TensorData(dtype: dtype, shape: [n] + shape.dropFirst(), bytes: out)
    }

    /// `parts` joined along the leading axis (same dtype and trailing shape).
    public static func joiningImages(_ parts: [TensorData]) -> TensorData? {
        guard let first = parts.first else { return nil }
        for p in parts where p.dtype != first.dtype || p.shape.count != first.shape.count || p.shape.dropFirst() != first.shape.dropFirst() { return nil }
        return TensorData(dtype: first.dtype, shape: [parts.reduce(0) { $0 + $1.shape[0] }] + first.shape.dropFirst(),
                          bytes: parts.flatMap(\.bytes))
    }
}

/// Why a graph cannot be bound to the input shapes asked for.
public enum BindError: Error, Sendable, Equatable, CustomStringConvertible {
    case missingInput(String)
    case inputMismatch(name: String, expected: String, got: String)
    case fixedBatch(size: Int, requested: Int)

    public var description: String {
        switch self {
        case .missingInput(let n): return "no value given for graph input '\(n)'"
        case let .inputMismatch(n, e, g): return "input '\(n)' must be \(e), got \(g)"
        case let .fixedBatch(n, b):
            return "the model's batch is fixed at \(n) and the graph depends on that size (a constant shape), so it cannot be compiled for \(b) images; "
                + "inference runs such a model in groups of \(n), anything else needs it re-exported with a dynamic batch (dynamic_axes in torch.onnx.export)"
        }
    }
}

extension Graph {
    /// The graph ready for `batch` images: as it is, unless its batch is fixed at another size,
    /// which is rebound (`rebindingBatch`) when nothing in the graph depends on it; a model
    /// whose batch a constant bakes in is `BindError.fixedBatch` (inference runs such a
    /// model in groups instead, `CompiledModel.forThroughput`).
    public func bindingBatch(_ batch: Int) throws -> Graph {
        guard case .fixed(let n)? = batchDimension, n != batch else { return self }
        guard let rebound = rebindingBatch() else { throw BindError.fixedBatch(size: n, requested: batch) }
        return rebound
    }

    /// The graph at batch `batch` with static shapes: a fixed batch rebound (`bindingBatch`),
    /// then every symbolic input dimension bound to `batch` (`specialized`).
    public func bound(toBatch batch: Int) throws -> Graph {
        let graph = try bindingBatch(batch)
        var shapes: [String: [Int]] = [:]
        for v in graph.inputs {
            shapes[v.name] = v.type.shape.map { d in d.value ?? d.bound(Dictionary(uniqueKeysWithValues: d.symbols.map { ($0, batch) })).value ?? batch }
        }
        return try graph.specialized(inputShapes: shapes)
    }

    /// The graph with its inputs' symbolic dimensions bound to the sizes of `shapes` and every
    /// value's type re-inferred, so all shapes are static.
    public func specialized(inputShapes shapes: [String: [Int]]) throws -> Graph {
        var bindings: [String: Int] = [:]
        for v in inputs {
            guard let s = shapes[v.name] else { throw BindError.missingInput(v.name) }
            guard s.count == v.type.rank else {
                throw BindError.inputMismatch(name: v.name, expected: v.type.description, got: "rank \(s.count) \(s)")
            }
            for (d, size) in zip(v.type.shape, s) {
                if let fixed = d.value {
                    guard fixed == size else { throw BindError.inputMismatch(name: v.name, expected: v.type.description, got: "\(s)") }
                } else if d.symbols.count == 1 && d.coefficient == 1 {
                    let sym = d.symbols[0]
                    if let b = bindings[sym], b != size {
                        throw BindError.inputMismatch(name: v.name, expected: "\(sym) = \(b) as bound by an earlier input", got: "\(s)")
                    }
                    bindings[sym] = size
                }
            }
        }
        var g = self
        for k in g.inputs.indices {
            g.inputs[k].type.shape = shapes[g.inputs[k].name]!.map { Dim($0) }
        }
        let undeclared = Set(nodes.flatMap { $0.outputs.map(\.name) })
        return try g.verified(undeclared: undeclared, undeclaredOutputs: Set(outputs.map(\.name)))
    }
}

